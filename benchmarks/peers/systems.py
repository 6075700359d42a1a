"""The systems' graphs: one sparse table (all fields share one id space) plus a workload on top.

Systems (the sparse part; everything else is the same graph code):

- ``mx_rec_hbm`` / ``mx_rec_ddr`` / ``mx_rec_ssd``: ``create_table`` (sizes from
  ``settings.tier_sizes``) + ``sparse_lookup`` + ``lazy_adam.create_hash_optimizer``.
- ``mx_rec_hbm_tf_ops``: mx_rec HBM with its fused kernels off (``MXREC_FUSED_KERNELS=0``: the lazy
  Adam update and the gradient's segment sum as TF's own ops), to show what the kernels bring.
- ``tfra``: ``de.get_variable`` (CPU cuckoo hash table) + ``de.embedding_lookup_unique`` +
  ``de.DynamicEmbeddingOptimizer(AdamOptimizer)`` (TFRA's documented TF1 usage).
- ``plain_tf``: one ``tf.Variable`` of ``num_keys`` rows, ids hashed in the graph by
  ``key mod num_keys`` (collisions share a row: the speed upper bound), ``tf.gather``, and lazy Adam
  written with plain TF ops (``benchmarks.lookup_update._lazy_adam_update``).

Workloads, fed through placeholders ``ids`` int64 [B, F], ``dense`` float32 [B, 13],
``labels`` float32 [B, 1]:

- ``micro``: ``loss = sum(emb * w)`` with fixed w float32 [1, F, dim] (as benchmarks/lookup_update.py):
  the lookup and the sparse update only.
- ``dlrm``: the model zoo's DLRM (``models/dlrm``: bottom MLP 64-32-16 on dense, pairwise dot
  interactions with the 26 embeddings, top MLP 256-128-1), mean sigmoid cross-entropy; dense
  variables train with ``tf.compat.v1.train.AdamOptimizer`` (TFRA: its wrapped Adam). Every system
  takes the gradients of the table and the dense variables in ONE backward pass (TFRA's single
  ``minimize`` does; separate ``compute_gradients`` calls for the dense and the sparse optimizer
  would run the DLRM backward twice, ~40% more step time on 2 CPUs).

Every system starts rows from truncated normal (stddev 0.05) and uses the same learning rate.
The DLRM code is imported from the zoo as ``models.dlrm`` (the worker puts the checkout on PYTHONPATH).
"""
import dataclasses
from typing import Callable, Dict, List, Optional, Tuple

import tensorflow as tf

from benchmarks.lookup_update import _lazy_adam_update, loss_weights
from benchmarks.peers.settings import Settings

MX_REC_MODES = {"mx_rec_hbm": "hbm", "mx_rec_hbm_tf_ops": "hbm", "mx_rec_ddr": "ddr", "mx_rec_ssd": "ssd"}
SYSTEMS = ("mx_rec_hbm", "mx_rec_hbm_tf_ops", "mx_rec_ddr", "mx_rec_ssd", "tfra", "plain_tf")
# systems whose worker runs with mx_rec's fused kernels off (MXREC_FUSED_KERNELS=0): TF's own ops instead
TF_OPS_SYSTEMS = ("mx_rec_hbm_tf_ops",)
WORKLOADS = ("micro", "dlrm")
INIT_STDDEV = 0.05


@dataclasses.dataclass
class Built:
    """A graph ready to step. ``stats()`` returns the table's counters (keys held, tier hit rates)."""

    session: tf.compat.v1.Session
    train_op: tf.Operation
    loss: tf.Tensor
    feeds: Dict[str, tf.Tensor]
    stats: Callable[[], dict]


@dataclasses.dataclass
class _Sparse:
    """The sparse half of a graph: ``emb`` float32 [B, F, dim], and how to make the train op."""

    emb: tf.Tensor
    train_op: Callable[[tf.Tensor], tf.Operation]  # loss -> train op (dense and sparse updates)
    stats: Callable[[tf.compat.v1.Session], dict]


def _dense_adam(pairs: List[Tuple[tf.Tensor, tf.Variable]], rate: float) -> List[tf.Operation]:
    """Adam on (gradient, dense variable) pairs; none for the micro workload."""
    if not pairs:
        return []
    return [tf.compat.v1.train.AdamOptimizer(rate).apply_gradients(pairs)]


def _mx_rec(mode: str, ids: tf.Tensor, settings: Settings, sizes: Dict[str, int], ssd_dir: str,
            name: str) -> _Sparse:
    from mx_rec.core.embedding import create_table, sparse_lookup
    from mx_rec.optimizers.lazy_adam import create_hash_optimizer
    from mx_rec.storage.tiered_backend import TieredBackend
    from mx_rec.util.initialize import init
    from mx_rec.util.variable import get_dense_and_sparse_variable

    init()
    sparse_opt = create_hash_optimizer(settings.learning_rate)  # before the table: DDR/SSD tables take its slots
    table = create_table(tf.int64, settings.dim, name, tf.compat.v1.truncated_normal_initializer(stddev=INIT_STDDEV),
                         ssd_data_path=[ssd_dir], **sizes)
    emb = sparse_lookup(table, ids)

    def train_op(loss):
        dense_vars, _ = get_dense_and_sparse_variable()
        dense_vars = [v for v in dense_vars if v.graph is loss.graph]
        pairs = sparse_opt.compute_gradients(loss, var_list=[table.variable] + dense_vars)  # one backward pass
        sparse = sparse_opt.apply_gradients(pairs[:1])
        return tf.group(sparse, *_dense_adam(pairs[1:], settings.learning_rate))

    def stats(_session):
        out = {"keys_held": int(table.size()), "mode": mode, "sizes": sizes}
        if isinstance(table.backend, TieredBackend):
            out["telemetry"] = dataclasses.asdict(table.backend.counters)
        return out

    return _Sparse(emb, train_op, stats)


def _tfra(ids: tf.Tensor, settings: Settings, name: str) -> _Sparse:
    import tensorflow_recommenders_addons.dynamic_embedding as de

    var = de.get_variable(name, key_dtype=tf.int64, value_dtype=tf.float32, dim=settings.dim,
                          initializer=tf.compat.v1.truncated_normal_initializer(stddev=INIT_STDDEV))
    emb, wrapper = de.embedding_lookup_unique(var, ids, name=f"{name}_lookup", return_trainable=True)
    size = var.size()

    def train_op(loss):
        dense_vars = [v for v in tf.compat.v1.trainable_variables() if not isinstance(v, de.TrainableWrapper)]
        opt = de.DynamicEmbeddingOptimizer(tf.compat.v1.train.AdamOptimizer(settings.learning_rate))
        return opt.minimize(loss, var_list=dense_vars + [wrapper])

    return _Sparse(emb, train_op, lambda session: {"keys_held": int(session.run(size))})


def _plain(ids: tf.Tensor, settings: Settings, name: str) -> _Sparse:
    rows = settings.num_keys
    init = tf.compat.v1.truncated_normal_initializer(stddev=INIT_STDDEV)
    table = tf.compat.v1.Variable(init([rows, settings.dim]), trainable=False, use_resource=True, name=name)
    emb = tf.gather(table, tf.math.floormod(ids, rows))

    def train_op(loss):
        dense_vars = tf.compat.v1.trainable_variables()
        grads = tf.gradients(loss, [table] + dense_vars)  # one backward pass
        with tf.compat.v1.variable_scope(f"{name}_lazy_adam"):
            sparse = _lazy_adam_update(table, grads[0], settings.learning_rate)
        return tf.group(sparse, *_dense_adam(list(zip(grads[1:], dense_vars)), settings.learning_rate))

    return _Sparse(emb, train_op, lambda session: {"rows": rows, "hash": "key mod rows"})


def _dlrm_logits(emb: tf.Tensor, dense: tf.Tensor, seed: int) -> tf.Tensor:
    """The zoo's DLRM head: emb float32 [B, F, dim], dense float32 [B, D] -> logits float32 [B, 1]."""
    from models.common.layers import mlp
    from models.dlrm.config import DLRMConfig
    from models.dlrm.model import dot_interactions

    cfg = DLRMConfig(emb_dim=int(emb.shape[-1]))
    with tf.compat.v1.variable_scope("dlrm"):
        bottom = mlp(dense, cfg.bottom_mlp, "bottom_mlp", seed)
        z = dot_interactions(bottom, emb)
        return mlp(tf.concat([bottom, z], axis=1), cfg.top_mlp, "top_mlp", seed, last_activation=None)


def build(system: str, workload: str, settings: Settings, sizes: Optional[Dict[str, int]] = None,
          ssd_dir: str = "") -> Built:
    """Build ``system`` x ``workload`` in a fresh graph and session, variables initialised."""
    if system not in SYSTEMS or workload not in WORKLOADS:
        raise ValueError(f"unknown system/workload {system}/{workload}; known: {SYSTEMS} x {WORKLOADS}")
    graph = tf.Graph()
    with graph.as_default():
        tf.compat.v1.set_random_seed(settings.seed)
        ids = tf.compat.v1.placeholder(tf.int64, [None, settings.fields], name="ids")
        dense = tf.compat.v1.placeholder(tf.float32, [None, settings.dense], name="dense")
        labels = tf.compat.v1.placeholder(tf.float32, [None, 1], name="labels")
        name = f"{workload}_table"
        if system in MX_REC_MODES:
            sparse = _mx_rec(MX_REC_MODES[system], ids, settings, sizes or {}, ssd_dir, name)
        elif system == "tfra":
            sparse = _tfra(ids, settings, name)
        else:
            sparse = _plain(ids, settings, name)
        if workload == "micro":
            loss = tf.reduce_sum(sparse.emb * tf.constant(loss_weights(settings)))
        else:
            logits = _dlrm_logits(sparse.emb, dense, settings.seed)
            loss = tf.reduce_mean(tf.nn.sigmoid_cross_entropy_with_logits(labels=labels, logits=logits))
        train_op = sparse.train_op(loss)
        session = tf.compat.v1.Session(graph=graph)
        session.run([tf.compat.v1.global_variables_initializer(), tf.compat.v1.local_variables_initializer()])
    return Built(session, train_op, loss, {"ids": ids, "dense": dense, "labels": labels},
                 lambda: sparse.stats(session))
