"""The train op and the training loop.

Dense variables: Adam, gradients averaged over ranks (``hccl_ops.allreduce(g, "mean")``).
Tables: hash optimizers (lazy updates of the looked-up rows). With dynamic expansion the Rec SDK
flow is used instead: gradients with respect to the looked-up rows
(``ASCEND_SPARSE_LOOKUP_LOCAL_EMB``) applied at their addresses (``ASCEND_SPARSE_LOOKUP_ID_OFFSET``)
by one ``*_by_addr`` optimizer.
"""
import importlib
import time
from dataclasses import dataclass
from typing import Dict, List, Mapping, Sequence

import numpy as np
import tensorflow as tf

from mx_rec.constants.constants import ASCEND_SPARSE_LOOKUP_ID_OFFSET, ASCEND_SPARSE_LOOKUP_LOCAL_EMB
from mx_rec.util.communication import hccl_ops
from mx_rec.util.variable import get_dense_and_sparse_variable

from common.config import TrainConfig
from common.embedding import TableSpec
from common.switches import JobSwitches

BY_ADDRESS = {  # optimizer -> (module, factory) of its by-address variant
    "lazy_adam": ("mx_rec.optimizers.lazy_adam_by_addr", "create_hash_optimizer_by_address"),
    "adagrad": ("mx_rec.optimizers.adagrad_by_addr", "create_hash_optimizer_by_address"),
    "gradient_descent": ("mx_rec.optimizers.gradient_descent_by_addr", "create_hash_optimizer_by_addr"),
}


@dataclass
class SparseOptimizers:
    """The hash optimizers of a job: one per table, or one by-address optimizer for all tables."""

    per_table: Dict[str, object]
    by_address: object = None
    note: str = ""


def learning_rate(rate: float, cfg: TrainConfig, steps: int):
    """``rate``, or with ``cfg.lr_end`` < 1 a tensor falling linearly from ``rate`` to ``rate * lr_end``
    over ``steps`` global steps."""
    if cfg.lr_end >= 1.0:
        return rate
    step = tf.cast(tf.compat.v1.train.get_or_create_global_step(), tf.float32)
    done = tf.minimum(step / float(max(steps, 1)), 1.0)
    return rate * (1.0 - (1.0 - cfg.lr_end) * done)


def make_sparse_optimizers(specs: Sequence[TableSpec], cfg: TrainConfig, switches: JobSwitches,
                           steps: int) -> SparseOptimizers:
    """Create the hash optimizers (before the tables: DDR tables make their slots at creation).

    With ``USE_DYNAMIC_EXPANSION=1`` one by-address optimizer of ``cfg.sparse_optimizer`` serves
    every table (as in Rec SDK scripts); FTRL has no by-address form, so lazy Adam stands in.
    """
    if switches.use_dynamic_expansion:
        kind = cfg.sparse_optimizer if cfg.sparse_optimizer in BY_ADDRESS else "lazy_adam"
        module, factory = BY_ADDRESS[kind]
        create = getattr(importlib.import_module(module), factory)
        optimizer = create(learning_rate=learning_rate(cfg.sparse_lr, cfg, steps))
        wanted = sorted({s.optimizer or cfg.sparse_optimizer for s in specs} - {kind})
        note = (f"dynamic expansion: every table uses {kind} by address"
                + (f" (instead of {', '.join(wanted)})" if wanted else ""))
        return SparseOptimizers(per_table={}, by_address=optimizer, note=note)
    per_table = {}
    for spec in specs:
        kind = spec.optimizer or cfg.sparse_optimizer
        module = importlib.import_module(f"mx_rec.optimizers.{kind}")
        rate = learning_rate(spec.learning_rate or cfg.sparse_lr, cfg, steps)
        per_table[spec.name] = module.create_hash_optimizer(learning_rate=rate, name=f"{spec.name}_{kind}")
    return SparseOptimizers(per_table=per_table)


def make_train_op(loss: tf.Tensor, tables: Mapping[str, object], optimizers: SparseOptimizers,
                  cfg: TrainConfig, steps: int) -> tf.Operation:
    """Adam on the dense variables (gradients averaged over ranks); hash optimizers on the tables.

    One ``tf.gradients`` call serves both kinds of variables: a backward pass per optimizer would
    run the whole model's backward pass again for each.
    """
    global_step = tf.compat.v1.train.get_or_create_global_step()
    dense_vars, _ = get_dense_and_sparse_variable()  # also builds merged lookups (multi-lookup)
    if optimizers.by_address is not None:
        sparse_targets = tf.compat.v1.get_collection(ASCEND_SPARSE_LOOKUP_LOCAL_EMB)
    else:
        sparse_targets = [table.variable for table in tables.values()]
    grads = tf.gradients(loss, dense_vars + sparse_targets)
    dense_grads, sparse_grads = grads[:len(dense_vars)], grads[len(dense_vars):]
    dense_opt = tf.compat.v1.train.AdamOptimizer(learning_rate=learning_rate(cfg.dense_lr, cfg, steps))
    ops = [dense_opt.apply_gradients([(hccl_ops.allreduce(g, "mean"), v) for g, v in zip(dense_grads, dense_vars)
                                      if g is not None], global_step=global_step)]
    if optimizers.by_address is not None:
        addresses = tf.compat.v1.get_collection(ASCEND_SPARSE_LOOKUP_ID_OFFSET)
        ops.append(optimizers.by_address.apply_gradients(list(zip(sparse_grads, addresses))))
    else:
        for (name, table), grad in zip(tables.items(), sparse_grads):
            ops.append(optimizers.per_table[name].apply_gradients([(grad, table.variable)]))
    return tf.group(*ops, name="train_op")


@dataclass
class TrainStats:
    """Summary of a training run: last window's mean loss, samples/s of this rank (steps 2..N)."""

    steps: int
    final_loss: float
    samples_per_sec: float
    seconds: float


def train_loop(sess: tf.compat.v1.Session, train_op: tf.Operation, loss: tf.Tensor, steps: int, batch_size: int,
               log_every: int, tables: Mapping[str, object]) -> TrainStats:
    """Run ``steps`` steps, printing ``step N loss L samples/s S`` (mean loss of the window), then
    ``final loss L avg samples/s S (steps 2..N) <table>_size K ...``. Step 1 (graph warm-up, JIT
    compilation) is left out of the average rate."""
    window: List[float] = []
    last = float("nan")
    start = window_start = time.perf_counter()
    first_end = start
    for step in range(1, steps + 1):
        _, value = sess.run([train_op, loss])
        window.append(float(value))
        if step == 1:
            first_end = time.perf_counter()
        if step == 1 or step % log_every == 0 or step == steps:
            now = time.perf_counter()
            last = float(np.mean(window))
            print(f"step {step} loss {last:.4f} samples/s {len(window) * batch_size / (now - window_start):.1f}",
                  flush=True)
            window, window_start = [], now
    end = time.perf_counter()
    rate = (steps - 1) * batch_size / (end - first_end) if steps > 1 else float("nan")
    sizes = " ".join(f"{name}_size {table.size()}" for name, table in tables.items())
    print(f"final loss {last:.4f} avg samples/s {rate:.1f} (steps 2..{steps}) {sizes}", flush=True)
    return TrainStats(steps=steps, final_loss=last, samples_per_sec=rate, seconds=end - start)
