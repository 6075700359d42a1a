"""Delta checkpoints with admission and eviction: train, save a base and 5 deltas (and a full checkpoint at
each of those steps), restore every version and compare with the full checkpoint of that step.

Imported by tests/unit/test_delta_checkpoint.py (one process), and run as its own job on several ranks:

    delta_job.py DIR [OTHER]   train on this job's ranks into DIR, restore every version of DIR (and of the
                               chain OTHER saved by another rank count) here, write DIR/ok-<rank>.json
"""
import json
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from mx_rec.constants.constants import ASCEND_TIMESTAMP  # noqa: E402
from mx_rec.core.embedding import create_table, sparse_lookup  # noqa: E402
from mx_rec.core.feature_process import EvictHook  # noqa: E402
from mx_rec.optimizers import lazy_adam  # noqa: E402
from mx_rec.saver.table_state import collect  # noqa: E402
from mx_rec.communication import collectives  # noqa: E402
from mx_rec.util.variable import get_dense_and_sparse_variable  # noqa: E402
from tests.graphs import fresh_graph  # noqa: E402

B, F, D, POOL = 32, 3, 4, 3000
BASE_STEP, DELTA_EVERY, DELTAS = 8, 4, 5
STEPS = [BASE_STEP + DELTA_EVERY * i for i in range(DELTAS + 1)]  # base, then the deltas' steps
INCREMENTAL = dict(is_incremental_checkpoint=True, save_checkpoint_due_time=3600, save_delta_checkpoints_secs=600)
TIERS = {"hbm": {"device_vocabulary_size": POOL},
         "ddr": {"device_vocabulary_size": 160, "host_vocabulary_size": POOL},
         "ssd": {"device_vocabulary_size": 160, "host_vocabulary_size": 100, "ssd_vocabulary_size": POOL}}
tf.compat.v1.disable_eager_execution()


def batch(step: int):
    """Zipf ids (a hot head, a long tail that eviction removes), and a timestamp 10 s per step."""
    rng = np.random.default_rng(500 + step)
    ids = (np.minimum(rng.zipf(1.4, (B, F)), POOL // 2) * 13 + rng.integers(0, 2, (B, F))).astype(np.int64)
    return ids, rng.random(B).astype(np.float32), np.int64(1000 + 10 * step)


def build(tier: str, ssd_path: str = ""):
    """The model: one table with admission (3 sightings) and eviction (unseen for 60 s), lazy Adam, a dense layer."""
    sparse_opt = lazy_adam.create_hash_optimizer(0.05)  # before the table: DDR/SSD slots move with the rows
    sizes = dict(TIERS[tier])
    if "ssd_vocabulary_size" in sizes:
        sizes["ssd_data_path"] = [ssd_path]
    table = create_table(tf.int64, D, "users", tf.compat.v1.truncated_normal_initializer(stddev=0.1, seed=5),
                         **sizes)
    ids = tf.compat.v1.placeholder(tf.int64, [B, F])
    labels = tf.compat.v1.placeholder(tf.float32, [B])
    stamp = tf.compat.v1.placeholder(tf.int64, [])
    tf.compat.v1.add_to_collection(ASCEND_TIMESTAMP, stamp)
    emb = sparse_lookup(table, ids, access_and_evict_config={"access_threshold": 3, "eviction_threshold": 60})
    w = tf.compat.v1.get_variable("w", [F * D, 1], initializer=tf.constant_initializer(0.05))
    logits = tf.squeeze(tf.matmul(tf.reshape(emb, [B, F * D]), w), 1)
    loss = tf.reduce_mean(tf.nn.sigmoid_cross_entropy_with_logits(labels=labels, logits=logits))
    step = tf.compat.v1.train.get_or_create_global_step()
    dense, sparse = get_dense_and_sparse_variable()
    train = tf.group(tf.compat.v1.train.AdamOptimizer(0.01).minimize(loss, var_list=dense, global_step=step),
                     sparse_opt.minimize(loss, var_list=sparse))
    hook = EvictHook(evict_enable=True, evict_step_interval=3)
    hook.begin()
    return table, (ids, labels, stamp), train, hook


def train_and_save(directory: str, tier: str = "hbm", ssd_path: str = "") -> None:
    """Train STEPS[-1] steps; at STEPS[0] a base, at the others a delta, and at each a plain full checkpoint."""
    with fresh_graph(**INCREMENTAL):
        table, feeds, train, hook = build(tier, ssd_path)
        saver = tf.compat.v1.train.Saver(max_to_keep=3)
        full_saver = tf.compat.v1.train.Saver(max_to_keep=None)
        with tf.compat.v1.Session() as sess:
            sess.run(tf.compat.v1.global_variables_initializer())
            for step in range(1, STEPS[-1] + 1):
                ids, labels, stamp = batch(step)
                sess.run(train, dict(zip(feeds, (ids, labels, stamp))))
                if step % 3 == 0:
                    hook.evict(sess)
                if step in STEPS:
                    saver.save(sess, os.path.join(directory, "model"), global_step=step,
                               is_incremental_checkpoint=True, save_delta=step != STEPS[0])
                    full_saver.save(sess, os.path.join(directory, "full", "model"), global_step=step,
                                    latest_filename="full_state")
        assert hook.evicted > 0 and table.rejections > 0, (hook.evicted, table.rejections)


def snapshot(sess, table) -> dict:
    """This rank's table state by key, and the dense variables."""
    state = collect(table, sess)
    order, stat_order = np.argsort(state.keys), np.argsort(state.stat_keys)
    out = {"keys": state.keys[order], "embeddings": state.embeddings[order],
           "stat_keys": state.stat_keys[stat_order], "counts": state.counts[stat_order],
           "last_seen": state.last_seen[stat_order]}
    out.update({f"slot:{n}": v[order] for n, v in state.slots.items()})
    dense, _ = get_dense_and_sparse_variable()
    out.update({f"dense:{v.name}": value for v, value in zip(dense, sess.run(dense))})
    return out


def restore_versions(directory: str, tier: str = "hbm", ssd_path: str = "", versions=STEPS) -> dict:
    """Restore each version of DIR's chain and the full checkpoint of that step; {step: (chain, full)} snapshots."""
    out = {}
    with fresh_graph(**INCREMENTAL):
        table, _, _, _ = build(tier, ssd_path)
        saver = tf.compat.v1.train.Saver()
        with tf.compat.v1.Session() as sess:
            for step in versions:
                saver.restore(sess, os.path.join(directory, f"model-{step}"))
                chain = snapshot(sess, table)
                saver.restore(sess, os.path.join(directory, "full", f"model-{step}"))
                out[step] = (chain, snapshot(sess, table))
    return out


def assert_identical(results: dict) -> int:
    """Exact equality of every array of each (chain, full) pair; returns the keys compared."""
    compared = 0
    for step, (chain, full) in results.items():
        assert sorted(chain) == sorted(full), step
        for name in full:
            np.testing.assert_array_equal(chain[name], full[name], err_msg=f"step {step}: {name}")
        compared += full["keys"].shape[0]
    return compared


def hook_run(directory: str) -> dict:
    """5 steps in MonitoredTrainingSession with IncrementalSaverHook(delta_steps=2): {step: kind} saved."""
    from mx_rec.saver import delta_schedule, layout
    with fresh_graph(**INCREMENTAL):
        _, feeds, train, _ = build("hbm")
        hook = delta_schedule.IncrementalSaverHook(directory, base_steps=100, delta_steps=2)
        with tf.compat.v1.train.MonitoredTrainingSession(hooks=[hook], save_checkpoint_secs=None) as sess:
            for step in range(1, 6):
                sess.run(train, dict(zip(feeds, batch(step))))
    return {int(name.split("-")[1].split(layout.SUFFIX)[0]): layout.read_manifest(
        os.path.join(directory, name[:-len(layout.SUFFIX)]))["kind"]
        for name in os.listdir(directory) if name.endswith(layout.SUFFIX)}


def main() -> None:
    directory = sys.argv[1]
    train_and_save(directory)
    report = {"own": assert_identical(restore_versions(directory))}
    if len(sys.argv) > 2:
        report["other"] = assert_identical(restore_versions(sys.argv[2]))
    report["hook"] = hook_run(os.path.join(directory, "hook"))  # ranks agree on each save's kind
    with open(os.path.join(directory, f"ok-{collectives.get_rank_id()}.json"), "w", encoding="utf-8") as f:
        json.dump(report, f)


if __name__ == "__main__":
    main()
