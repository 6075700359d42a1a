"""create_table's Rec SDK arguments: padding keys (HBM and DDR), padding_keys_len as the static
send_count, and the NPU-only switches (validated, logged once)."""
import numpy as np
import pytest
import tensorflow as tf

from mx_rec.core.embedding import create_table, sparse_lookup
from mx_rec.inference.merged_table import MergedTable
from mx_rec.lookup.registry import recorded_lookups
from mx_rec.optimizers import lazy_adam
from mx_rec.saver.table_state import collect
from mx_rec.system import log as system_log
from tests.graphs import fresh_graph

B, F, D, STEPS = 16, 4, 4, 6
PADS = [0, 7]
INIT = tf.compat.v1.truncated_normal_initializer(stddev=0.1, seed=5)


def _batches():
    rng = np.random.default_rng(3)
    ids = rng.integers(0, 300, (STEPS, B, F)).astype(np.int64)
    ids[rng.random(ids.shape) < 0.3] = 0  # the feature's padding id, often
    ids[rng.random(ids.shape) < 0.1] = 7
    ids[:, 0, 0] = 0  # every batch holds both padding ids
    ids[:, 0, 1] = 7
    return ids, rng.normal(size=(STEPS, B)).astype(np.float32), rng.normal(size=(F, D)).astype(np.float32)


def _train(ddr: bool, ids_all: np.ndarray, **table_kwargs):
    """Train STEPS steps of lazy Adam; (losses, first step's embeddings, sorted keys, rows by key, table,
    the graph's lookup record)."""
    _, labels, w = _batches()
    opt = lazy_adam.create_hash_optimizer(0.05)
    sizes = dict(device_vocabulary_size=150, host_vocabulary_size=400) if ddr else dict(device_vocabulary_size=400)
    table = create_table(tf.int64, D, "padded", INIT, **sizes, **table_kwargs)
    ids = tf.compat.v1.placeholder(tf.int64, [B, F])
    y = tf.compat.v1.placeholder(tf.float32, [B])
    emb = sparse_lookup(table, ids)
    loss = tf.reduce_mean(tf.square(tf.reduce_sum(emb * w, axis=[1, 2]) - y))
    train = opt.minimize(loss, var_list=[table.variable])
    tf.compat.v1.train.get_or_create_global_step()
    with tf.compat.v1.Session() as sess:
        sess.run(tf.compat.v1.global_variables_initializer())
        first = sess.run(emb, {ids: ids_all[0]})
        losses = [sess.run([loss, train], {ids: ids_all[s], y: labels[s]})[0] for s in range(STEPS)]
        state = collect(table, sess)
    order = np.argsort(state.keys)
    return np.array(losses), first, state.keys[order], state.embeddings[order], table, recorded_lookups()[-1]


@pytest.mark.parametrize("ddr", [False, True], ids=["hbm", "ddr"])
def test_masked_padding_keys_read_zeros_own_no_row_and_train_exactly_like_minus_one(ddr):
    ids_all = _batches()[0]
    with fresh_graph():
        padded = _train(ddr, ids_all, padding_keys=PADS, padding_keys_mask=True, padding_keys_len=B * F)
    as_minus_one = np.where(np.isin(ids_all, PADS), -1, ids_all)
    with fresh_graph():
        plain = _train(ddr, as_minus_one)
    losses, first, keys, rows, table, record = padded
    np.testing.assert_array_equal(first[np.isin(ids_all[0], PADS)], 0.0)  # padding ids look up zeros
    assert not np.isin(PADS, keys).any()  # no row for them in any tier: nothing to update
    assert table.size() == len(np.setdiff1d(ids_all, PADS))
    np.testing.assert_array_equal(losses, plain[0])
    np.testing.assert_array_equal(keys, plain[2])
    np.testing.assert_array_equal(rows, plain[3])
    assert record["padding_keys"] == PADS


@pytest.mark.parametrize("ddr", [False, True], ids=["hbm", "ddr"])
def test_unmasked_padding_keys_are_ordinary_keys_that_train(ddr, monkeypatch):
    monkeypatch.setattr(system_log, "_logged", set())
    ids_all = _batches()[0]
    with fresh_graph():
        unmasked = _train(ddr, ids_all, padding_keys=PADS, padding_keys_mask=False, padding_keys_len=B * F)
    with fresh_graph():
        plain = _train(ddr, ids_all)
    losses, first, keys, rows, table, record = unmasked
    sevens = first[ids_all[0] == 7]
    np.testing.assert_array_equal(sevens, np.repeat(table.initial_values(np.array([7])), len(sevens), axis=0))
    np.testing.assert_array_equal(losses, plain[0])
    np.testing.assert_array_equal(rows, plain[3])
    pad_rows = rows[np.searchsorted(keys, PADS)]
    assert not np.allclose(pad_rows, table.initial_values(np.array(PADS)))  # they took updates
    assert "padding_keys" not in record


def test_padding_keys_len_is_the_static_send_count_and_padding_ids_do_not_count():
    with fresh_graph(use_dynamic=False) as graph:
        table = create_table(tf.int64, D, "static_pad", INIT, device_vocabulary_size=100, padding_keys=9,
                             padding_keys_mask=True, padding_keys_len=4)
        ids = tf.compat.v1.placeholder(tf.int64, [6])
        emb = sparse_lookup(table, ids)  # no send_count: padding_keys_len is
        gathers = [op for op in graph.get_operations() if op.type == "ResourceGather"]
        assert gathers[-1].outputs[0].shape.as_list() == [None, D]  # a contract, not a padding: real keys only
        with tf.compat.v1.Session() as sess:
            sess.run(tf.compat.v1.global_variables_initializer())
            out = sess.run(emb, {ids: [1, 2, 9, 3, 4, 9]})  # 4 distinct keys besides the padding id
            np.testing.assert_array_equal(out[[2, 5]], 0.0)
            with pytest.raises(tf.errors.OpError, match=r"5 distinct keys .* exceed send_count=4"):
                sess.run(emb, {ids: [1, 2, 3, 4, 5, 9]})


def test_exported_tables_read_padding_keys_as_zeros(tmp_path):
    np.save(tmp_path / "keys.npy", np.array([0, 3, 7], np.int64))
    np.save(tmp_path / "rows.npy", np.arange(6, dtype=np.float32).reshape(3, 2))
    table = MergedTable(str(tmp_path))
    out = table.lookup(np.array([[0, 3], [7, -1]]), padding_keys=[0, 7])
    np.testing.assert_array_equal(out, [[[0, 0], [2, 3]], [[0, 0], [0, 0]]])
    np.testing.assert_array_equal(table.lookup(np.array([0])), [[0, 1]])


@pytest.mark.parametrize("kwargs, error, match", [
    (dict(padding_keys_mask=True), ValueError, "padding_keys_mask=True needs padding_keys"),
    (dict(padding_keys=[1, 2], padding_keys_mask=True), ValueError, "padding_keys needs padding_keys_len"),
    (dict(padding_keys_len=8), ValueError, "padding_keys_len=8 needs padding_keys"),
    (dict(padding_keys=2**40, padding_keys_mask=True, padding_keys_len=8), ValueError,
     r"padding keys \[1099511627776\] are outside"),
    (dict(padding_keys=[], padding_keys_mask=True, padding_keys_len=8), ValueError,
     "padding_keys must hold at least one key"),
    (dict(padding_keys=["a"], padding_keys_mask=True, padding_keys_len=8), TypeError,
     "padding_keys must be an int or a list of ints"),
    (dict(padding_keys=1, padding_keys_mask=True, padding_keys_len=0), ValueError, "padding_keys_len must be"),
    (dict(padding_keys_mask="yes"), TypeError, "padding_keys_mask must be True or False"),
    (dict(shard_num=0), ValueError, r"shard_num must be an int in \[1, 8192\]"),
    (dict(hashtable_threshold=-1), ValueError, "hashtable_threshold must be"),
    (dict(enable_merge=1), TypeError, "enable_merge must be True or False"),
    (dict(fusion_optimizer_var=None), TypeError, "fusion_optimizer_var must be True or False"),
    (dict(optimizer_list="sgd"), TypeError, "optimizer_list must be a list"),
    (dict(init_param=11.0), ValueError, r"init_param=11.0 is outside \[-10, 10\]"),
])
def test_bad_arguments_name_the_table(graph, kwargs, error, match):
    with pytest.raises(error, match=f"table 'bad32': {match}"):
        create_table(tf.int32, D, "bad32", INIT, device_vocabulary_size=10, **kwargs)


def test_npu_only_switches_are_accepted_and_logged_once(graph, monkeypatch):
    monkeypatch.setattr(system_log, "_logged", set())
    lines = []
    monkeypatch.setattr(system_log.logger, "info", lines.append)
    npu = dict(enable_merge=True, shard_num=4, fusion_optimizer_var=False, hashtable_threshold=1000, optimizer_list=[])
    for name in ("npu_a", "npu_b"):
        table = create_table(tf.int64, D, name, INIT, device_vocabulary_size=10, **npu)
        assert table.config.shard_num == 4 and table.config.enable_merge
    assert len(lines) == 5 and all("has no effect here" in line for line in lines)
    assert sorted(line.split("=")[0].split(": ")[1] for line in lines if "=" in line) == [
        "enable_merge", "fusion_optimizer_var", "hashtable_threshold", "shard_num"]
    create_table(tf.int64, D, "npu_defaults", INIT, device_vocabulary_size=10, enable_merge=False, shard_num=1,
                 fusion_optimizer_var=True, hashtable_threshold=0)
    assert len(lines) == 5


def test_padding_keys_and_uint64_ids_survive_graph_modification(graph):
    from mx_rec.config.initializer import ConfigInitializer
    from mx_rec.graph.modifier import modify_graph_and_start_emb_cache
    lazy_adam.create_hash_optimizer(0.1)
    # padding keys are keys (int64): the uint64 id 2**63 + 1 is given by its bits
    table = create_table(tf.int64, D, "modified", INIT, device_vocabulary_size=100,
                         padding_keys=[3, int(np.uint64(2**63 + 1).view(np.int64))], padding_keys_mask=True,
                         padding_keys_len=8)
    ids = np.array([[1, 3, 2**63 + 1, 5], [3, 5, 6, 2**63 + 2]], np.uint64)
    dataset = tf.data.Dataset.from_tensor_slices({"ids": ids}).batch(2)
    iterator = tf.compat.v1.data.make_initializable_iterator(dataset)
    emb = sparse_lookup(table, iterator.get_next()["ids"], modify_graph=True)
    modify_graph_and_start_emb_cache()
    with tf.compat.v1.Session() as sess:
        sess.run([tf.compat.v1.global_variables_initializer(),
                  ConfigInitializer.get_instance().train_params_config.get_initializer(True)])
        out = sess.run(emb)
    keys = ids.view(np.int64)
    padding = np.isin(keys, [3, int(np.uint64(2**63 + 1).view(np.int64))])
    np.testing.assert_array_equal(out[padding], 0.0)
    np.testing.assert_array_equal(out[~padding], table.initial_values(keys[~padding]))
    assert table.size() == len(np.unique(keys[~padding]))


def test_dim_shape_must_be_one_dimensional_and_rec_sdk_keywords_are_accepted(graph):
    with pytest.raises(ValueError, match="table 'shaped': dim as a tf.TensorShape must have one dimension"):
        create_table(tf.int64, tf.TensorShape([2, 4]), "shaped", INIT, device_vocabulary_size=10)
    table = create_table(tf.int64, tf.TensorShape([4]), "shaped", INIT, device_vocabulary_size=10)
    emb = sparse_lookup(table, tf.constant([1], tf.int64), 8, True, None, False, None, None, True, None,
                        multi_lookup=True, lookup_ids=None)  # Rec SDK's positional order, and its internal keywords
    assert emb.shape.as_list() == [1, 4]


def test_an_exported_model_reads_padding_keys_as_the_session_does(graph, tmp_path):
    from mx_rec.inference import export_local, load_inference_model, set_prediction
    from mx_rec.util.variable import get_dense_and_sparse_variable
    table = create_table(tf.int64, D, "exported", INIT, device_vocabulary_size=100, padding_keys=5,
                         padding_keys_mask=True, padding_keys_len=2 * B)
    batch = {"ids": tf.compat.v1.placeholder(tf.int64, [None, 2], name="ids"),
             "label": tf.compat.v1.placeholder(tf.float32, [None], name="label")}
    w = tf.constant(np.linspace(-1, 1, 2 * D, dtype=np.float32).reshape(2 * D, 1))

    def logits(is_train):  # keys without a row read 0.25; the padding key 5 must read zeros all the same
        emb = sparse_lookup(table, batch["ids"], is_train=is_train, serving_default_value=0.25, name=f"l_{is_train}")
        return tf.squeeze(tf.matmul(tf.reshape(emb, [-1, 2 * D]), w), 1)

    loss = tf.reduce_mean(tf.square(logits(True) - batch["label"]))
    train = lazy_adam.create_hash_optimizer(0.05).minimize(loss, var_list=get_dense_and_sparse_variable()[1])
    probs = tf.sigmoid(logits(False))
    set_prediction(probs, batch)
    rng = np.random.default_rng(1)
    test = {"ids": np.array([[5, 1], [5, 5], [77, 2]], np.int64), "label": np.zeros(3, np.float32)}
    with tf.compat.v1.Session() as sess:
        sess.run(tf.compat.v1.global_variables_initializer())
        for _ in range(3):
            ids = rng.integers(0, 10, (B, 2))
            sess.run(train, {batch["ids"]: ids, batch["label"]: rng.random(B).astype(np.float32)})
        tf.compat.v1.train.Saver().save(sess, str(tmp_path / "ckpt" / "model"), global_step=3)
        expected = sess.run(probs, {batch[k]: v for k, v in test.items()})
    assert expected[1] == pytest.approx(0.5)  # two padding ids: a zero logit
    export_local(str(tmp_path / "ckpt"), str(tmp_path / "local"))
    np.testing.assert_allclose(load_inference_model(str(tmp_path / "local")).predict(test), expected, atol=1e-6)
