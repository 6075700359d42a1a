"""Device cache over a host tier (DDR mode) and optionally SSD: the device variable holds the hot rows.

Per lookup (the table's lookups run one at a time, inside its CriticalSection):
- keys already on the device are hits;
- keys on the host are swapped in, new keys get their initial row; both need free device rows;
- when rows run out, the least frequently used rows (the least recently used among equals) that no
  lookup is still using (each lookup pins the rows of its latest batch until its next one) are
  swapped out, 10% of the cache at a time: the graph reads them (and their slots) from the device
  and hands them to :meth:`accept_swapped_out` before the swap-ins overwrite them.
- training and evaluation lookups of a table take turns (their steps are separate ``session.run``
  calls, as in Rec SDK, where the two modes take turns on the device): when a lookup of one kind
  finds no room, the rows that lookups of the other kind still pin are released (and batches placed
  ahead for training are forgotten: their steps place them again). Evaluation therefore needs no
  rows beside the ones training keeps, and training none beside evaluation's.
Optimizer slots travel with their rows: host rows are full width (embedding, then each slot).
With an SSD tier, the host's least frequently used rows move down to RocksDB when the host is full,
and come back to the device on use.

Lookahead (:meth:`prepare`): while step t trains, the keys of a lookup's next batch that the table
already holds are brought to the device (their swaps run in step t), so that step t+1 finds them
there. Keys the table does not hold yet are left to step t+1 itself (:meth:`place_new`): a batch
placed ahead may never be trained (a re-initialised iterator, the end of training), and the keys
it would have inserted must not appear in checkpoints. Such a lookup pins two batches (the one in
flight and the next); the prepared rows wait for step t+1 to take them (:meth:`take_prepared`),
and anything that moves keys outside a lookup (eviction, restore) drops them, so that the lookup
places its batch itself.
"""
from dataclasses import dataclass
from typing import Callable, Dict, List, Optional, Sequence, Tuple, Union

import numpy as np

from mx_rec.key_process.hash_index import HashIndex
from mx_rec.storage import tiered_kernels as kernels
from mx_rec.storage.base import Placement, SwapOut
from mx_rec.storage.host import HostFullError, HostStore
from mx_rec.storage.ssd import SsdStore
from mx_rec.storage.victims import VictimPolicy, Victims
from mx_rec.system.log import logger


@dataclass
class TierCounters:
    """Running totals since the table was created (read them with ``table.telemetry()``)."""

    lookups: int = 0
    keys: int = 0
    device_hits: int = 0
    host_hits: int = 0
    new_keys: int = 0
    swapped_in: int = 0
    swapped_out: int = 0
    ssd_hits: int = 0
    placed_ahead: int = 0  # batches placed while the previous one trained (lookahead)
    ahead_used: int = 0  # lookups that found their batch placed ahead


class TieredStore:
    """Keys of a shard across the device cache (``device_rows``) and host memory (``host_rows``).

    Args:
        table_name: for messages. device_rows: rows of the device variable for keys.
        host_rows: keys the host tier holds. dim: embedding width.
        full_initial_rows: keys int64 [K] -> initial full-width rows [K, width] (embedding + slot inits).
        width: dim * (1 + number of slots). value_dtype: numpy dtype.
        ssd: the SSD tier, or None. victims: the policy choosing rows to swap out (``storage.victims``).
    """

    def __init__(self, table_name: str, device_rows: int, host_rows: int, dim: int,
                 full_initial_rows: Callable[[np.ndarray], np.ndarray], width: int, value_dtype=np.float32,
                 ssd: Optional[SsdStore] = None, victims: VictimPolicy = Victims.default) -> None:
        self.table_name = table_name
        self.dim = dim
        self.width = width
        self.parts = width // dim  # the embedding and each slot
        self.rows = device_rows
        self.device = HashIndex(device_rows, initial_slots=min(2 * device_rows, 1 << 16))
        self.row_key = np.full(device_rows, -1, dtype=np.int64)
        self.freq = np.zeros(device_rows, dtype=np.int64)
        self.last_used = np.zeros(device_rows, dtype=np.int64)
        self.host = HostStore(host_rows, width, value_dtype, lendable=device_rows)
        self.host_slot = np.full(device_rows, -1, dtype=np.int64)  # the host slot lent to each row's key, or -1
        self.ssd = ssd
        self.full_initial_rows = full_initial_rows
        self.value_dtype = value_dtype
        self.pins: Dict[int, List[np.ndarray]] = {}  # per lookup: rows of its batches in flight (1, or 2 ahead)
        self.pin_count = np.zeros(device_rows, dtype=np.int32)  # pinned batches using each row
        self.prepared: Dict[int, Tuple[int, np.ndarray, np.ndarray]] = {}  # lookup -> (seq, keys, rows)
        self.training: Dict[int, bool] = {}  # per lookup: a training (True) or evaluation (False) lookup
        self._warned_ahead = False
        self.clock = 0  # lookups so far
        self.counters = TierCounters()
        self.victims = victims

    @property
    def padding_row(self) -> int:
        return self.rows

    def size(self) -> int:
        return len(self.device) + len(self.host) + (len(self.ssd) if self.ssd is not None else 0)

    def capacity(self) -> int:
        return self.rows + self.host.capacity + (self.ssd.capacity if self.ssd is not None else 0)

    def _unpin(self, lookup_id: int, keep: int) -> None:
        """Release the rows of a lookup's batches that are done (their step completed before this
        plan), all but the newest ``keep`` batches."""
        held = self.pins.get(lookup_id, [])
        while len(held) > keep:
            kernels.unpin(self.pin_count, held.pop(0))

    def _release_other_kind(self, training: bool) -> bool:
        """Release every row pinned by lookups of the other kind (training vs evaluation; see the
        module docstring); returns whether any was."""
        released = False
        for lookup_id, held in self.pins.items():
            if self.training.get(lookup_id, True) != training and held:
                self._unpin(lookup_id, 0)
                self.prepared.pop(lookup_id, None)
                released = True
        return released

    def _no_room(self, batch: int, rows: np.ndarray, source: np.ndarray, training: bool) -> RuntimeError:
        """The error of a batch of ``batch`` distinct keys that does not fit: it names the rows the
        check needs, the batch's plus those other lookups pin (not in the batch)."""
        hit_rows = rows[source == kernels.HIT]
        pinned = int(np.count_nonzero(self.pin_count > 0)) - int(np.count_nonzero(self.pin_count[hit_rows] > 0))
        needed = batch + pinned
        kind = "training" if training else "evaluation"
        return RuntimeError(
            f"table '{self.table_name}': the device cache ({self.rows} rows) cannot hold this {kind} batch's {batch} "
            f"distinct keys beside the {pinned} other rows that {kind} lookups of the table still use (each keeps "
            f"its latest batch until its next step; one that places its next batch ahead keeps two); that needs "
            f"{needed} rows: set device_vocabulary_size to at least {needed} per rank")

    def take_prepared(self, lookup_id: int, seq: int, keys: np.ndarray) -> Optional[np.ndarray]:
        """Device rows int64 [U] (-1 for keys not held before) of distinct keys int64 [U] that a
        lookahead placed for this lookup's batch ``seq``; None when there is no such plan or it was
        made for other keys."""
        prepared = self.prepared.pop(lookup_id, None)
        if prepared is None or prepared[0] != seq or not np.array_equal(prepared[1], keys):
            return None
        self.counters.ahead_used += 1
        return prepared[2]

    def prepare(self, keys: np.ndarray, lookup_id: int, seq: int) -> Optional[Placement]:
        """Lookahead: bring the held keys among the distinct keys int64 [U] of a lookup's next batch
        ``seq`` to the device while its current batch (pinned) is in flight; see the module docstring.
        Returns the Placement whose swaps the caller runs now, or None when the cache cannot hold
        both batches (the lookup then places the batch itself)."""
        try:
            placement = self.locate(keys, False, lookup_id, ahead=True)
        except RuntimeError as err:
            if not self._warned_ahead:
                self._warned_ahead = True
                logger.warning("table '%s': the next batch cannot be placed while this one trains (%s); batches "
                               "are placed by their own steps until it fits (lookahead keeps this batch's rows while "
                               "placing the next, so the device cache needs room for two batches of distinct keys "
                               "per lookup)", self.table_name, err)
            return None
        self.prepared[lookup_id] = (seq, keys, placement.rows)
        self.counters.placed_ahead += 1
        return placement

    def place_new(self, keys: np.ndarray, lookup_id: int) -> Placement:
        """Insert the keys int64 [K] of a prepared batch that the table did not hold (see
        :meth:`locate`); they join the batch's pinned rows, and count as keys of its lookup once."""
        placement = self.locate(keys, True, lookup_id, ahead=True)
        held = self.pins[lookup_id]
        if len(held) > 1:
            held[-2:] = [np.concatenate(held[-2:])]
        self.counters.lookups -= 1
        self.counters.keys -= keys.shape[0]
        return placement

    def _choose_victims(self, needed: int, batch_rows: np.ndarray) -> Optional[np.ndarray]:
        """``needed`` or more rows no lookup uses, in increasing row order, as the policy chooses
        (``storage.victims``); None when too few. ``batch_rows``: int64, this batch's device rows."""
        return self.victims.choose(needed, batch_rows, self.row_key, self.pin_count, self.freq, self.last_used)

    def locate(self, keys: np.ndarray, insert: Union[bool, np.ndarray], lookup_id: int = 0,
               ahead: bool = False) -> Placement:
        """Place distinct keys int64 [U] on the device; see the module docstring. ``ahead``: the
        lookup's current batch stays pinned (lookahead), else its earlier batches are released.

        Returns a Placement whose ``write_values`` are [parts, M, dim] (the embedding, then each slot;
        see :meth:`no_values`), and whose ``swap_out`` the graph hands to :meth:`accept_swapped_out`.

        Raises:
            RuntimeError: the device cache cannot hold this batch beside the rows other lookups use,
                or the host tier is full; names the table and the size to set. Nothing changes.
        """
        if self.ssd is not None:
            self.ssd.settle()  # a failed background write raises here, before anything moves
        self.clock += 1
        n_keys = keys.shape[0]
        allowed = (np.asarray(insert, dtype=bool) if isinstance(insert, np.ndarray)
                   else np.full(n_keys, bool(insert)))
        rows = np.empty(n_keys, np.int64)
        host_row = np.empty(n_keys, np.int64)
        source = np.empty(n_keys, np.int8)
        hits, n_host = kernels.classify(*self.device.slot_arrays, *self.host.index.slot_arrays, keys, allowed,
                                        rows, host_row, source)
        n_ssd = 0
        if self.ssd is not None and hits + n_host < n_keys:
            elsewhere = np.flatnonzero(source >= kernels.NEW)
            n_ssd = kernels.mark_ssd(source, self.ssd.contains(keys[elsewhere]), elsewhere)
        n_new = int(np.count_nonzero(source == kernels.NEW)) if hits + n_host + n_ssd < n_keys else 0
        n_in = n_host + n_ssd + n_new
        training = ahead or isinstance(insert, np.ndarray) or bool(insert)
        self._unpin(lookup_id, 1 if ahead else 0)
        free = self.rows - len(self.device)
        victims = np.empty(0, np.int64)
        if n_in > free:
            victims = self._choose_victims(n_in - free, rows)
            if victims is None and self._release_other_kind(training):
                victims = self._choose_victims(n_in - free, rows)
            if victims is None:
                raise self._no_room(hits + n_in, rows, source, training)
        victim_keys = self.row_key[victims]
        host_after = len(self.host) - n_host + victims.shape[0]
        overflow = max(0, host_after - self.host.capacity)
        ssd_room = (self.ssd.capacity - len(self.ssd) + n_ssd) if self.ssd is not None else 0
        if overflow > ssd_room:
            advice = ("; raise host_vocabulary_size (or add an SSD tier)" if self.ssd is None else
                      f" and the SSD tier {self.ssd.capacity}; raise ssd_vocabulary_size")
            raise RuntimeError(f"table '{self.table_name}' is full: the host tier holds {self.host.capacity} keys"
                               + advice)
        incoming_keys = np.empty(n_in, np.int64)
        values = np.empty((self.parts, n_in, self.dim), dtype=self.value_dtype)
        freq = np.empty(n_in, np.int64)
        in_slot, ssd_pos, fresh_pos = (np.empty(n_in, np.int64) for _ in range(3))
        kernels.gather_incoming(keys, source, host_row, self.host.values, self.host.freq, n_in,
                                incoming_keys, values, freq, in_slot, ssd_pos, fresh_pos)
        if n_host:
            self.host.lend(in_slot[in_slot >= 0])
        if n_ssd:
            ssd_pos = ssd_pos[:n_ssd]
            values[:, ssd_pos] = self._split(self.ssd.take(incoming_keys[ssd_pos]))
        fresh_pos = fresh_pos[:n_new]
        values[:, fresh_pos] = self._split(self.full_initial_rows(incoming_keys[fresh_pos]))
        if overflow:  # make room on the host: its least frequently used rows go down to SSD (in bulk)
            bulk = min(max(overflow, self.host.capacity // 20), ssd_room, len(self.host))
            demoted = self.host.least_used(max(bulk, overflow))
            demoted_values, _ = self.host.take(demoted)
            self.ssd.put(demoted, demoted_values)
        outgoing_slot = self.host_slot[victims]
        if victims.shape[0]:
            self.device.remove(victim_keys)
            self.row_key[victims] = -1
            self.host_slot[victims] = -1
        outgoing_freq = self.freq[victims]
        new_rows = self.device.insert_absent(incoming_keys)
        self.host_slot[new_rows] = in_slot
        pins = np.empty(n_keys, np.int64)
        placed = kernels.settle(rows, source, new_rows, incoming_keys, freq, self.row_key, self.freq,
                                self.last_used, self.pin_count, self.clock, pins)
        self.pins.setdefault(lookup_id, []).append(pins[:placed])
        self.training[lookup_id] = training
        c = self.counters
        c.lookups += 1
        c.keys += n_keys
        c.device_hits += hits
        c.host_hits += n_host
        c.ssd_hits += n_ssd
        c.new_keys += n_new
        c.swapped_in += n_host + n_ssd
        c.swapped_out += int(victims.shape[0])
        return Placement(rows, new_rows, values, SwapOut(victims, victim_keys, outgoing_freq, outgoing_slot))

    def _split(self, rows: np.ndarray) -> np.ndarray:
        """Full-width rows [K, width] -> [parts, K, dim]."""
        return rows.reshape(rows.shape[0], self.parts, self.dim).transpose(1, 0, 2)

    def no_values(self) -> np.ndarray:
        """Write values of a placement that writes nothing: [parts, 0, dim]."""
        return np.empty((self.parts, 0, self.dim), self.value_dtype)

    def accept_swapped_out(self, swap_out: SwapOut, parts: Sequence[np.ndarray]) -> None:
        """The device rows a plan swapped out (``swap_out``), read by the graph before being
        overwritten: the embeddings [V, dim], then each slot [V, dim]."""
        if parts[0].shape[0] == 0:
            return
        slots, freq = swap_out.host_slots, swap_out.freq
        back = slots >= 0  # rows whose keys kept their host slot
        try:
            if back.all():
                self.host.give_back(slots, parts, freq)
            else:
                self.host.give_back(slots[back], [p[back] for p in parts], freq[back])
                self.host.put(swap_out.keys[~back], np.concatenate([p[~back] for p in parts], axis=1), freq[~back])
        except HostFullError as err:
            raise RuntimeError(f"table '{self.table_name}': host tier full: {err}") from None

    def remove(self, keys: np.ndarray) -> np.ndarray:
        """Drop keys from every tier; returns the freed device rows."""
        self.prepared.clear()
        freed = self.device.remove(keys)
        self.row_key[freed] = -1
        self.host_slot[freed] = -1
        self.host.remove(keys)
        if self.ssd is not None:
            self.ssd.remove(keys)
        return freed

    def clear(self) -> None:
        self.device.clear()
        self.row_key[:] = -1
        self.host_slot[:] = -1
        self.host.clear()
        if self.ssd is not None:
            self.ssd.clear()
        self.pins.clear()
        self.prepared.clear()
        self.pin_count[:] = 0

    def confirm_written(self, rows: np.ndarray) -> None:
        """Writes happen inside the lookup's critical section; nothing is pending."""

    def items(self) -> Tuple[np.ndarray, np.ndarray]:
        return self.device.items()

    def load(self, keys: np.ndarray, full_rows: np.ndarray) -> None:
        """Restore: keys fill the host tier, the rest goes to SSD; they come to the device on use."""
        self.clear()
        on_host = min(keys.shape[0], self.host.capacity)
        if keys.shape[0] - on_host > (self.ssd.capacity if self.ssd is not None else 0):
            raise RuntimeError(f"table '{self.table_name}' cannot hold the checkpoint's {keys.shape[0]} keys in its "
                               "host and SSD tiers; raise host_vocabulary_size or ssd_vocabulary_size")
        self.host.put(keys[:on_host], full_rows[:on_host])
        if on_host < keys.shape[0]:
            self.ssd.put(keys[on_host:], full_rows[on_host:])

    def lower_items(self) -> Tuple[np.ndarray, np.ndarray]:
        """Keys and full-width rows of the host and SSD tiers (for checkpoints)."""
        keys, rows = self.host.items()
        if self.ssd is not None and len(self.ssd) > 0:
            ssd_keys, ssd_rows = self.ssd.items()
            keys, rows = np.concatenate([keys, ssd_keys]), np.concatenate([rows, ssd_rows])
        return keys, rows
