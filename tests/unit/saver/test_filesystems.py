"""Checkpoints and local models on a filesystem other than the local one: TF's in-memory ``ram://``.

``ram://`` has no hard links, no atomic directory rename, and answers ``exists``/``listdir`` by
name prefix; the same unit, verification and export must work there (``mx_rec.system.files``)."""
import uuid

import numpy as np
import pytest
import tensorflow as tf

from mx_rec.inference import export_local, load_inference_model
from mx_rec.saver.layout import CheckpointError
from mx_rec.saver.warm_start import warm_start_sparse
from mx_rec.system import files
from tests.graphs import fresh_graph
from tests.helpers.inference_model import random_feed, two_table_model


def _table_rows(sess):
    from mx_rec.config.initializer import ConfigInitializer
    out = {}
    for name, table in ConfigInitializer.get_instance().tables.items():
        keys, rows = table.backend.items()
        out[name] = dict(zip(keys.tolist(), sess.run(table.variable)[rows].tolist()))
    return out


def test_files_on_ram_see_whole_names_only():
    root = f"ram://files-{uuid.uuid4().hex[:6]}"
    files.makedirs(root + "/unit.tmp/t")
    files.write_bytes(root + "/unit.tmp/t/shard", b"12345")
    files.write_bytes(root + "/unit.tmp/manifest.json", b"{}")
    assert not files.exists(root + "/unit") and files.listdir(root) == ["unit.tmp"]  # ram:// alone says both
    files.rename(root + "/unit.tmp", root + "/unit", last=["manifest.json"])
    assert files.walk_files(root) == [root + "/unit/manifest.json", root + "/unit/t/shard"]
    assert files.read_bytes(root + "/unit/t/shard") == b"12345" and files.getsize(root + "/unit/t/shard") == 5
    assert not files.link_or_copy(root + "/unit/t/shard", root + "/copy")  # no hard links: a copy
    assert files.read_bytes(root + "/copy") == b"12345"
    files.rmtree(root + "/unit")
    assert files.listdir(root) == ["copy"]


def test_save_restore_export_load_on_ram(graph):
    root = f"ram://ckpt-{uuid.uuid4().hex[:6]}"
    batch, train, probs = two_table_model()
    rng = np.random.default_rng(0)
    saver = tf.compat.v1.train.Saver()
    with tf.compat.v1.Session() as sess:
        sess.run(tf.compat.v1.global_variables_initializer())
        sess.run(train, random_feed(batch, rng, 16))
        saver.save(sess, root + "/model", global_step=1)
        sess.run(train, random_feed(batch, rng, 16))
        saver.save(sess, root + "/model")  # twice to one prefix: the second replaces the first's unit
        prefix = saver.save(sess, root + "/model")
        saved = _table_rows(sess)
        test = random_feed(batch, rng, 9)
        expected = sess.run(probs, test)
        test = {k: test[t] for k, t in batch.items()}
    assert prefix == root + "/model" and tf.train.latest_checkpoint(root) == prefix
    assert [e for e in files.listdir(root) if ".tmp-" in e or ".old-" in e] == []
    with fresh_graph():
        batch, train, probs = two_table_model()
        with tf.compat.v1.Session() as sess:
            sess.run(tf.compat.v1.global_variables_initializer())
            tf.compat.v1.train.Saver().restore(sess, prefix)
            assert _table_rows(sess) == saved
    with fresh_graph():  # warm start from the ram:// folder: one table chosen, the other starts fresh
        batch, train, probs = two_table_model()
        tf.compat.v1.train.warm_start(root, "users")
        with tf.compat.v1.Session() as sess:
            sess.run(tf.compat.v1.global_variables_initializer())
            assert warm_start_sparse(sess) == {"users": prefix}
            assert _table_rows(sess) == {"users": saved["users"], "items": {}}
    report = export_local(root, root + "/local")  # the folder: its latest checkpoint
    assert report.prefix == prefix
    with load_inference_model(root + "/local") as model:
        np.testing.assert_allclose(model.predict(test), expected, rtol=1e-6, atol=1e-7)
    shard = root + "/local/tables/users/rows.npy"
    data = bytearray(files.read_bytes(shard))
    data[-1] ^= 0xFF
    files.write_bytes(shard, bytes(data))
    with pytest.raises(CheckpointError, match="rows.npy is damaged"):
        load_inference_model(root + "/local")
