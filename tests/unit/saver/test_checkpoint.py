"""Sparse checkpoints through tf.compat.v1.train.Saver: contents, atomicity and clear errors."""
import os

import numpy as np
import pytest
import tensorflow as tf

from mx_rec.saver import checkpoint
from mx_rec.saver.layout import CheckpointError
from mx_rec.saver.sparse import export
from tests.graphs import fresh_graph
from tests.helpers.checkpoint_model import small_model as _model

def _snapshot(sess, table):
    keys, rows = table.backend.items()
    return dict(zip(keys.tolist(), sess.run(table.variable)[rows].tolist()))


def _trained_checkpoint(tmp_path, **kwargs):
    tables, ids, train = _model(**kwargs)
    saver = tf.compat.v1.train.Saver()
    with tf.compat.v1.Session() as sess:
        sess.run(tf.compat.v1.global_variables_initializer())
        sess.run(train, {ids: [1, 2, 3]})
        prefix = saver.save(sess, str(tmp_path / "model"), global_step=1)
        return prefix, _snapshot(sess, tables[0])


def test_saver_leaves_tables_to_the_sparse_checkpoint(graph, tmp_path):
    prefix, saved = _trained_checkpoint(tmp_path)
    names = [name for name, _ in tf.train.list_variables(prefix)]
    assert "global_step" in names and not any(n == "t" or n.startswith("t/") for n in names)
    assert os.path.isfile(os.path.join(prefix + "-mxrec-sparse", "t", "shard-00000-of-00001.npz"))
    with fresh_graph():
        tables, ids, train = _model()
        with tf.compat.v1.Session() as sess:
            sess.run(tf.compat.v1.global_variables_initializer())
            tf.compat.v1.train.Saver().restore(sess, prefix)
            assert _snapshot(sess, tables[0]) == saved
            assert sess.run(tf.compat.v1.train.get_global_step()) == 1


def _assert_restore_fails_and_changes_nothing(prefix, match, **model_kwargs):
    with fresh_graph():
        tables, ids, train = _model(**model_kwargs)
        with tf.compat.v1.Session() as sess:
            sess.run(tf.compat.v1.global_variables_initializer())
            sess.run(train, {ids: [7, 8]})
            before = _snapshot(sess, tables[0])
            with pytest.raises(CheckpointError, match=match):
                tf.compat.v1.train.Saver().restore(sess, prefix)
            assert _snapshot(sess, tables[0]) == before
            assert sess.run(tf.compat.v1.train.get_global_step()) == 1


def test_missing_shard_names_the_file_and_table(graph, tmp_path):
    prefix, _ = _trained_checkpoint(tmp_path)
    shard = os.path.join(prefix + "-mxrec-sparse", "t", "shard-00000-of-00001.npz")
    os.remove(shard)
    _assert_restore_fails_and_changes_nothing(prefix, f"table 't': checkpoint shard {shard} is missing")


def test_truncated_shard_names_the_file(graph, tmp_path):
    prefix, _ = _trained_checkpoint(tmp_path)
    shard = os.path.join(prefix + "-mxrec-sparse", "t", "shard-00000-of-00001.npz")
    with open(shard, "r+b") as f:
        f.truncate(os.path.getsize(shard) // 2)
    _assert_restore_fails_and_changes_nothing(prefix, f"checkpoint shard {shard} is truncated or unreadable")


def test_other_dim_or_table_set_names_the_table(graph, tmp_path):
    prefix, _ = _trained_checkpoint(tmp_path)
    _assert_restore_fails_and_changes_nothing(prefix, "table 't': checkpoint .* has dim 4, the session's table "
                                                      "has dim 6", dim=6)
    _assert_restore_fails_and_changes_nothing(prefix, r"not in the checkpoint: \['u'\]", names=("t", "u"))


def test_missing_sparse_part_is_a_clear_error(graph, tmp_path):
    prefix, _ = _trained_checkpoint(tmp_path)
    import shutil
    shutil.rmtree(prefix + "-mxrec-sparse")
    _assert_restore_fails_and_changes_nothing(prefix, "manifest .* does not exist")


def test_an_exception_mid_save_keeps_the_previous_checkpoint(graph, tmp_path, monkeypatch):
    tables, ids, train = _model(names=("a", "b"))
    saver = tf.compat.v1.train.Saver()
    with tf.compat.v1.Session() as sess:
        sess.run(tf.compat.v1.global_variables_initializer())
        sess.run(train, {ids: [1, 2]})
        first = saver.save(sess, str(tmp_path / "model"), global_step=1)
        saved = _snapshot(sess, tables[0])
        sess.run(train, {ids: [3]})
        calls = []

        def failing_write(path, state):
            calls.append(path)
            if len(calls) == 2:
                raise OSError("disk full (simulated)")
            real_write(path, state)

        real_write = checkpoint._write_shard
        monkeypatch.setattr(checkpoint, "_write_shard", failing_write)
        with pytest.raises(OSError, match="disk full"):
            saver.save(sess, str(tmp_path / "model"), global_step=2)
        assert tf.compat.v1.train.latest_checkpoint(str(tmp_path)) == first
        assert not [p for p in os.listdir(tmp_path) if "tmp" in p or p.startswith("model-2")]
        saver.restore(sess, first)
        assert _snapshot(sess, tables[0]) == saved


def test_max_to_keep_removes_old_sparse_parts(graph, tmp_path):
    tables, ids, train = _model()
    saver = tf.compat.v1.train.Saver(max_to_keep=2)
    with tf.compat.v1.Session() as sess:
        sess.run(tf.compat.v1.global_variables_initializer())
        for step in range(1, 5):
            sess.run(train, {ids: [step]})
            saver.save(sess, str(tmp_path / "model"), global_step=step)
    assert sorted(p for p in os.listdir(tmp_path) if p.endswith("-mxrec-sparse")) == [
        "model-3-mxrec-sparse", "model-4-mxrec-sparse"]


def test_export_writes_key_to_embedding(graph, tmp_path):
    tables, ids, train = _model(names=("t", "u"))
    with tf.compat.v1.Session() as sess:
        sess.run(tf.compat.v1.global_variables_initializer())
        sess.run(train, {ids: [5, -3, 5]})
        files = export(["u"], path=str(tmp_path), session=sess)
        expected = _snapshot(sess, tables[1])
    data = np.load(files["u"])
    assert data["keys"].tolist() == [-3, 5]
    for key, row in zip(data["keys"].tolist(), data["embeddings"]):
        np.testing.assert_array_equal(row, expected[key])


def _rewrite_manifest(prefix, change):
    """Edit a checkpoint's manifest and re-seal it (its digest), as a writer of another count would."""
    import json
    from mx_rec.saver import unit
    path = os.path.join(prefix + "-mxrec-sparse", "manifest.json")
    with open(path, encoding="utf-8") as f:
        manifest = json.load(f)
    change(manifest)
    manifest["digest"] = unit.manifest_digest(manifest)
    with open(path, "w", encoding="utf-8") as f:
        json.dump(manifest, f)


def test_the_manifests_key_counts_are_checked(graph, tmp_path):
    prefix, _ = _trained_checkpoint(tmp_path)
    shard = os.path.join(prefix + "-mxrec-sparse", "t", "shard-00000-of-00001.npz")

    def one_more_key(manifest):
        manifest["tables"]["t"]["shards"][0]["key_count"] += 1
    _rewrite_manifest(prefix, one_more_key)
    _assert_restore_fails_and_changes_nothing(prefix, f"checkpoint shard {shard} holds 3 keys, the manifest records 4")


def test_a_damaged_byte_or_an_edited_manifest_is_refused(graph, tmp_path):
    prefix, _ = _trained_checkpoint(tmp_path)
    manifest = os.path.join(prefix + "-mxrec-sparse", "manifest.json")
    text = open(manifest, encoding="utf-8").read()
    with open(manifest, "w", encoding="utf-8") as f:
        f.write(text.replace('"step": 1', '"step": 2'))
    _assert_restore_fails_and_changes_nothing(prefix, f"manifest {manifest} is damaged")
    with open(manifest, "w", encoding="utf-8") as f:
        f.write(text)
    index = prefix + ".index"
    with open(index, "r+b") as f:
        f.seek(5)
        byte = f.read(1)
        f.seek(5)
        f.write(bytes([byte[0] ^ 1]))
    _assert_restore_fails_and_changes_nothing(prefix, f"{index} is damaged or of another save")


def test_a_save_without_step_that_fails_after_tf_wrote_keeps_the_previous_unit(graph, tmp_path, monkeypatch):
    from mx_rec.saver import unit
    tables, ids, train = _model()
    saver = tf.compat.v1.train.Saver()
    prefix = str(tmp_path / "model")
    with tf.compat.v1.Session() as sess:
        sess.run(tf.compat.v1.global_variables_initializer())
        sess.run(train, {ids: [1, 2, 3]})
        saver.save(sess, prefix)
        saved = _snapshot(sess, tables[0])
        index = open(prefix + ".index", "rb").read()
        sess.run(train, {ids: [3, 4]})

        def fail(*args):
            raise OSError("killed (simulated) after TF wrote its files")
        monkeypatch.setattr(unit, "record_dense", fail)
        with pytest.raises(OSError, match="simulated"):
            saver.save(sess, prefix)
        monkeypatch.undo()
        assert open(prefix + ".index", "rb").read() == index  # TF's files of the previous unit are put back
        sess.run(train, {ids: [5]})
        saver.restore(sess, prefix)
        assert _snapshot(sess, tables[0]) == saved
        assert sess.run(tf.compat.v1.train.get_global_step()) == 1
        # TF's files replaced by a save that never finished: restore takes the unit's own copies
        os.remove(prefix + ".index")
        open(prefix + ".index", "wb").write(b"not the unit's index")
        sess.run(train, {ids: [6]})
        saver.restore(sess, prefix)
        assert _snapshot(sess, tables[0]) == saved
        assert sess.run(tf.compat.v1.train.get_global_step()) == 1


def test_the_next_save_removes_what_interrupted_saves_left(graph, tmp_path):
    tables, ids, train = _model()
    saver = tf.compat.v1.train.Saver()
    leftovers = ["model-1_temp/part-00000-of-00001.data-00000-of-00001", "model-1.index.tempstate123",
                 "model.meta.tmp" + "0123456789abcdef" * 2, "model-2-mxrec-sparse.tmp-999999999-abcd/t/x.npz",
                 "model-2.data-00000-of-00001", "model-1-mxrec-sparse.old-12345678/manifest.json"]
    for name in leftovers:
        os.makedirs(os.path.dirname(str(tmp_path / name)), exist_ok=True)
        open(tmp_path / name, "wb").write(b"x" * 100)
    with tf.compat.v1.Session() as sess:
        sess.run(tf.compat.v1.global_variables_initializer())
        sess.run(train, {ids: [1]})
        saver.save(sess, str(tmp_path / "model"), global_step=3)
    assert sorted(os.listdir(tmp_path)) == ["checkpoint", "model-3-mxrec-sparse", "model-3.data-00000-of-00001",
                                            "model-3.index", "model-3.meta"]


def test_a_full_disk_names_the_path_and_the_size(graph, tmp_path, monkeypatch):
    import errno
    from mx_rec.saver.unit import DiskFullError
    tables, ids, train = _model()
    saver = tf.compat.v1.train.Saver()
    with tf.compat.v1.Session() as sess:
        sess.run(tf.compat.v1.global_variables_initializer())
        sess.run(train, {ids: [1]})
        first = saver.save(sess, str(tmp_path / "model"), global_step=1)

        def full(path, state):
            raise OSError(errno.ENOSPC, "No space left on device", path)
        monkeypatch.setattr(checkpoint, "_write_shard", full)
        with pytest.raises(DiskFullError, match=r"no space left on device writing .*shard-00000-of-00001.npz: this "
                                                r"save needs about \d+ bytes in .*, \d+ bytes are free"):
            saver.save(sess, str(tmp_path / "model"), global_step=2)
    assert tf.compat.v1.train.latest_checkpoint(str(tmp_path)) == first
    assert not [p for p in os.listdir(tmp_path) if "tmp" in p or p.startswith("model-2")]
