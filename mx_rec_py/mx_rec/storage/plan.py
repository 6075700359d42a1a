"""One lookup's host work: dedup, placement on the device, and the gather plan for the graph."""
from dataclasses import dataclass, field
from typing import Optional

import numpy as np

from mx_rec.key_process.dedup import dedup
from mx_rec.key_process.key_stats import KeyStats
from mx_rec.key_process.lifecycle import Lifecycle
from mx_rec.storage.base import Placement, RowStore, SwapOut


class SendCountOverflow(ValueError):
    """More distinct keys than ``send_count`` allows."""


@dataclass
class BatchPlan:
    """Arrays the graph needs to turn a batch of ids into embeddings.

    Attributes:
        gather_rows: int64 [G]; device rows to gather, one per distinct key that has a row (also in
            ``send_count`` mode: the count is checked, never padded to).
        inverse: int32 [N]; for each id, its index into ``concat(gathered [G], zero row, default row)``:
            padding ids point at G (zeros), keys without a row at G + 1 (the default value).
        write_rows: int64 [M]; device rows to overwrite before the gather.
        write_values: float [M, dim]; their contents (DDR/SSD: [parts, M, dim], the embedding then
            each optimizer slot).
        unique_keys: int64 [U]; the distinct keys, in order of first appearance.
        occurrences: int64 [U]; the sightings each distinct key stands for in this batch.
        rejected: keys of this batch refused admission (int).
        device_rows: rows the device variable must have for this plan (keys' rows + the scratch row).
        swap_out: device rows (DDR mode) to read back to the host before the writes, with their keys.
    """

    gather_rows: np.ndarray
    inverse: np.ndarray
    write_rows: np.ndarray
    write_values: np.ndarray
    unique_keys: np.ndarray
    occurrences: np.ndarray
    rejected: int = 0
    device_rows: int = 0
    swap_out: SwapOut = field(default_factory=SwapOut)


@dataclass(frozen=True)
class PlanRequest:
    """One lookup's host step, as the graph hands it over.

    Attributes:
        keys: int64 [N] ids (-1 = padding), or distinct keys when ``distinct`` or ``seq`` is set.
        insert: a training lookup (new keys get rows, sightings are counted).
        send_count: static shapes' most distinct keys, or None.
        timestamp: the batch's newest timestamp (seconds), or None when not evicting.
        weights: int64 [N], sightings each id stands for, or None for one each.
        lookup_id: the lookup's number within its table (``EmbeddingTable.built_lookups``).
        seq: the batch's sequence number when the lookup places batches ahead, else None.
        distinct: ``keys`` are distinct and hold no padding (a dedup key stage ran).
    """

    keys: np.ndarray
    insert: bool
    send_count: Optional[int] = None
    timestamp: Optional[int] = None
    weights: Optional[np.ndarray] = None
    lookup_id: int = 0
    seq: Optional[int] = None
    distinct: bool = False


def plan_batch(store: RowStore, keys: np.ndarray, insert: bool, send_count: Optional[int] = None,
               table_name: str = "", lifecycle: Optional[Lifecycle] = None,
               stats: Optional[KeyStats] = None, timestamp: Optional[int] = None,
               weights: Optional[np.ndarray] = None, lookup_id: int = 0, distinct: bool = False) -> BatchPlan:
    """Dedup ``keys`` (int64 [N]), place them in ``store`` and build the gather plan. ``distinct``:
    the keys are already distinct and hold no padding (a dedup key stage ran), so dedup is skipped.
    ``send_count``: the most distinct keys the batch may have (static shapes' contract); the plan
    covers the real keys only, whatever the count.

    With a ``lifecycle`` that counts, a training batch (``insert``) first adds its sightings to
    ``stats`` (and ``timestamp``, seconds, as the keys' last-seen time); only keys whose count
    reaches ``access_threshold`` get a row, the others read the default value. ``weights`` int64 [N]
    replaces each id's single sighting (keys that requesters already deduplicated carry their counts).

    Raises:
        SendCountOverflow: more distinct keys than ``send_count``, naming the count needed.
            Raised before the store changes.
    """
    if distinct:
        unique, inverse = keys, np.arange(keys.shape[0], dtype=np.int32)
        occurrences = weights if weights is not None else np.ones(keys.shape[0], np.int64)
    else:
        unique, inverse, occurrences = dedup(keys)
        if weights is not None:
            valid = inverse < unique.shape[0]
            occurrences = np.bincount(inverse[valid], weights=weights[valid],
                                      minlength=unique.shape[0]).astype(np.int64)
    if send_count is not None and unique.shape[0] > send_count:
        raise SendCountOverflow(
            f"table '{table_name}': {unique.shape[0]} distinct keys in this batch exceed send_count={send_count}; "
            f"set send_count >= {unique.shape[0]}")
    rejected = 0
    if insert and lifecycle is not None and lifecycle.counts:
        counts = stats.observe(unique, occurrences, lifecycle.faae_coefficient,
                               timestamp if lifecycle.evicts else None)
        admitted = counts >= (lifecycle.access_threshold or 0)
        placement = store.locate(unique, admitted, lookup_id)
        rejected = int((placement.rows < 0).sum())
    else:
        placement = store.locate(unique, insert, lookup_id)
    return gather_plan(placement, unique, inverse, occurrences, store.padding_row, rejected)


def gather_plan(placement: Placement, unique: np.ndarray, inverse: np.ndarray, occurrences: np.ndarray,
                padding_row: int, rejected: int = 0) -> BatchPlan:
    """The gather plan of a placement of ``unique`` (int64 [U], seen ``occurrences`` int64 [U] times);
    ``inverse`` int32 [N] maps ids to them (U for padding)."""
    has_row = placement.rows >= 0
    if has_row.all():  # the steady state: every distinct key is gathered, in order
        return BatchPlan(gather_rows=placement.rows, inverse=inverse, write_rows=placement.write_rows,
                         write_values=placement.write_values, unique_keys=unique, occurrences=occurrences, rejected=rejected,
                         device_rows=padding_row + 1, swap_out=placement.swap_out)
    gather_rows = placement.rows[has_row]
    n_gather = gather_rows.shape[0]
    position = np.where(has_row, np.cumsum(has_row) - 1, n_gather + 1)
    position = np.append(position, n_gather).astype(np.int32)
    return BatchPlan(gather_rows=gather_rows, inverse=position[inverse], write_rows=placement.write_rows,
                     write_values=placement.write_values, unique_keys=unique, occurrences=occurrences, rejected=rejected,
                     device_rows=padding_row + 1, swap_out=placement.swap_out)
