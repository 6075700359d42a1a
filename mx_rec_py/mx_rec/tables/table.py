"""``EmbeddingTable``: one sparse table's config, its storage and its device variable."""
import math
from typing import Dict, List, Optional, Tuple

import numpy as np
import tensorflow as tf

from mx_rec.config.graph_registry import find_registry
from mx_rec.constants.constants import ASCEND_GLOBAL_HASHTABLE_COLLECTION
from mx_rec.key_process import changes
from mx_rec.key_process.key_stats import KeyStats
from mx_rec.key_process.lifecycle import Lifecycle
from mx_rec.storage.backend import Backend
from mx_rec.storage.base import Placement
from mx_rec.storage.choose import choose_backend
from mx_rec.storage.plan import BatchPlan, PlanRequest
from mx_rec.tables.config import TableConfig
from mx_rec.tables.initializers import parse_initializer
from mx_rec.tables.variable_init import filled


class EmbeddingTable:
    """A sparse table as a Rec SDK script sees it (``create_table`` returns one).

    The device variable has ``capacity() + 1`` rows of ``dim`` values; the last row is scratch
    space that no key ever owns. With dynamic expansion (``expandable``) the variable starts small
    and grows in chunks as keys arrive.

    Attributes:
        table_name: str. dim: int. key_dtype / value_dtype: tf.DType (value_dtype: lookups, gradients, math,
            checkpoints). storage_dtype / slot_dtype: tf.DType the rows / optimizer slots are kept in.
        variable: the ``tf.Variable`` storage_dtype [capacity + 1, dim] holding this shard's rows.
        backend: the shard's storage (``mx_rec.storage.backend``): the device alone, or DDR/SSD tiers.
    """

    def __init__(self, config: TableConfig, rank_size: int = 1, expandable: bool = False, rank: int = 0) -> None:
        self.config = config
        self.table_name = config.table_name
        self.dim = config.dim
        self.key_dtype = config.key_dtype
        self.value_dtype = config.value_dtype
        self.storage_dtype = config.storage_dtype
        self.slot_dtype = config.slot_dtype
        self.init_spec = parse_initializer(config.emb_initializer, config.table_name, config.init_param,
                                           shape=config.init_shape)
        self.expandable = expandable
        self.backend: Backend = choose_backend(
            config.table_name, config.dim, config.value_dtype, self.init_spec,
            math.ceil(config.device_vocabulary_size / rank_size), math.ceil(config.host_vocabulary_size / rank_size),
            math.ceil(config.ssd_vocabulary_size / rank_size), config.ssd_data_path, rank, expandable,
            storage_dtype=config.storage_dtype)
        initial = filled([self.backend.device_rows + 1, config.dim], 0.0, config.storage_dtype)
        if expandable:  # an open leading dimension, so restore can feed any row count
            initial = tf.compat.v1.placeholder_with_default(initial, [None, config.dim])
        self.variable = tf.compat.v1.Variable(
            initial, trainable=False,
            name=config.table_name, use_resource=True,
            shape=tf.TensorShape([None, config.dim]) if expandable else None,
            collections=[tf.compat.v1.GraphKeys.GLOBAL_VARIABLES, ASCEND_GLOBAL_HASHTABLE_COLLECTION])
        self.lookahead_ops: List[tf.Operation] = []  # DDR/SSD: next-batch placements, run beside the update
        # Optimizer slots that live row-for-row beside the variable: (optimizer, slot) -> (variable, init value).
        self.slots: Dict[Tuple[str, str], Tuple[tf.Variable, float]] = {}
        self.rejections = 0
        self.evictions = 0
        self.frozen_slots = None
        self.lifecycle: Optional[Lifecycle] = None
        self.stats: Optional[KeyStats] = None
        self.changes = changes.ChangeLog()  # keys that changed since the last save (delta checkpoints)

    @property
    def lookup_count(self) -> int:
        """``sparse_lookup`` calls of this table (at most 128), as its graph's registry counts them."""
        registry = find_registry(self.variable.graph)
        return registry.lookup_calls(self.table_name) if registry is not None else 0

    @property
    def built_lookups(self) -> int:
        """Lookups built of this table: one per call, or one per merged group with multi-lookup."""
        registry = find_registry(self.variable.graph)
        return registry.built_lookups(self.table_name) if registry is not None else 0

    @property
    def padding_row(self) -> int:
        return self.backend.padding_row

    def size(self) -> int:
        """Distinct keys held by this shard (int)."""
        return self.backend.size()

    def capacity(self) -> int:
        """Keys this shard can hold (int)."""
        return self.backend.capacity()

    def set_lifecycle(self, lifecycle: Lifecycle) -> None:
        """Admission/eviction settings; every lookup of a table must agree on them.

        Raises:
            ValueError: a different setting was given before, naming both.
        """
        if self.lifecycle is not None and self.lifecycle != lifecycle:
            raise ValueError(f"table '{self.table_name}': admission/eviction settings {lifecycle} differ from "
                             f"{self.lifecycle} given by an earlier lookup of the table")
        self.lifecycle = lifecycle
        if lifecycle.counts and self.stats is None:
            self.stats = KeyStats()

    def set_threshold(self, threshold: int) -> None:
        """Change the admission threshold while training (keys that have rows keep them)."""
        if self.lifecycle is None or self.lifecycle.access_threshold is None:
            raise ValueError(f"table '{self.table_name}' has no admission (access_threshold) to change")
        if isinstance(threshold, bool) or not isinstance(threshold, int) or threshold < 0:
            raise ValueError(f"table '{self.table_name}': threshold must be an int >= 0, got {threshold!r}")
        self.lifecycle.access_threshold = threshold

    def plan(self, request: PlanRequest) -> BatchPlan:
        """Host step of one lookup, with the table's admission settings; see ``Backend.plan``."""
        with self.backend.host_lock:
            plan = self.backend.plan(request, self.lifecycle, self.stats)
            if request.insert:  # delta checkpoints: these keys may change
                changes.planned(self, plan.unique_keys, plan.occurrences)
            return plan

    def prepare(self, keys: np.ndarray, lookup_id: int, seq: int, send_count: Optional[int]) -> Optional[Placement]:
        """Lookahead (DDR/SSD): place the distinct keys int64 [U] of a lookup's next batch ``seq``; None
        when they cannot be placed ahead (the lookup then places them itself, with the usual errors)."""
        if (send_count is not None and keys.shape[0] > send_count) or not self.places_ahead(True):
            return None
        with self.backend.host_lock:
            return self.backend.prepare(keys, lookup_id, seq)

    def places_ahead(self, insert: bool) -> bool:
        """Whether a lookup of this table may place its next batch ahead: a training lookup of a backend
        that places ahead (DDR/SSD) without admission counts (counting a batch early would change what
        checkpoints hold)."""
        return self.backend.places_ahead and insert and (self.lifecycle is None or not self.lifecycle.counts)

    def slot_order(self) -> List[Tuple[str, str]]:
        """The slots' order in full-width rows (embedding first, then these)."""
        return sorted(self.slots)

    def row_variables(self) -> List[tf.Variable]:
        """The device variable, then each slot variable in slot order."""
        return [self.variable] + [self.slots[name][0] for name in self.slot_order()]

    def slot_inits(self) -> List[float]:
        """Each slot's initial value, in slot order."""
        return [self.slots[name][1] for name in self.slot_order()]

    def freeze_slots(self) -> None:
        """No optimizer adds slots from now on (a backend whose rows carry them sizes its rows)."""
        self.frozen_slots = set(self.slots)
        self.backend.freeze_slots(self.slot_inits())

    def telemetry(self) -> Dict[str, float]:
        """Counters of this shard: keys per tier, hit rates, swaps, admission rejections, evictions."""
        return self.backend.telemetry({"admission_rejections": self.rejections, "evictions": self.evictions})

    def evict_stale(self) -> np.ndarray:
        """Remove keys unseen for longer than ``eviction_threshold`` from every tier and the counts.

        Returns:
            int64 [R], the device rows freed (their slots must be reset before reuse).
        """
        if self.lifecycle is None or not self.lifecycle.evicts:
            return np.empty(0, np.int64)
        with self.backend.host_lock:
            stale = self.stats.stale(self.lifecycle.eviction_threshold)
            self.stats.remove(stale)
            changes.removed(self, stale)
            self.evictions += int(stale.shape[0])
            return self.backend.remove(stale)

    def initial_values(self, keys: np.ndarray) -> np.ndarray:
        """The rows keys int64 [K] start from: value_dtype [K, dim]."""
        return self.backend.initial_values(keys)

    def check_optimizer(self, optimizer) -> None:
        """See :func:`check_optimizer`."""
        check_optimizer(self.config, optimizer)

    def register_slot(self, optimizer_name: str, slot_name: str, variable: tf.Variable, init_value: float) -> None:
        """Record an optimizer slot that moves row-for-row with this table."""
        self.slots[(optimizer_name, slot_name)] = (variable, init_value)

    def __repr__(self) -> str:
        return f"EmbeddingTable(name={self.table_name!r}, dim={self.dim}, capacity={self.capacity()})"


def check_optimizer(config: TableConfig, optimizer) -> None:
    """Refuse an optimizer that cannot update a table of ``config``: with float16 / bfloat16 rows or
    slots only classes declaring ``supports_compact_storage = True`` (hash lazy Adam) may.

    Raises:
        TypeError: naming the table, the optimizer and the dtypes.
    """
    if config.compact and not getattr(optimizer, "supports_compact_storage", False):
        name = optimizer.get_name() if hasattr(optimizer, "get_name") else type(optimizer).__name__
        raise TypeError(f"table '{config.table_name}' keeps rows as {config.storage_dtype.name} and slots as "
                        f"{config.slot_dtype.name}, which only hash lazy Adam updates (in float32); optimizer "
                        f"{name!r} ({type(optimizer).__name__}) cannot: leave storage_dtype / slot_dtype "
                        "unset for this table or use mx_rec.optimizers.lazy_adam")
