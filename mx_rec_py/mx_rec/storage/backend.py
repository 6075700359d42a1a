"""A table shard's storage backend: one object per table, chosen once at ``create_table``.

A backend owns everything that differs between the device (HBM) tier and the tiered (DDR, DDR+SSD)
storage: the host plan of a lookup, the graph ops that write, swap and gather rows, what a
checkpoint reads and writes, and the per-tier counters. ``EmbeddingTable`` holds its config, its
device variable and slots, its lifecycle and its backend; lookups, the saver and telemetry call
the backend through this interface only.

    >>> backend = choose_backend("user", 16, tf.float32, spec, device_rows=1000)   # doctest: +SKIP
    >>> gathered, rows, inverse = backend.gather([variable], host_plan, [keys, stamp], keys.shape)

Host methods (``plan``, ``prepare``, ``remove``, ``load``...) expect the caller to hold
``host_lock``: TF runs independent host callbacks (two lookups of a table) on parallel threads.
"""
import threading
from abc import ABC, abstractmethod
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np
import tensorflow as tf

from mx_rec.key_process.key_stats import KeyStats
from mx_rec.key_process.lifecycle import Lifecycle
from mx_rec.storage.base import Placement, RowStore
from mx_rec.storage.initial_rows import InitSpec, initial_rows
from mx_rec.storage.plan import BatchPlan, PlanRequest, plan_batch

HostPlan = Callable[..., BatchPlan]  # a lookup's numpy inputs -> its plan (called inside a numpy_function)
NextPlacement = Callable[[int], Optional[Placement]]  # lookahead: batch sequence number -> the next batch's placement


class Backend(ABC):
    """The storage of one table shard.

    Attributes:
        table_name: str. dim: int. value_dtype: tf.DType of the rows. init: the parsed initializer.
        host_lock: ``threading.Lock`` that every host callback of the table takes.
        lock: ``tf.CriticalSection`` the graph ops that move rows run in (None when they need none).
        holds_slots: rows carry the optimizer slots (slots must exist at ``create_table``, then
            :meth:`freeze_slots`).
        places_ahead: lookups may place their next batch while this one trains (lookahead).
        restores_device: a restore writes the device variable and slots itself; when False they
            are left to their initializers (the rows start in a lower tier).
    """

    holds_slots = False
    places_ahead = False
    restores_device = True

    def __init__(self, table_name: str, dim: int, value_dtype: tf.DType, init: InitSpec) -> None:
        self.table_name = table_name
        self.dim = dim
        self.value_dtype = value_dtype
        self.init = init
        self.host_lock = threading.Lock()
        self.lock: Optional[tf.CriticalSection] = None

    # --- host state -------------------------------------------------------------------------------
    @property
    @abstractmethod
    def device_rows(self) -> int:
        """Rows of the device variable available to keys now (the variable has one more, scratch)."""

    @property
    @abstractmethod
    def padding_row(self) -> int:
        """The scratch row after the keys' rows (no key owns it)."""

    @abstractmethod
    def size(self) -> int:
        """Distinct keys held, in every tier."""

    @abstractmethod
    def capacity(self) -> int:
        """Keys that can be held without growing, in every tier."""

    @abstractmethod
    def items(self) -> Tuple[np.ndarray, np.ndarray]:
        """(keys int64 [K], device rows int64 [K]) of the keys on the device."""

    @abstractmethod
    def remove(self, keys: np.ndarray) -> np.ndarray:
        """Drop keys int64 [E] from every tier; returns the freed device rows int64 [R]."""

    @abstractmethod
    def restore_capacity(self) -> Optional[int]:
        """Most keys a restore can hold (None: no limit, the device grows)."""

    def initial_values(self, keys: np.ndarray) -> np.ndarray:
        """The rows keys int64 [K] start from: value_dtype [K, dim]."""
        return initial_rows(self.init, keys, self.dim, self.value_dtype.as_numpy_dtype)

    def freeze_slots(self, slot_inits: Sequence[float]) -> None:
        """The optimizer slots are final: their initial values, in slot order. Backends whose rows
        carry the slots (``holds_slots``) size their rows here; others need nothing."""

    def flush(self) -> None:
        """Wait for background writes (the SSD tier's); nothing to wait for by default."""

    # --- a lookup's host step ---------------------------------------------------------------------
    @abstractmethod
    def plan(self, request: PlanRequest, lifecycle: Optional[Lifecycle], stats: Optional[KeyStats]) -> BatchPlan:
        """The host step of one lookup: dedup, admission, placement, the gather plan."""

    def prepare(self, keys: np.ndarray, lookup_id: int, seq: int) -> Optional[Placement]:
        """Lookahead: place the distinct keys int64 [U] of a lookup's next batch ``seq`` while the
        current one trains; None when they cannot be placed ahead (backends that do not place ahead)."""
        return None

    def _plan_batch(self, store: RowStore, request: PlanRequest, lifecycle: Optional[Lifecycle],
                    stats: Optional[KeyStats]) -> BatchPlan:
        return plan_batch(store, request.keys, request.insert, request.send_count, self.table_name, lifecycle,
                          stats, request.timestamp, request.weights, request.lookup_id,
                          request.distinct or request.seq is not None)

    # --- graph ops --------------------------------------------------------------------------------
    @abstractmethod
    def gather(self, variables: List[tf.Variable], host_plan: HostPlan, inputs: List[tf.Tensor],
               n_keys: tf.TensorShape) -> Tuple[tf.Tensor, tf.Tensor, tf.Tensor]:
        """Plan a lookup on the host, make the device hold its rows, and gather them.

        Args:
            variables: the device variable, then each optimizer slot in slot order.
            host_plan: called with the numpy values of ``inputs``; returns the lookup's BatchPlan.
            inputs: the tensors ``host_plan`` reads. n_keys: the static shape of its ids.

        Returns:
            gathered value_dtype [G, dim]; the gathered rows int64 [G] (the gradient's indices:
            optimizers read slots only after the writes); inverse int32 [N] (see ``BatchPlan``).
        """

    def place_next_batch(self, variables: List[tf.Variable], next_placement: NextPlacement, seq: tf.Tensor,
                         after: tf.Tensor) -> tf.Operation:
        """Lookahead op: once ``after`` exists, place the next batch (``next_placement(seq)``) and run
        its swaps. Only backends with ``places_ahead`` build it."""
        raise NotImplementedError(f"table '{self.table_name}': {type(self).__name__} does not place batches ahead")

    # --- checkpoints ------------------------------------------------------------------------------
    @abstractmethod
    def read_state(self, session, variables: List[tf.Variable]) -> Tuple[np.ndarray, List[np.ndarray]]:
        """Every tier's keys int64 [K] and their rows: [embeddings [K, dim], then each slot [K, dim]]."""

    @abstractmethod
    def read_rows(self, keys: np.ndarray, gather: Callable[[np.ndarray], List[np.ndarray]]
                  ) -> Tuple[np.ndarray, List[np.ndarray]]:
        """Rows of some keys, wherever they are (delta checkpoints read only what changed).

        Args:
            keys: int64 [K]. gather: device rows int64 [R] -> [embeddings [R, dim], then each slot [R, dim]]
                (the caller's graph ops, so only those rows leave the device).
        Returns:
            (has_row bool [K], [embeddings [H, dim], then each slot [H, dim]] of the H keys that have a row).
        """

    @abstractmethod
    def write_state(self, session, variables: List[tf.Variable], slot_inits: Sequence[float], keys: np.ndarray,
                    parts: Sequence[Optional[np.ndarray]]) -> None:
        """Hold exactly ``keys`` int64 [K] with ``parts`` (embeddings [K, dim], then each slot [K, dim]
        or None for its initial value); the caller validated the count."""

    # --- telemetry --------------------------------------------------------------------------------
    @abstractmethod
    def telemetry(self, table_counters: Dict[str, float]) -> Dict[str, float]:
        """Keys per tier and SSD I/O, then ``table_counters`` (admission, eviction), then the tier's
        hit rates and swaps."""

    def __repr__(self) -> str:
        return f"{type(self).__name__}(table={self.table_name!r}, capacity={self.capacity()})"
