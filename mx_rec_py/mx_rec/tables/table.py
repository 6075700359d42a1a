"""``EmbeddingTable``: one sparse table's config, its storage and its device variable."""
import math
import threading
from typing import Dict, List, Optional, Tuple

import numpy as np
import tensorflow as tf

from mx_rec.config.graph_registry import find_registry
from mx_rec.constants.constants import ASCEND_GLOBAL_HASHTABLE_COLLECTION
from mx_rec.key_process.batch_plan import BatchPlan, placed_plan, plan_batch
from mx_rec.key_process.key_stats import KeyStats
from mx_rec.key_process.lifecycle import Lifecycle
from mx_rec.storage.base import Placement
from mx_rec.storage.device import DeviceStore
from mx_rec.storage.ssd import SsdStore
from mx_rec.storage.tiered import TieredStore
from mx_rec.tables.config import TableConfig
from mx_rec.tables.initializers import initial_rows, parse_initializer


class EmbeddingTable:
    """A sparse table as a Rec SDK script sees it (``create_table`` returns one).

    The device variable has ``capacity() + 1`` rows of ``dim`` values; the last row is scratch
    space that no key ever owns. With dynamic expansion (``expandable``) the variable starts small
    and grows in chunks as keys arrive.

    Attributes:
        table_name: str. dim: int. key_dtype / value_dtype: tf.DType.
        variable: the ``tf.Variable`` [capacity + 1, dim] holding this shard's rows.
        store: the host-side placement of keys (see ``mx_rec.storage``).
    """

    def __init__(self, config: TableConfig, rank_size: int = 1, expandable: bool = False) -> None:
        self.config = config
        self.table_name = config.table_name
        self.dim = config.dim
        self.key_dtype = config.key_dtype
        self.value_dtype = config.value_dtype
        self.init_spec = parse_initializer(config.emb_initializer, config.table_name, config.init_param,
                                           shape=config.init_shape)
        shard_rows = math.ceil(config.device_vocabulary_size / rank_size)
        self.host_rows = math.ceil(config.host_vocabulary_size / rank_size)
        self.ssd_rows = math.ceil(config.ssd_vocabulary_size / rank_size)
        self.tiered = self.host_rows > 0
        self.expandable = expandable
        self.store = DeviceStore(config.table_name, shard_rows, config.dim, self.init_spec,
                                 config.value_dtype.as_numpy_dtype, expandable=expandable)
        initial = tf.zeros([self.store.rows + 1, config.dim], dtype=config.value_dtype)
        if expandable:  # an open leading dimension, so restore can feed any row count
            initial = tf.compat.v1.placeholder_with_default(initial, [None, config.dim])
        self.variable = tf.compat.v1.Variable(
            initial, trainable=False,
            name=config.table_name, use_resource=True,
            shape=tf.TensorShape([None, config.dim]) if expandable else None,
            collections=[tf.compat.v1.GraphKeys.GLOBAL_VARIABLES, ASCEND_GLOBAL_HASHTABLE_COLLECTION])
        # TF runs independent host callbacks (two lookups of this table) on parallel threads: they take turns.
        self.host_lock = threading.Lock()
        # Expansion: lookups grow the variable one at a time (slots grow in the optimizer). DDR: each lookup's
        # plan and swaps run alone.
        self.grow_lock = tf.CriticalSection(name=f"{config.table_name}_lock") if (expandable or self.tiered) else None
        self.lookahead_ops: List[tf.Operation] = []  # DDR/SSD: next-batch placements, run beside the update
        # Optimizer slots that live row-for-row beside the variable: (optimizer, slot) -> (variable, init value).
        self.slots: Dict[Tuple[str, str], Tuple[tf.Variable, float]] = {}
        self.rejections = 0
        self.evictions = 0
        self.frozen_slots = None
        self.lifecycle: Optional[Lifecycle] = None
        self.stats: Optional[KeyStats] = None

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
        return self.store.padding_row

    def size(self) -> int:
        """Distinct keys held by this shard (int)."""
        return self.store.size()

    def capacity(self) -> int:
        """Keys this shard can hold (int)."""
        return self.store.capacity()

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

    def plan(self, keys: np.ndarray, insert: bool, send_count: Optional[int], timestamp: Optional[int] = None,
             weights: Optional[np.ndarray] = None, lookup_id: int = 0, seq: Optional[int] = None,
             distinct: bool = False) -> BatchPlan:
        """Host step of one lookup; see :func:`mx_rec.key_process.batch_plan.plan_batch`. ``seq``: the
        batch's sequence number when the lookup places batches ahead (``keys`` are then distinct)."""
        with self.host_lock:
            if seq is not None:
                rows = self.store.take_prepared(lookup_id, seq, keys)
                if rows is not None:
                    return placed_plan(self.store, keys, rows, lookup_id)
            return plan_batch(self.store, keys, insert, send_count, self.table_name, self.lifecycle, self.stats,
                              timestamp, weights, lookup_id, distinct or seq is not None)

    def prepare(self, keys: np.ndarray, lookup_id: int, seq: int, send_count: Optional[int]) -> Optional[Placement]:
        """Lookahead (DDR/SSD): place the distinct keys int64 [U] of a lookup's next batch ``seq``; None
        when they cannot be placed ahead (the lookup then places them itself, with the usual errors)."""
        if (send_count is not None and keys.shape[0] > send_count) or not self.places_ahead(True):
            return None
        with self.host_lock:
            return self.store.prepare(keys, lookup_id, seq)

    def places_ahead(self, insert: bool) -> bool:
        """Whether a lookup of this table may place its next batch ahead: a training lookup of a DDR/SSD
        table without admission counts (counting a batch early would change what checkpoints hold)."""
        return self.tiered and insert and (self.lifecycle is None or not self.lifecycle.counts)

    def slot_order(self) -> List[Tuple[str, str]]:
        """The slots' order in full-width rows (embedding first, then these)."""
        return sorted(self.slots)

    def full_initial_rows(self, keys: np.ndarray) -> np.ndarray:
        """Initial rows with their slots' initial values: value_dtype [K, dim * (1 + slots)]."""
        parts = [self.initial_values(keys)]
        dtype = self.value_dtype.as_numpy_dtype
        parts += [np.full((keys.shape[0], self.dim), self.slots[name][1], dtype) for name in self.slot_order()]
        return np.concatenate(parts, axis=1)

    def enable_tiers(self, rank: int = 0) -> None:
        """DDR/SSD mode: the device variable becomes a cache over host memory (and SSD). Slots must exist."""
        width = self.dim * (1 + len(self.slots))
        dtype = self.value_dtype.as_numpy_dtype
        ssd = None
        if self.ssd_rows:
            ssd = SsdStore(self.table_name, self.config.ssd_data_path, self.ssd_rows, width, dtype, rank)
        self.store = TieredStore(self.table_name, self.store.rows, self.host_rows, self.dim, self.full_initial_rows,
                                 width, dtype, ssd)
        self.frozen_slots = set(self.slots)

    def telemetry(self) -> Dict[str, float]:
        """Counters of this shard: keys per tier, hit rates, swaps, admission rejections, evictions."""
        ssd = self.store.ssd if self.tiered else None
        out = {"keys_device": len(self.store.device) if self.tiered else self.store.size(),
               "keys_host": len(self.store.host) if self.tiered else 0,
               "keys_ssd": len(ssd) if ssd is not None else 0, "ssd_reads": ssd.reads if ssd is not None else 0,
               "ssd_writes": ssd.writes if ssd is not None else 0,
               "admission_rejections": self.rejections, "evictions": self.evictions}
        if self.tiered:
            c = self.store.counters
            out.update(lookups=c.lookups, device_hit_rate=c.device_hits / max(c.keys, 1),
                       host_hit_rate=c.host_hits / max(c.keys, 1), ssd_hit_rate=c.ssd_hits / max(c.keys, 1),
                       new_keys=c.new_keys,
                       swapped_in=c.swapped_in, swapped_out=c.swapped_out, placed_ahead=c.placed_ahead,
                       ahead_used=c.ahead_used)
        return out

    def evict_stale(self) -> np.ndarray:
        """Remove keys unseen for longer than ``eviction_threshold`` from every tier and the counts.

        Returns:
            int64 [R], the device rows freed (their slots must be reset before reuse).
        """
        if self.lifecycle is None or not self.lifecycle.evicts:
            return np.empty(0, np.int64)
        with self.host_lock:
            stale = self.stats.stale(self.lifecycle.eviction_threshold)
            self.stats.remove(stale)
            self.evictions += int(stale.shape[0])
            return self.store.remove(stale)

    def confirm_written(self, rows: np.ndarray) -> np.ndarray:
        """Host callback after the graph wrote ``rows`` (int64 [M]); returns them unchanged."""
        with self.host_lock:
            self.store.confirm_written(rows)
        return rows

    def initial_values(self, keys: np.ndarray) -> np.ndarray:
        """The rows keys int64 [K] start from: value_dtype [K, dim]."""
        return initial_rows(self.init_spec, keys, self.dim, self.value_dtype.as_numpy_dtype)

    def register_slot(self, optimizer_name: str, slot_name: str, variable: tf.Variable, init_value: float) -> None:
        """Record an optimizer slot that moves row-for-row with this table."""
        self.slots[(optimizer_name, slot_name)] = (variable, init_value)

    def __repr__(self) -> str:
        return f"EmbeddingTable(name={self.table_name!r}, dim={self.dim}, capacity={self.capacity()})"
