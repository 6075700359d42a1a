"""The tiered backend (DDR, DDR + SSD): the device variable is a cache over host memory (and SSD).

    keys [U] --numpy_function(host plan)--> gather_rows, inverse, write_rows [M], write_values [parts, M, dim],
                                            swap_out (rows [V], keys, access counts, host slots)
    rows leaving = gather(variable and each slot, swap_out.rows)  --numpy_function--> back to the host
    ResourceScatterUpdate(variable and each slot, write_rows, write_values[i])   # rows arriving
    gathered = gather(variable, gather_rows)                # outside the critical section (rows pinned)

The plan and the swaps of a lookup run inside the table's critical section (``lock``), one lookup
at a time; what a plan swaps out travels with it through the graph, so nothing waits on the
backend for a later op. Optimizer slots travel with their rows, so the row width is known once the
slots are frozen (:meth:`TieredBackend.freeze_slots`, at ``create_table``). Lookahead (see
``TieredStore.prepare``) places a lookup's next batch in a second critical-section execution.
"""
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np
import tensorflow as tf

from mx_rec.key_process.key_stats import KeyStats
from mx_rec.key_process.lifecycle import Lifecycle
from mx_rec.storage.backend import Backend, HostPlan, NextPlacement
from mx_rec.storage.base import Placement, SwapOut
from mx_rec.storage.initial_rows import InitSpec
from mx_rec.storage.plan import BatchPlan, PlanRequest, gather_plan
from mx_rec.storage.ssd import SsdStore
from mx_rec.storage.tiered import TierCounters, TieredStore
from mx_rec.storage.victims import VictimPolicy, Victims


def _empty_swap() -> Tuple[np.ndarray, ...]:
    return tuple(np.empty(0, np.int64) for _ in range(4))


class TieredBackend(Backend):
    """DDR/SSD storage of a shard: ``device_rows`` cached on the device over ``host_rows`` in host
    memory and ``ssd_rows`` in RocksDB under ``ssd_paths`` (no SSD tier when 0).

    Args:
        table_name / dim / value_dtype / init: see :class:`Backend`. rank: this process's rank (SSD file names).
        victims: the device cache's victim choice (``storage.victims``).
    """

    holds_slots = True
    places_ahead = True
    restores_device = False  # restored keys start on the host; the device cache starts from its initializer

    def __init__(self, table_name: str, dim: int, value_dtype: tf.DType, init: InitSpec, device_rows: int,
                 host_rows: int, ssd_rows: int = 0, ssd_paths: Optional[Sequence[str]] = None, rank: int = 0,
                 victims: VictimPolicy = Victims.default) -> None:
        super().__init__(table_name, dim, value_dtype, init)
        self._device_rows = device_rows
        self.host_rows = host_rows
        self.ssd_rows = ssd_rows
        self.ssd_paths = ssd_paths
        self.rank = rank
        self.victims = victims
        self.slot_inits: Tuple[float, ...] = ()
        self._store: Optional[TieredStore] = None
        self.lock = tf.CriticalSection(name=f"{table_name}_lock")  # each lookup's plan and swaps run alone

    @property
    def store(self) -> TieredStore:
        """The tiers' host state (exists once the slots are frozen)."""
        if self._store is None:
            raise RuntimeError(f"table '{self.table_name}': the DDR/SSD tiers need the table's optimizer slots, "
                               "which create_table sets up; the table was used before that")
        return self._store

    @property
    def counters(self) -> TierCounters:
        """Running totals of the tiers (lookups, hits, swaps, lookahead)."""
        return self.store.counters

    def freeze_slots(self, slot_inits: Sequence[float]) -> None:
        """Rows become full width: the embedding, then each slot (``slot_inits``, in slot order)."""
        self.slot_inits = tuple(slot_inits)
        width = self.dim * (1 + len(self.slot_inits))
        dtype = self.value_dtype.as_numpy_dtype
        ssd = None
        if self.ssd_rows:
            ssd = SsdStore(self.table_name, self.ssd_paths, self.ssd_rows, width, dtype, self.rank)
        self._store = TieredStore(self.table_name, self._device_rows, self.host_rows, self.dim,
                                  self.full_initial_rows, width, dtype, ssd, self.victims)

    def full_initial_rows(self, keys: np.ndarray) -> np.ndarray:
        """Initial rows with their slots' initial values: value_dtype [K, dim * (1 + slots)]."""
        dtype = self.value_dtype.as_numpy_dtype
        parts = [self.initial_values(keys)]
        parts += [np.full((keys.shape[0], self.dim), init, dtype) for init in self.slot_inits]
        return np.concatenate(parts, axis=1)

    @property
    def device_rows(self) -> int:
        return self._device_rows

    @property
    def padding_row(self) -> int:
        return self._device_rows

    def size(self) -> int:
        return self.store.size() if self._store is not None else 0

    def capacity(self) -> int:
        return self._device_rows + self.host_rows + self.ssd_rows

    def items(self) -> Tuple[np.ndarray, np.ndarray]:
        return self.store.items()

    def remove(self, keys: np.ndarray) -> np.ndarray:
        return self.store.remove(keys)

    def restore_capacity(self) -> Optional[int]:
        return self.host_rows + self.ssd_rows  # a restore fills the lower tiers only

    def flush(self) -> None:
        if self.store.ssd is not None:
            self.store.ssd.drain()

    # --- a lookup's host step ---------------------------------------------------------------------
    def plan(self, request: PlanRequest, lifecycle: Optional[Lifecycle], stats: Optional[KeyStats]) -> BatchPlan:
        """See :meth:`Backend.plan`; a batch placed ahead (``request.seq``) takes its prepared rows."""
        if request.seq is not None:
            rows = self.store.take_prepared(request.lookup_id, request.seq, request.keys)
            if rows is not None:
                return self._placed_plan(request.keys, rows, request.lookup_id, request.weights)
        return self._plan_batch(self.store, request, lifecycle, stats)

    def _placed_plan(self, unique: np.ndarray, rows: np.ndarray, lookup_id: int,
                     weights: Optional[np.ndarray]) -> BatchPlan:
        """The plan of distinct keys int64 [U] (seen ``weights`` int64 [U] times, None: once each) that a
        lookahead placed at ``rows`` int64 [U]; the keys it left out (row -1, not held by the table
        then) are inserted now (``TieredStore.place_new``)."""
        new = np.flatnonzero(rows < 0)
        if new.shape[0]:
            placement = self.store.place_new(unique[new], lookup_id)
            all_rows = rows.copy()
            all_rows[new] = placement.rows
            placement.rows = all_rows  # the new keys' writes and swaps, with every key's row
        else:
            placement = Placement(rows, np.empty(0, np.int64), self.store.no_values())
        occurrences = weights if weights is not None else np.ones(unique.shape[0], np.int64)
        return gather_plan(placement, unique, np.arange(unique.shape[0], dtype=np.int32), occurrences,
                           self.padding_row)

    def prepare(self, keys: np.ndarray, lookup_id: int, seq: int) -> Optional[Placement]:
        return self.store.prepare(keys, lookup_id, seq)

    # --- graph ops --------------------------------------------------------------------------------
    def _swap(self, variables: List[tf.Variable], swap_out: Sequence[tf.Tensor], write_rows: tf.Tensor,
              write_values: tf.Tensor) -> tf.Tensor:
        """Inside the critical section: read the rows leaving the device (``swap_out``: rows int64 [V],
        keys, access counts, host slots; with their slots) back to the host, then write the arriving
        rows [M] (``write_values`` [parts, M, dim]: the embedding, then each slot). Each half is
        skipped when empty (a batch placed ahead swaps nothing in its own step). Returns a tensor that
        exists once the writes are done."""
        write_values.set_shape([len(variables), None, self.dim])
        rows, keys, freq, host_slots = swap_out

        def accept(keys_np, freq_np, slots_np, *parts):
            self.store.accept_swapped_out(SwapOut(keys=keys_np, freq=freq_np, host_slots=slots_np), parts)
            return np.int64(0)

        def read_back():
            leaving = [tf.gather(v, rows) for v in variables]
            return tf.numpy_function(accept, [keys, freq, host_slots] + leaving, tf.int64, stateful=True,
                                     name="swap_out")

        def write():
            with tf.control_dependencies([tf.raw_ops.ResourceScatterUpdate(
                    resource=v.handle, indices=write_rows, updates=write_values[i]) for i, v in enumerate(variables)]):
                return tf.constant(1, tf.int64)

        accepted = tf.cond(tf.size(rows) > 0, read_back, lambda: tf.constant(0, tf.int64))
        with tf.control_dependencies([accepted]):
            return tf.cond(tf.size(write_rows) > 0, write, lambda: tf.constant(0, tf.int64))

    def gather(self, variables: List[tf.Variable], host_plan: HostPlan, inputs: List[tf.Tensor],
               n_keys: tf.TensorShape) -> Tuple[tf.Tensor, tf.Tensor, tf.Tensor]:
        """Plan and swap inside the critical section, then gather outside it (the batch's rows are
        pinned: no other plan of the table moves them until this lookup's next one)."""
        def plan_arrays(*args):
            plan = host_plan(*args)
            s = plan.swap_out
            return (plan.gather_rows, plan.inverse, plan.write_rows, plan.write_values, s.rows, s.keys, s.freq,
                    s.host_slots)

        def plan_and_swap():
            gather_rows, inverse, write_rows, write_values, *swap_out = tf.numpy_function(
                plan_arrays, inputs, [tf.int64, tf.int32, tf.int64, self.value_dtype] + [tf.int64] * 4,
                stateful=True, name="host_plan")
            gather_rows.set_shape([None])
            inverse.set_shape(n_keys)
            with tf.control_dependencies([self._swap(variables, swap_out, write_rows, write_values)]):
                return tf.identity(gather_rows), tf.identity(inverse)

        # the gradient's indices are these rows: optimizers then read slots only after the writes
        written_rows, inverse = self.lock.execute(plan_and_swap)
        return tf.gather(variables[0], written_rows), written_rows, inverse

    def place_next_batch(self, variables: List[tf.Variable], next_placement: NextPlacement, seq: tf.Tensor,
                         after: tf.Tensor) -> tf.Operation:
        """Lookahead: once this lookup's batch is placed (``after``), place the next batch's keys and
        run its swaps, in a second critical-section execution. The op runs beside the rest of the step
        (the table's hash optimizer groups it with its update); see ``key_process.lookahead``."""
        def host_prepare(seq_np: np.ndarray):
            placement = next_placement(int(seq_np))
            if placement is None:
                return (np.empty(0, np.int64), self.store.no_values()) + _empty_swap()
            s = placement.swap_out
            return placement.write_rows, placement.write_values, s.rows, s.keys, s.freq, s.host_slots

        def prepare():
            write_rows, write_values, *swap_out = tf.numpy_function(
                host_prepare, [seq], [tf.int64, self.value_dtype] + [tf.int64] * 4, stateful=True,
                name="place_next_batch")
            return self._swap(variables, swap_out, write_rows, write_values)

        with tf.control_dependencies([after]):
            return self.lock.execute(prepare, name="lookahead").op

    # --- checkpoints ------------------------------------------------------------------------------
    def read_state(self, session, variables: List[tf.Variable]) -> Tuple[np.ndarray, List[np.ndarray]]:
        """The device cache's keys, then the host's and SSD's (full-width rows split into parts)."""
        keys, rows = self.store.items()
        parts = [value[rows] for value in session.run(variables)]
        lower_keys, full = self.store.lower_items()
        keys = np.concatenate([keys, lower_keys])
        parts = [np.concatenate([p, full[:, i * self.dim:(i + 1) * self.dim]]) for i, p in enumerate(parts)]
        return keys, parts

    def read_rows(self, keys: np.ndarray, gather: Callable[[np.ndarray], List[np.ndarray]]
                  ) -> Tuple[np.ndarray, List[np.ndarray]]:
        """From the device cache by ``gather``, else the host tier, else SSD."""
        store = self.store
        full = np.zeros((keys.shape[0], store.width), self.value_dtype.as_numpy_dtype)
        rows = store.device.lookup(keys)
        on_device = rows >= 0
        if on_device.any():
            full[on_device] = np.concatenate(gather(rows[on_device]), axis=1)
        has = on_device | store.host.holds(keys, ~on_device, full)
        if store.ssd is not None:
            has |= store.ssd.read_into(keys, ~has, full)
        full = full[has]
        return has, [full[:, i * self.dim:(i + 1) * self.dim] for i in range(store.width // self.dim)]

    def write_state(self, session, variables: List[tf.Variable], slot_inits: Sequence[float], keys: np.ndarray,
                    parts: Sequence[Optional[np.ndarray]]) -> None:
        """Every restored key starts on the host (then SSD), and moves to the device on use."""
        dtype = self.value_dtype.as_numpy_dtype
        full = [parts[0]] + [saved if saved is not None else np.full((keys.shape[0], self.dim), init, dtype)
                             for init, saved in zip(slot_inits, parts[1:])]
        self.store.load(keys, np.concatenate(full, axis=1).astype(dtype, copy=False))

    # --- telemetry --------------------------------------------------------------------------------
    def telemetry(self, table_counters: Dict[str, float]) -> Dict[str, float]:
        store = self.store
        ssd = store.ssd
        out = {"keys_device": len(store.device), "keys_host": len(store.host),
               "keys_ssd": len(ssd) if ssd is not None else 0, "ssd_reads": ssd.reads if ssd is not None else 0,
               "ssd_writes": ssd.writes if ssd is not None else 0, **table_counters}
        c = store.counters
        out.update(lookups=c.lookups, device_hit_rate=c.device_hits / max(c.keys, 1),
                   host_hit_rate=c.host_hits / max(c.keys, 1), ssd_hit_rate=c.ssd_hits / max(c.keys, 1),
                   new_keys=c.new_keys, swapped_in=c.swapped_in, swapped_out=c.swapped_out,
                   placed_ahead=c.placed_ahead, ahead_used=c.ahead_used)
        return out
