"""Requester side of a sharded lookup: dedup the batch and group its keys by owner rank."""
from dataclasses import dataclass
from typing import Optional

import numpy as np

from mx_rec.key_process.dedup import dedup

PAD_KEY = -1


@dataclass
class Route:
    """What to send to the owners and how to put the answers back.

    Attributes:
        send_keys: int64 [S]; distinct keys grouped by owner rank (rank 0's first). With
            ``send_count``, S = rank_size * send_count and each group is padded with -1.
        send_counts: int32 [rank_size]; keys sent to each rank (all ``send_count`` when padded).
        occurrences: int64 [S]; sightings of each sent key in this batch (0 for padding).
        positions: int32 [N]; for each id, the row of the answer [S] holding it; padding ids -> S.
        largest_bucket: the most distinct keys bound for one rank (int; > send_count is an overflow).
    """

    send_keys: np.ndarray
    send_counts: np.ndarray
    occurrences: np.ndarray
    positions: np.ndarray
    largest_bucket: int


def route(keys: np.ndarray, rank_size: int, send_count: Optional[int] = None) -> Route:
    """Plan the exchange of a flat batch of ids int64 [N] (owner of key k: ``k mod rank_size``).

    With ``send_count``, a bucket larger than it is truncated here; the caller checks
    ``largest_bucket`` on every rank (an all-reduce) and stops the job before the exchange.
    """
    unique, inverse, counts = dedup(keys)
    owner = unique % rank_size
    order = np.argsort(owner, kind="stable")
    bucket_sizes = np.bincount(owner, minlength=rank_size)
    largest = int(bucket_sizes.max()) if unique.size else 0
    slot_of_unique = np.empty(unique.shape[0], dtype=np.int64)
    if send_count is None:
        slot_of_unique[order] = np.arange(unique.shape[0])
        total = unique.shape[0]
        send_counts = bucket_sizes.astype(np.int32)
    else:
        starts = np.concatenate([[0], np.cumsum(bucket_sizes)[:-1]])
        rank_in_bucket = np.arange(unique.shape[0]) - starts[owner[order]]
        slot_of_unique[order] = owner[order] * send_count + rank_in_bucket
        total = rank_size * send_count
        send_counts = np.full(rank_size, send_count, dtype=np.int32)
    send_keys = np.full(total, PAD_KEY, dtype=np.int64)
    occurrences = np.zeros(total, dtype=np.int64)
    fits = slot_of_unique < total if send_count is None else \
        (slot_of_unique - owner * send_count) < send_count
    send_keys[slot_of_unique[fits]] = unique[fits]
    occurrences[slot_of_unique[fits]] = counts[fits]
    slot_ext = np.append(np.where(fits, slot_of_unique, total), total).astype(np.int32)
    return Route(send_keys=send_keys, send_counts=send_counts, occurrences=occurrences,
                 positions=slot_ext[inverse], largest_bucket=largest)
