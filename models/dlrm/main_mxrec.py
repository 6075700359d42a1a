"""DLRM on Criteo TFRecords with mx_rec: train, then report AUC, log loss and samples/s.

    python models/dlrm/main_mxrec.py [--data_path D | DATA_PATH=D] [--epochs 1] [--batch_size 1024] ...
    bash models/dlrm/run.sh SO_PATH PKG_PATH RANK_TABLE DATA_PATH      # under horovodrun

The script is a Rec SDK training script: ``init``, the input pipelines, the hash optimizer, one
``create_table``, ``sparse_lookup`` of the 26 fields (once, or once per field with
``USE_MULTI_LOOKUP=1``; plain iterator tensors and the graph modifier with ``USE_MODIFY_GRAPH=1``),
the dense and sparse updates, the training loop, the Saver and the evaluation over all ranks.
DCNv2 (``models/dcnv2/main_mxrec.py``) runs this same script with its own network and settings.
Every field of ``models.common.config.TrainConfig`` and ``config.DLRMConfig`` is a flag
(``--help``); the switches (``USE_DYNAMIC``, ``USE_FAAE``, ...) come from the environment
(``models.common.switches``). Data: ``tools/criteo/convert.py`` or ``tools/criteo/synthetic.py`` output.
"""
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import tensorflow as tf  # noqa: E402

from mx_rec.constants.constants import ASCEND_SPARSE_LOOKUP_ID_OFFSET, ASCEND_SPARSE_LOOKUP_LOCAL_EMB  # noqa: E402
from mx_rec.core.asc.manager import start_asc_pipeline  # noqa: E402
from mx_rec.core.embedding import create_table, sparse_lookup  # noqa: E402
from mx_rec.data.records import CRITEO_SCHEMA  # noqa: E402
from mx_rec.graph.modifier import modify_graph_and_start_emb_cache  # noqa: E402
from mx_rec.inference import export_savedmodel  # noqa: E402
from mx_rec.inference.signature import set_prediction  # noqa: E402
from mx_rec.optimizers import adagrad, adagrad_by_addr, ftrl, gradient_descent, gradient_descent_by_addr  # noqa: E402
from mx_rec.optimizers import lazy_adam, lazy_adam_by_addr  # noqa: E402
from mx_rec.util.communication import hccl_ops  # noqa: E402
from mx_rec.util.initialize import ConfigInitializer, init, terminate_config_initializer  # noqa: E402
from mx_rec.util.variable import get_dense_and_sparse_variable  # noqa: E402

from models.common import data, evaluation, report, table_sizes  # noqa: E402
from models.common.config import parse_configs  # noqa: E402
from models.common.switches import SwitchError, read_switches  # noqa: E402
from models.common.training import TrainLog, learning_rate, task_loss  # noqa: E402

from models.dlrm.config import TRAIN, DLRMConfig  # noqa: E402
from models.dlrm.model import TABLE, build_fn  # noqa: E402

TASKS = ("ctr",)
HASH_OPTIMIZERS = {"lazy_adam": lazy_adam.create_hash_optimizer, "adagrad": adagrad.create_hash_optimizer,
                   "ftrl": ftrl.create_hash_optimizer, "gradient_descent": gradient_descent.create_hash_optimizer}
BY_ADDRESS = {"lazy_adam": lazy_adam_by_addr.create_hash_optimizer_by_address,  # FTRL has no by-address form
              "adagrad": adagrad_by_addr.create_hash_optimizer_by_address,
              "gradient_descent": gradient_descent_by_addr.create_hash_optimizer_by_addr}


def lookup(table, ids: tf.Tensor, is_train: bool, switches, access_threshold: int) -> tf.Tensor:
    """Embeddings of every field: ids int64 [B, F] -> float32 [B, F, dim].

    ``USE_DYNAMIC=0`` passes ``send_count`` = the ids of the lookup (B * F, or B per field): the
    distinct keys bound for one rank can never exceed it. ``USE_FAAE=1`` sets the admission
    threshold of training lookups. ``USE_MULTI_LOOKUP=1`` looks the table up once per field (the
    SDK merges those lookups). ``USE_MODIFY_GRAPH=1``: ``ids`` come straight from the iterator.
    """
    prefix = "train" if is_train else "eval"
    batch, fields = ids.shape.as_list()
    admission = {"access_threshold": access_threshold} if switches.use_faae and is_train else None
    if not switches.use_multi_lookup:
        return sparse_lookup(table, ids, send_count=None if switches.use_dynamic else batch * fields,
                             is_train=is_train, name=f"{prefix}_{table.table_name}",
                             access_and_evict_config=admission, modify_graph=switches.use_modify_graph)
    return tf.stack([sparse_lookup(table, ids[:, f], send_count=None if switches.use_dynamic else batch,
                                   is_train=is_train, name=f"{prefix}_{table.table_name}_field{f}",
                                   access_and_evict_config=admission, modify_graph=switches.use_modify_graph)
                     for f in range(fields)], axis=1)


def main(argv=None, name: str = "dlrm", description: str = __doc__.split("\n")[0], train=TRAIN,
         model_config=None, build_model=build_fn) -> int:
    """Train and evaluate a Criteo model: DLRM by default; ``name``, ``train`` (the default
    ``TrainConfig``), ``model_config`` (its architecture dataclass) and ``build_model`` (config, seed ->
    ``build(emb, batch)`` returning logits) let another network run the same script (DCNv2 does)."""
    cfg, model_cfg = parse_configs(argv, description, train, model_config or DLRMConfig())
    wall_start = time.perf_counter()
    tf.compat.v1.disable_eager_execution()
    switches = read_switches()
    tf.compat.v1.set_random_seed(cfg.seed)
    mxrec = init(use_dynamic=switches.use_dynamic, use_dynamic_expansion=switches.use_dynamic_expansion,
                 use_multi_lookup=switches.use_multi_lookup)
    rank, ranks = mxrec.rank_id, mxrec.rank_size
    try:
        info = data.load_data_info(Path(cfg.resolved_data_path()), CRITEO_SCHEMA)
        steps = cfg.steps or data.train_steps(info, cfg.batch_size, ranks, cfg.epochs)
        n_eval = data.eval_steps(info, cfg.eval_batch_size, ranks, cfg.eval_steps)
        with table_sizes.ssd_folder(switches.cache_mode, cfg.ssd_data_path, f"{name}_rank{rank}") as ssd_path:
            # input pipelines: this rank's shard of train/ (repeated) and of test/ (padded to equal batch counts)
            train_iter, train_batch = data.make_iterator(
                data.train_dataset(info, cfg.batch_size, steps, rank, ranks, cfg.seed, cfg.shuffle_buffer))
            eval_iter, eval_batch = data.make_iterator(
                data.eval_dataset(info, cfg.eval_batch_size, n_eval, rank, ranks))
            read_batch = eval_batch  # what the files hold: the inputs of an exported model

            # the hash optimizer first: a DDR / SSD table makes its optimizer slots when it is created
            note = ""
            if switches.use_dynamic_expansion:  # one optimizer applies every table's gradients at their addresses
                kind = cfg.sparse_optimizer if cfg.sparse_optimizer in BY_ADDRESS else "lazy_adam"
                by_address = BY_ADDRESS[kind](learning_rate=learning_rate(cfg.sparse_lr, cfg, steps))
                note = f"dynamic expansion: every table uses {kind} by address" + (
                    f" (instead of {cfg.sparse_optimizer})" if cfg.sparse_optimizer != kind else "")
            else:
                by_address = None
                sparse_optimizers = {TABLE: HASH_OPTIMIZERS[cfg.sparse_optimizer](
                    learning_rate=learning_rate(cfg.sparse_lr, cfg, steps), name=f"{TABLE}_{cfg.sparse_optimizer}")}

            # the table, sized for the keys training can insert; CACHE_MODE picks its tiers
            keys = table_sizes.insertable_keys(info, cfg)
            batch_keys = max(cfg.batch_size, cfg.eval_batch_size) * int(train_batch["sparse_feature"].shape[1])
            rows = table_sizes.table_rows(keys, cfg.vocab_margin)
            vocabulary = table_sizes.vocabulary_kwargs(switches.cache_mode, rows, ssd_path, batch_keys, ranks)
            try:
                tables = {TABLE: create_table(
                    key_dtype=tf.int64, dim=model_cfg.emb_dim, name=TABLE,
                    emb_initializer=tf.compat.v1.truncated_normal_initializer(stddev=cfg.init_stddev, seed=cfg.seed),
                    all2all_gradients_op="sum_gradients_and_div_by_ranksize", **vocabulary)}
            except NotImplementedError as err:
                raise SwitchError(f"CACHE_MODE={switches.cache_mode}: {err}") from None

            # training graph: lookups, model, loss; one backward pass for the dense and the sparse variables
            build = build_model(model_cfg, cfg.seed)
            train_emb = {name: lookup(table, train_batch["sparse_feature"], True, switches, cfg.access_threshold)
                         for name, table in tables.items()}
            loss = task_loss(build(train_emb, train_batch), train_batch["label"])
            global_step = tf.compat.v1.train.get_or_create_global_step()
            dense_vars, _ = get_dense_and_sparse_variable()  # also builds the merged lookups (multi-lookup)
            if by_address is not None:
                sparse_targets = tf.compat.v1.get_collection(ASCEND_SPARSE_LOOKUP_LOCAL_EMB)
            else:
                sparse_targets = [table.variable for table in tables.values()]
            grads = tf.gradients(loss, dense_vars + sparse_targets)
            dense_grads, sparse_grads = grads[:len(dense_vars)], grads[len(dense_vars):]
            dense_optimizer = tf.compat.v1.train.AdamOptimizer(learning_rate=learning_rate(cfg.dense_lr, cfg, steps))
            updates = [dense_optimizer.apply_gradients(  # dense gradients averaged over ranks
                [(hccl_ops.allreduce(g, "mean"), v) for g, v in zip(dense_grads, dense_vars) if g is not None],
                global_step=global_step)]
            if by_address is not None:
                addresses = tf.compat.v1.get_collection(ASCEND_SPARSE_LOOKUP_ID_OFFSET)
                updates.append(by_address.apply_gradients(list(zip(sparse_grads, addresses))))
            else:
                for (name, table), grad in zip(tables.items(), sparse_grads):
                    updates.append(sparse_optimizers[name].apply_gradients([(grad, table.variable)]))
            train_op = tf.group(*updates, name="train_op")

            # evaluation graph: is_train=False lookups never insert, count or evict
            eval_emb = {name: lookup(table, eval_batch["sparse_feature"], False, switches, cfg.access_threshold)
                        for name, table in tables.items()}
            eval_probs = tf.sigmoid(build(eval_emb, eval_batch))
            initializers = (train_iter.initializer, eval_iter.initializer)
            rebuilt_batch = {}
            if switches.use_modify_graph:  # the SDK rebuilds both pipelines: run and fetch its iterators
                modify_graph_and_start_emb_cache()
                params = ConfigInitializer.get_instance().train_params_config
                initializers = (params.get_initializer(True), params.get_initializer(False))
                eval_batch = rebuilt_batch = params.get_target_batch(False)
            set_prediction(eval_probs, read_batch, aliases=rebuilt_batch)  # what tools/export_local.py exports
            metrics = evaluation.MetricsCombiner(2 * len(TASKS), ranks)
            start_asc_pipeline()
            report.announce(name, rank, ranks, cfg, switches, info, steps, n_eval, {TABLE: model_cfg.emb_dim},
                            keys, note)

            saver = tf.compat.v1.train.Saver() if cfg.checkpoint_dir else None  # dense variables and table shards
            with tf.compat.v1.Session() as sess:
                sess.run([tf.compat.v1.global_variables_initializer(), *initializers])
                log = TrainLog(steps, cfg.batch_size, cfg.log_every)
                for step in range(1, steps + 1):
                    _, loss_value = sess.run([train_op, loss])
                    log.step(step, loss_value)
                stats = log.finish(tables)
                if saver is not None:  # every rank: each writes its own table shards
                    path = saver.save(sess, os.path.join(cfg.checkpoint_dir, "model"), global_step=steps)
                    print(f"checkpoint {path}", flush=True)
                results, eval_rate = evaluation.evaluate(sess, eval_probs, eval_batch, n_eval, TASKS, metrics, tables)
    finally:
        terminate_config_initializer()
    if rank == 0 and cfg.savedmodel_dir:  # once rank 0's save returned, every rank's shards are in the checkpoint
        print(f"savedmodel {export_savedmodel(cfg.checkpoint_dir, cfg.savedmodel_dir).output}", flush=True)
    report.finish(name, rank, ranks, cfg, switches, stats, results, eval_rate, time.perf_counter() - wall_start,
                  info)
    return 0


if __name__ == "__main__":
    sys.exit(main())
