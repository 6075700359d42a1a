"""What the zoo's training shares besides the SDK: the loss, the learning-rate schedule and the
step log.

    log = TrainLog(steps, batch_size, log_every)
    for step in range(1, steps + 1):
        _, value = sess.run([train_op, loss])
        log.step(step, value)          # ``step N loss L samples/s S`` every ``log_every`` steps
    stats = log.finish(tables)         # ``final loss L avg samples/s S (steps 2..N) <table>_size K ...``
"""
import time
from dataclasses import dataclass
from typing import List, Mapping

import numpy as np
import tensorflow as tf

from models.common.config import TrainConfig


def task_loss(logits: tf.Tensor, labels: tf.Tensor) -> tf.Tensor:
    """Sum over tasks of the mean sigmoid cross-entropy: logits, labels float32 [B, T] -> scalar."""
    per_task = tf.reduce_mean(tf.nn.sigmoid_cross_entropy_with_logits(labels=labels, logits=logits), axis=0)
    return tf.reduce_sum(per_task, name="loss")


def learning_rate(rate: float, cfg: TrainConfig, steps: int):
    """``rate``, or with ``cfg.lr_end`` < 1 a tensor falling linearly from ``rate`` to ``rate * lr_end``
    over ``steps`` global steps."""
    if cfg.lr_end >= 1.0:
        return rate
    step = tf.cast(tf.compat.v1.train.get_or_create_global_step(), tf.float32)
    done = tf.minimum(step / float(max(steps, 1)), 1.0)
    return rate * (1.0 - (1.0 - cfg.lr_end) * done)


@dataclass
class TrainStats:
    """Summary of a training run: last window's mean loss, samples/s of this rank (steps 2..N)."""

    steps: int
    final_loss: float
    samples_per_sec: float
    seconds: float


class TrainLog:
    """Prints ``step N loss L samples/s S`` (mean loss of the window since the previous line) at
    step 1, every ``log_every`` steps and at the last step; step 1 (graph warm-up, JIT compilation)
    is left out of the average rate. Make it right before the first step: its clock starts then."""

    def __init__(self, steps: int, batch_size: int, log_every: int) -> None:
        self.steps, self.batch_size, self.log_every = steps, batch_size, log_every
        self._window: List[float] = []
        self._last = float("nan")
        self._start = self._window_start = self._first_end = time.perf_counter()

    def step(self, step: int, loss: float) -> None:
        """Record the loss of ``step`` (1-based)."""
        self._window.append(float(loss))
        if step == 1:
            self._first_end = time.perf_counter()
        if step == 1 or step % self.log_every == 0 or step == self.steps:
            now = time.perf_counter()
            self._last = float(np.mean(self._window))
            rate = len(self._window) * self.batch_size / (now - self._window_start)
            print(f"step {step} loss {self._last:.4f} samples/s {rate:.1f}", flush=True)
            self._window, self._window_start = [], now

    def finish(self, tables: Mapping[str, object]) -> TrainStats:
        """Print ``final loss L avg samples/s S (steps 2..N) <table>_size K ...`` and return the figures."""
        end = time.perf_counter()
        steps = self.steps
        rate = (steps - 1) * self.batch_size / (end - self._first_end) if steps > 1 else float("nan")
        sizes = " ".join(f"{name}_size {table.size()}" for name, table in tables.items())
        print(f"final loss {self._last:.4f} avg samples/s {rate:.1f} (steps 2..{steps}) {sizes}", flush=True)
        return TrainStats(steps=steps, final_loss=self._last, samples_per_sec=rate, seconds=end - self._start)
