"""The device (HBM) backend: every key of the shard has a row in the device variable, which with
dynamic expansion starts small and grows in chunks.

    keys [K] --numpy_function(host plan)--> gather_rows [G], inverse [K], write_rows [M], write_values [M, dim]
    ResourceScatterUpdate(variable, write_rows, write_values)      # initial rows of new keys
    numpy_function(confirm written rows)                           # after the write
    gathered = ResourceGather(variable, gather_rows)  [G, dim]      # after the confirmation

Lookups of one table are independent of each other: a row inserted by one lookup is written by
every lookup that gathers it until a write is confirmed (see ``DeviceStore``).

With a float16 / bfloat16 ``storage_dtype`` the host still works in value_dtype (float32): initial
rows are computed in it and rounded by the write, gathered rows are widened to it (their gradient
stays float32, see :func:`widen`), and checkpoints read and write value_dtype arrays.
"""
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np
import tensorflow as tf

from mx_rec.key_process.key_stats import KeyStats
from mx_rec.key_process.lifecycle import Lifecycle
from mx_rec.storage.backend import Backend, HostPlan
from mx_rec.storage.device import DeviceStore
from mx_rec.storage.initial_rows import InitSpec
from mx_rec.storage.plan import BatchPlan, PlanRequest


def widen(rows: tf.Tensor, dtype: tf.DType) -> tf.Tensor:
    """``tf.cast(rows, dtype)`` whose gradient passes through in ``dtype``: TF's Cast gradient would round
    the gradient to the narrow storage type on its way to the optimizer."""
    @tf.custom_gradient
    def cast(narrow):
        return tf.cast(narrow, dtype), lambda dy: dy
    return cast(rows)


def assign(variable: tf.Variable, value: np.ndarray, session) -> None:
    """Overwrite a whole variable by feeding its initializer (adds no ops, so it works on a final graph)."""
    session.run(variable.initializer, {variable.initializer.inputs[1]: value})


class DeviceBackend(Backend):
    """HBM storage of a shard: ``capacity`` rows (``expandable``: growing without limit).

    Args:
        table_name / dim / value_dtype / init: see :class:`Backend`. capacity: the shard's rows.
        expandable: dynamic expansion (the variable grows; its growth runs in ``lock``).
        storage_dtype: the variable's dtype (None: value_dtype; float16 / bfloat16 with value_dtype float32).
    """

    def __init__(self, table_name: str, dim: int, value_dtype: tf.DType, init: InitSpec, capacity: int,
                 expandable: bool = False, storage_dtype: Optional[tf.DType] = None) -> None:
        super().__init__(table_name, dim, value_dtype, init)
        self.storage_dtype = storage_dtype or value_dtype
        self.expandable = expandable
        self.store = DeviceStore(table_name, capacity, dim, init, value_dtype.as_numpy_dtype, expandable=expandable)
        if expandable:  # lookups grow the variable one at a time (slots grow in the optimizer)
            self.lock = tf.CriticalSection(name=f"{table_name}_lock")

    @property
    def device_rows(self) -> int:
        return self.store.rows

    @property
    def padding_row(self) -> int:
        return self.store.padding_row

    def size(self) -> int:
        return self.store.size()

    def capacity(self) -> int:
        return self.store.capacity()

    def items(self) -> Tuple[np.ndarray, np.ndarray]:
        return self.store.items()

    def remove(self, keys: np.ndarray) -> np.ndarray:
        return self.store.remove(keys)

    def read_rows(self, keys: np.ndarray, gather: Callable[[np.ndarray], List[np.ndarray]]
                  ) -> Tuple[np.ndarray, List[np.ndarray]]:
        rows = self.store.index.lookup(keys)
        has = rows >= 0
        return has, [self._wide(part) for part in gather(rows[has])]

    def _wide(self, values: np.ndarray) -> np.ndarray:
        """Rows or slots read from the session as value_dtype (saved as such whatever they are stored in)."""
        return np.asarray(values).astype(self.value_dtype.as_numpy_dtype, copy=False)

    def restore_capacity(self) -> Optional[int]:
        return None if self.expandable else self.store.capacity()

    def plan(self, request: PlanRequest, lifecycle: Optional[Lifecycle], stats: Optional[KeyStats]) -> BatchPlan:
        return self._plan_batch(self.store, request, lifecycle, stats)

    def confirm_written(self, rows: np.ndarray) -> np.ndarray:
        """Host callback after the graph wrote ``rows`` (int64 [M]); returns them unchanged."""
        with self.host_lock:
            self.store.confirm_written(rows)
        return rows

    def _write_rows(self, variable: tf.Variable, rows: tf.Tensor, values: tf.Tensor, device_rows: tf.Tensor
                    ) -> tf.Tensor:
        """Write rows before the gather; with expansion, first grow the variable to ``device_rows`` rows
        (zero-filled) inside the critical section, so two lookups never grow it at once."""
        if self.storage_dtype != self.value_dtype:  # computed in value_dtype, rounded once here
            values = tf.cast(values, self.storage_dtype)

        def write():
            return tf.raw_ops.ResourceScatterUpdate(resource=variable.handle, indices=rows, updates=values,
                                                    name="init_new_rows")

        if not self.expandable:
            return write()

        def grow_then_write():
            current = tf.raw_ops.VariableShape(input=variable.handle, out_type=tf.int64)[0]

            def grow():
                extra = tf.zeros(tf.stack([device_rows - current, self.dim]), self.storage_dtype)
                grown = tf.concat([variable.read_value(), extra], axis=0)
                return variable.assign(grown, read_value=False)

            grew = tf.cond(current < device_rows, lambda: tf.group(grow()), tf.no_op)
            with tf.control_dependencies([grew]):
                return tf.group(write())

        return self.lock.execute(grow_then_write)

    def gather(self, variables: List[tf.Variable], host_plan: HostPlan, inputs: List[tf.Tensor],
               n_keys: tf.TensorShape) -> Tuple[tf.Tensor, tf.Tensor, tf.Tensor]:
        """Plan, write new rows (growing the variable with expansion), confirm, gather; see
        :meth:`Backend.gather`. Only ``variables[0]`` is touched: slots follow in the optimizer."""
        def plan_arrays(*args):
            plan = host_plan(*args)
            return plan.gather_rows, plan.inverse, plan.write_rows, plan.write_values, np.int64(plan.device_rows)

        gather_rows, inverse, write_rows, write_values, device_rows = tf.numpy_function(
            plan_arrays, inputs, [tf.int64, tf.int32, tf.int64, self.value_dtype, tf.int64],
            stateful=True, name="host_plan")
        gather_rows.set_shape([None])
        inverse.set_shape(n_keys)
        write_rows.set_shape([None])
        write_values.set_shape([None, self.dim])
        device_rows.set_shape([])
        write = self._write_rows(variables[0], write_rows, write_values, device_rows)
        with tf.control_dependencies([write]):
            confirmed = tf.numpy_function(self.confirm_written, [write_rows], tf.int64, stateful=True,
                                          name="confirm_written")
        with tf.control_dependencies([confirmed]):
            # the gradient's indices are these: optimizers then read slots only after the writes
            gather_rows = tf.identity(gather_rows)
            gathered = tf.gather(variables[0], gather_rows)
        if self.storage_dtype != self.value_dtype:
            gathered = widen(gathered, self.value_dtype)
        return gathered, gather_rows, inverse

    def read_state(self, session, variables: List[tf.Variable]) -> Tuple[np.ndarray, List[np.ndarray]]:
        keys, rows = self.store.items()
        return keys, [self._wide(value[rows]) for value in session.run(variables)]

    def write_state(self, session, variables: List[tf.Variable], slot_inits: Sequence[float], keys: np.ndarray,
                    parts: Sequence[Optional[np.ndarray]]) -> None:
        """Every key gets a device row; the variable and slots are overwritten whole (saved values are
        rounded to each variable's own dtype)."""
        self.store.clear()
        rows = self.store.load_keys(keys)
        shape = (self.store.capacity() + 1, self.dim)
        full = np.zeros(shape, variables[0].dtype.base_dtype.as_numpy_dtype)
        full[rows] = parts[0]
        assign(variables[0], full, session)
        for slot, init, saved in zip(variables[1:], slot_inits, parts[1:]):
            full = np.full(shape, init, slot.dtype.base_dtype.as_numpy_dtype)
            if saved is not None:
                full[rows] = saved
            assign(slot, full, session)

    def telemetry(self, table_counters: Dict[str, float]) -> Dict[str, float]:
        return {"keys_device": self.store.size(), "keys_host": 0, "keys_ssd": 0, "ssd_reads": 0, "ssd_writes": 0,
                **table_counters}
