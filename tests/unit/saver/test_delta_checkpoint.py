"""Delta checkpoints with admission and eviction: a base + 5 deltas restore, at every version and into every
tier, exactly as the full checkpoint of that step; a damaged or missing link is refused, naming it."""
import glob
import os
import shutil

import numpy as np
import pytest
import tensorflow as tf

from mx_rec.constants.constants import BASE_MODEL, DELTA_MODEL
from mx_rec.core.embedding import create_table, sparse_lookup
from mx_rec.optimizers import gradient_descent
from mx_rec.key_process import changes
from mx_rec.saver import checkpoint, delta_schedule, layout
from mx_rec.saver.layout import CheckpointError
from tests.graphs import fresh_graph
from tests.jobs import delta_job as job


@pytest.fixture(scope="module")
def hbm_chain(tmp_path_factory):
    directory = str(tmp_path_factory.mktemp("hbm_chain"))
    job.train_and_save(directory)
    return directory


def _shard(directory, step):
    return glob.glob(os.path.join(directory, f"model-{step}{layout.SUFFIX}", "users", "*.npz"))[0]


def test_every_version_restores_like_the_full_checkpoint_in_hbm_and_ddr(hbm_chain):
    kinds = [layout.read_manifest(os.path.join(hbm_chain, f"model-{s}"))["kind"] for s in job.STEPS]
    assert kinds == [BASE_MODEL] + [DELTA_MODEL] * job.DELTAS
    for tier in ("hbm", "ddr"):
        assert job.assert_identical(job.restore_versions(hbm_chain, tier)) > 200, tier


def test_a_delta_holds_only_what_changed_with_evictions_as_deletions(hbm_chain):
    for before, step in zip(job.STEPS, job.STEPS[1:]):
        with np.load(_shard(hbm_chain, step)) as d, np.load(_shard(os.path.join(hbm_chain, "full"), step)) as full:
            assert 0 < d["keys"].shape[0] < full["keys"].shape[0]
            assert set(d["deleted_keys"].tolist()).isdisjoint(full["keys"].tolist())  # gone at that step
            assert set(d["keys"].tolist()) <= set(full["keys"].tolist())
    deletions = sum(np.load(_shard(hbm_chain, s))["deleted_keys"].shape[0] for s in job.STEPS[1:])
    assert deletions > 0


def test_ddr_and_ssd_deltas_read_every_tier_and_restore_anywhere(tmp_path):
    job.train_and_save(str(tmp_path / "ddr"), "ddr")
    assert job.assert_identical(job.restore_versions(str(tmp_path / "ddr"), "ddr")) > 200
    os.makedirs(tmp_path / "ssd_train")
    os.makedirs(tmp_path / "ssd_restore")
    job.train_and_save(str(tmp_path / "ssd"), "ssd", str(tmp_path / "ssd_train"))
    results = job.restore_versions(str(tmp_path / "ssd"), "ssd", str(tmp_path / "ssd_restore"),
                                   versions=job.STEPS[-2:])
    assert job.assert_identical(results) > 50


def test_a_damaged_or_missing_link_is_refused_naming_it(hbm_chain, tmp_path):
    directory = str(tmp_path / "chain")
    shutil.copytree(hbm_chain, directory)
    shutil.rmtree(os.path.join(directory, f"model-{job.STEPS[4]}{layout.SUFFIX}"))
    with fresh_graph(**job.INCREMENTAL):
        job.build("hbm")
        saver = tf.compat.v1.train.Saver()
        with tf.compat.v1.Session() as sess:
            with pytest.raises(CheckpointError, match=f"needs {directory}/model-{job.STEPS[4]} .*does not exist"):
                saver.restore(sess, os.path.join(directory, f"model-{job.STEPS[5]}"))
            damaged = _shard(directory, job.STEPS[2])
            with open(damaged, "r+b") as f:
                f.seek(100)
                byte = f.read(1)
                f.seek(100)
                f.write(bytes([byte[0] ^ 0xFF]))
            with pytest.raises(CheckpointError, match=f"needs {directory}/model-{job.STEPS[2]} .*{damaged} is damaged"):
                saver.restore(sess, os.path.join(directory, f"model-{job.STEPS[3]}"))
            with pytest.raises(CheckpointError, match=f"{damaged} is damaged"):
                saver.restore(sess, os.path.join(directory, f"model-{job.STEPS[2]}"))
            saver.restore(sess, os.path.join(directory, f"model-{job.STEPS[1]}"))  # its chain is whole


def test_restore_model_version_picks_the_step(hbm_chain):
    step = job.STEPS[3]
    with fresh_graph(**job.INCREMENTAL, restore_model_version=step):
        table, _, _, _ = job.build("hbm")
        saver = tf.compat.v1.train.Saver()
        with tf.compat.v1.Session() as sess:
            saver.restore(sess, tf.train.latest_checkpoint(hbm_chain))  # names the last delta
            chain = job.snapshot(sess, table)
            saver.restore(sess, os.path.join(hbm_chain, "full", f"model-{step}"))
            job.assert_identical({step: (chain, job.snapshot(sess, table))})


def _small_model():
    table = create_table(tf.int64, 2, "small", tf.compat.v1.constant_initializer(0.5), device_vocabulary_size=20)
    ids = tf.compat.v1.placeholder(tf.int64, [None])
    step = tf.compat.v1.train.get_or_create_global_step()
    train = gradient_descent.create_hash_optimizer(0.1).minimize(
        tf.reduce_sum(sparse_lookup(table, ids)), var_list=[table.variable], global_step=step)
    return ids, train


def test_recent_key_count_threshold_leaves_rare_keys_out_of_a_delta(tmp_path):
    with fresh_graph(**job.INCREMENTAL, recent_key_count_threshold=2):
        ids, train = _small_model()
        saver = tf.compat.v1.train.Saver()
        with tf.compat.v1.Session() as sess:
            sess.run(tf.compat.v1.global_variables_initializer())
            with pytest.raises(ValueError, match="save a full \\(base\\) checkpoint first"):
                saver.save(sess, str(tmp_path / "m"), global_step=0, is_incremental_checkpoint=True, save_delta=True)
            sess.run(train, {ids: [1, 2, 3]})
            saver.save(sess, str(tmp_path / "m"), global_step=1, is_incremental_checkpoint=True)
            sess.run(train, {ids: [1, 1, 2]})  # 1: seen twice since the base, 2: once
            sess.run(train, {ids: [4, 5, 4]})
            saver.save(sess, str(tmp_path / "m"), global_step=3, is_incremental_checkpoint=True, save_delta=True)
    with np.load(_shard_of(tmp_path, 3)) as d:
        assert d["keys"].tolist() == [1, 4]


def _shard_of(directory, step, name="small"):
    return glob.glob(os.path.join(str(directory), f"m-{step}{layout.SUFFIX}", name, "*.npz"))[0]


def test_a_delta_without_incremental_init_is_refused(graph, tmp_path):
    ids, train = _small_model()
    with tf.compat.v1.Session() as sess:
        sess.run(tf.compat.v1.global_variables_initializer())
        with pytest.raises(ValueError, match=r"needs init\(is_incremental_checkpoint=True"):
            tf.compat.v1.train.Saver().save(sess, str(tmp_path / "m"), global_step=1, save_delta=True)


def test_the_hook_saves_bases_and_deltas_by_steps_in_monitored_training_session(tmp_path):
    with fresh_graph(**job.INCREMENTAL):
        ids, train = _small_model()
        hook = delta_schedule.IncrementalSaverHook(str(tmp_path), base_steps=6, delta_steps=2)
        with tf.compat.v1.train.MonitoredTrainingSession(hooks=[hook], save_checkpoint_secs=None) as sess:
            for step in range(9):
                sess.run(train, {ids: [step % 4, 7]})
    kinds = {int(p.split("-")[-3]): layout.read_manifest(p[:-len(layout.SUFFIX)]).get("kind")
             for p in glob.glob(str(tmp_path / f"model.ckpt-*{layout.SUFFIX}"))}
    # the base of step 0 went with max_to_keep=5 when the last base was saved (deltas do not prune)
    assert kinds == {2: DELTA_MODEL, 4: DELTA_MODEL, 6: BASE_MODEL, 8: DELTA_MODEL, 9: BASE_MODEL}
    assert [link["step"] for link in layout.read_manifest(str(tmp_path / "model.ckpt-8"))["chain"]] == [6]


def test_the_schedule_wants_a_base_every_due_time_and_a_delta_in_between():
    now = [0.0]
    schedule = delta_schedule.Schedule(base_secs=100, delta_secs=30, clock=lambda: now[0])
    seen = []
    for t in range(0, 230, 10):
        now[0] = float(t)
        kind = schedule.due(t)
        if kind:
            schedule.mark(t, kind)
            seen.append((t, kind))
    b, d = delta_schedule.BASE, delta_schedule.DELTA
    assert seen == [(0, b), (30, d), (60, d), (90, d), (100, b), (130, d), (160, d), (190, d), (200, b)]


def _estimator(model_dir, hooks):
    def input_fn():
        rng = np.random.default_rng(3)
        ids = rng.integers(0, 40, (64, 2)).astype(np.int64)
        return tf.data.Dataset.from_tensor_slices(({"ids": ids}, rng.random(64).astype(np.float32))).batch(8)

    def model_fn(features, labels, mode):
        sparse_opt = gradient_descent.create_hash_optimizer(0.1)
        table = create_table(tf.int64, 2, "est", tf.compat.v1.truncated_normal_initializer(seed=2),
                             device_vocabulary_size=50)
        emb = tf.reshape(sparse_lookup(table, features["ids"], is_train=mode == tf.estimator.ModeKeys.TRAIN,
                                       access_and_evict_config={"access_threshold": 2}), [-1, 4])
        w = tf.compat.v1.get_variable("w", [4, 1], initializer=tf.compat.v1.ones_initializer())
        logits = tf.squeeze(tf.matmul(emb, w), 1)
        loss = tf.reduce_mean(tf.nn.sigmoid_cross_entropy_with_logits(labels=labels, logits=logits))
        if mode == tf.estimator.ModeKeys.EVAL:
            return tf.estimator.EstimatorSpec(mode, loss=loss)
        step = tf.compat.v1.train.get_global_step()
        train = tf.group(tf.compat.v1.train.GradientDescentOptimizer(0.1).minimize(
            loss, var_list=tf.compat.v1.trainable_variables(), global_step=step),
            sparse_opt.minimize(loss, var_list=[table.variable]))
        return tf.estimator.EstimatorSpec(mode, loss=loss, train_op=train, training_chief_hooks=hooks(model_dir))

    config = tf.estimator.RunConfig(model_dir=model_dir, tf_random_seed=1, save_checkpoints_steps=2,
                                    keep_checkpoint_max=None, save_summary_steps=None, log_step_count_steps=None)
    est = tf.estimator.Estimator(model_fn, config=config)
    est.train(input_fn, max_steps=7)
    return est, input_fn


def test_estimator_deltas_evaluate_like_full_checkpoints(tmp_path):
    with fresh_graph():
        full, input_fn = _estimator(str(tmp_path / "full"), lambda d: [])
        expected = full.evaluate(input_fn, checkpoint_path=str(tmp_path / "full" / "model.ckpt-4"))["loss"]
    with fresh_graph(**job.INCREMENTAL):
        est, input_fn = _estimator(str(tmp_path / "inc"), lambda d: [
            delta_schedule.IncrementalSaverHook(d, base_steps=100, delta_steps=2)])
        prefix = str(tmp_path / "inc" / "model.ckpt-4")
        assert layout.read_manifest(prefix)["kind"] == DELTA_MODEL
        assert est.evaluate(input_fn, checkpoint_path=prefix)["loss"] == expected


def test_keys_planned_during_a_save_go_to_the_next_delta_and_a_failed_save_loses_nothing(tmp_path, monkeypatch):
    log = changes.ChangeLog()
    log.planned(np.array([5, 3, 5, -1]))
    log.removed(np.array([9]))
    taken = log.take()
    log.planned(np.array([7]))  # a pipeline prepares the next batch while the save runs
    log.commit()
    assert [a.tolist() for a in taken] == [[3, 5], [1, 2], [9]]
    assert [a.tolist() for a in log.take()] == [[7], [1], []]
    log.rollback()
    log.planned(np.array([7, 8]))
    assert [a.tolist() for a in log.take()] == [[7, 8], [2, 1], []]

    with fresh_graph(**job.INCREMENTAL):
        ids, train = _small_model()
        saver = tf.compat.v1.train.Saver()
        with tf.compat.v1.Session() as sess:
            sess.run(tf.compat.v1.global_variables_initializer())
            sess.run(train, {ids: [1, 2]})
            saver.save(sess, str(tmp_path / "m"), global_step=1, is_incremental_checkpoint=True)
            sess.run(train, {ids: [2, 3]})
            real_write = checkpoint._write_shard
            monkeypatch.setattr(checkpoint, "_write_shard", lambda *a: (_ for _ in ()).throw(OSError(5, "I/O error")))
            with pytest.raises(OSError, match="I/O error"):
                saver.save(sess, str(tmp_path / "m"), global_step=2, is_incremental_checkpoint=True, save_delta=True)
            monkeypatch.setattr(checkpoint, "_write_shard", real_write)
            sess.run(train, {ids: [4]})
            saver.save(sess, str(tmp_path / "m"), global_step=3, is_incremental_checkpoint=True, save_delta=True)
    with np.load(_shard_of(tmp_path, 3)) as d:
        assert d["keys"].tolist() == [2, 3, 4]
    assert [link["step"] for link in layout.read_manifest(str(tmp_path / "m-3"))["chain"]] == [1]
