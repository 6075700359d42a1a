"""``MonitoredTrainingSession(checkpoint_dir=...)`` over a sparse table, run as its own process (1 or N ranks).

    monitored_job.py DIR steps LAST      checkpoints every 5 steps, train to step LAST (a resumed job
                                         restores DIR's latest checkpoint first, as MonitoredTrainingSession does)
    monitored_job.py DIR seconds LAST    checkpoints every 1000 s of a clock that rank 0 moves forward by
                                         1001 s after each step in JUMPS (the other ranks' clocks stay put:
                                         every rank must still save at the same step)
    monitored_job.py DIR all             one process, three jobs one after another, each in a new graph
                                         and configuration (nothing but the checkpoint folder carries state):
                                         DIR/straight "seconds 20"; DIR/resumed "steps 10", then "steps 20"

The batch is a pure function of (global step, rank), read in the graph, so a resumed job sees
the batches an uninterrupted one sees. Dumps ``DIR/<tag>-rank<r>.npz`` (tag: the mode, then LAST):
the global step and loss of every step run, the table's keys/rows/slots sorted by key, the dense
weights, and the steps of every checkpoint TF's state file lists.
"""
import os
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
from tensorflow.python.training import basic_session_run_hooks  # noqa: E402

from mx_rec.core.embedding import create_table, sparse_lookup  # noqa: E402
from mx_rec.optimizers import lazy_adam  # noqa: E402
from mx_rec.saver.table_state import collect  # noqa: E402
from mx_rec.util.communication import hccl_ops  # noqa: E402
from mx_rec.util.initialize import init, terminate_config_initializer  # noqa: E402

B, F, D, POOL = 32, 3, 4, 300
SAVE_STEPS = 5
SAVE_SECS = 1000
JUMPS = (6, 13)
tf.compat.v1.disable_eager_execution()


class _Clock:
    """Stands in for the ``time`` module in TF's session-run hooks: real time plus a movable offset."""

    def __init__(self, real):
        self._real = real
        self.offset = 0.0

    def time(self):
        return self._real.time() + self.offset

    def __getattr__(self, name):
        return getattr(self._real, name)


class _JumpClock(tf.compat.v1.train.SessionRunHook):
    def __init__(self, clock, step_tensor, jumps):
        self._clock, self._step, self._jumps = clock, step_tensor, set(jumps)

    def before_run(self, run_context):
        return tf.compat.v1.train.SessionRunArgs(self._step)

    def after_run(self, run_context, run_values):
        if int(run_values.results) + 1 in self._jumps:  # the step just run (the batch's step, read before the increment)
            self._clock.offset += SAVE_SECS + 1


def build(rank: int):
    table = create_table(tf.int64, D, "users", tf.compat.v1.truncated_normal_initializer(stddev=0.1, seed=2),
                         device_vocabulary_size=POOL + 10)
    step = tf.compat.v1.train.get_or_create_global_step()
    seed = tf.stack([tf.cast(tf.identity(step), tf.int32), tf.constant(rank)])  # the batch of (step, rank)
    uniform = tf.random.stateless_uniform([B, F], seed=seed)
    ids = tf.cast(tf.floor(uniform * uniform * POOL), tf.int64) * 13 - 40
    labels = tf.cast(tf.equal(ids[:, 0] % 2, 0), tf.float32)  # learnable from the first id's row
    x = tf.reshape(sparse_lookup(table, ids), [B, F * D])
    w = tf.compat.v1.get_variable("w", [F * D, 1], initializer=tf.constant_initializer(0.05))
    logits = tf.squeeze(tf.matmul(x, w), 1)
    loss = tf.reduce_mean(tf.nn.sigmoid_cross_entropy_with_logits(labels=labels, logits=logits))
    grads = tf.gradients(loss, [w, table.variable])
    dense = tf.compat.v1.train.AdamOptimizer(0.01).apply_gradients([(hccl_ops.allreduce(grads[0], "mean"), w)],
                                                                   global_step=step)
    sparse = lazy_adam.create_hash_optimizer(0.05).apply_gradients([(grads[1], table.variable)])
    return table, step, seed[0], loss, tf.group(dense, sparse), w


def main(directory: str, mode: str, last: int) -> None:
    config = init()
    rank = config.rank_id
    table, step, read_step, loss, train, w = build(rank)
    hooks = [tf.compat.v1.train.StopAtStepHook(last_step=last)]
    if mode == "seconds":
        clock = _Clock(time)
        basic_session_run_hooks.time = clock
        hooks.append(_JumpClock(clock, read_step, JUMPS if rank == 0 else ()))
        timing = dict(save_checkpoint_secs=SAVE_SECS, save_checkpoint_steps=None)
    else:
        timing = dict(save_checkpoint_steps=SAVE_STEPS, save_checkpoint_secs=None)
    steps, losses = [], []
    with tf.compat.v1.train.MonitoredTrainingSession(checkpoint_dir=directory, hooks=hooks, save_summaries_steps=None,
                                                    save_summaries_secs=None, log_step_count_steps=None,
                                                    **timing) as sess:
        first = sess.run(step)
        while not sess.should_stop():
            s, value, _ = sess.run([read_step, loss, train])
            steps.append(s)
            losses.append(value)
        raw = sess._tf_sess()  # pylint: disable=protected-access
        state = collect(table, raw)
        weights = raw.run(w)
    state_file = tf.compat.v1.train.get_checkpoint_state(directory)
    saved = [int(p.rsplit("-", 1)[1]) for p in state_file.all_model_checkpoint_paths] if state_file else []
    order = np.argsort(state.keys)
    np.savez(os.path.join(directory, f"{mode}{last}-rank{rank}.npz"), first=first, steps=np.array(steps),
             losses=np.array(losses, np.float64), keys=state.keys[order], embeddings=state.embeddings[order],
             slots=np.stack([state.slots[n][order] for n in sorted(state.slots)]), weights=weights,
             saved=np.array(saved, np.int64), ranks=config.rank_size)
    terminate_config_initializer()
    basic_session_run_hooks.time = time


def run_all(directory: str) -> None:
    for sub, mode, last in (("straight", "seconds", 20), ("resumed", "steps", 10), ("resumed", "steps", 20)):
        os.makedirs(os.path.join(directory, sub), exist_ok=True)
        with tf.Graph().as_default():
            main(os.path.join(directory, sub), mode, last)


if __name__ == "__main__":
    if sys.argv[2] == "all":
        run_all(sys.argv[1])
    else:
        main(sys.argv[1], sys.argv[2], int(sys.argv[3]))
