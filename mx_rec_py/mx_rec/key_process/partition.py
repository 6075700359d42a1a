"""Requester side of a sharded lookup: dedup the batch and group its keys by owner rank."""
from dataclasses import dataclass
from typing import Tuple

import numpy as np

from mx_rec.key_process.dedup import dedup


@dataclass
class Route:
    """What to send to the owners and how to put the answers back.

    Attributes:
        send_keys: int64 [S]; the batch's distinct keys grouped by owner rank (rank 0's first).
        send_counts: int32 [rank_size]; keys sent to each rank.
        occurrences: int64 [S]; sightings of each sent key in this batch.
        positions: int32 [N]; for each id, the row of the answer [S] holding it; padding ids -> S.
        largest_bucket: the most distinct keys bound for one rank (int; > send_count is an overflow).
    """

    send_keys: np.ndarray
    send_counts: np.ndarray
    occurrences: np.ndarray
    positions: np.ndarray
    largest_bucket: int


def route(keys: np.ndarray, rank_size: int) -> Route:
    """Plan the exchange of a flat batch of ids int64 [N] (owner of key k: ``k mod rank_size``).

    Static shapes (``send_count``) send the same keys, nothing padded; ``largest_bucket`` travels
    with them (:func:`add_trailers`) so that every rank can check it.
    """
    unique, inverse, counts = dedup(keys)
    owner = unique % rank_size
    order = np.argsort(owner, kind="stable")
    bucket_sizes = np.bincount(owner, minlength=rank_size)
    largest = int(bucket_sizes.max()) if unique.size else 0
    slot_of_unique = np.empty(unique.shape[0] + 1, dtype=np.int32)  # the last: padding ids -> S
    slot_of_unique[order] = np.arange(unique.shape[0])
    slot_of_unique[-1] = unique.shape[0]
    return Route(send_keys=unique[order], send_counts=bucket_sizes.astype(np.int32),
                 occurrences=counts[order].astype(np.int64), positions=slot_of_unique[inverse], largest_bucket=largest)


def add_trailers(values: np.ndarray, counts: np.ndarray, trailer: int) -> np.ndarray:
    """``values`` int64 [S] in buckets of ``counts`` int32 [rank_size], each bucket followed by
    ``trailer``: int64 [S + rank_size]. With static shapes every rank sends its largest bucket to
    every rank this way, so the exchange itself tells each rank the largest bucket of all."""
    return np.insert(values, np.cumsum(counts), trailer)


def strip_trailers(received: np.ndarray, counts: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
    """What :func:`add_trailers` sent, as received: ``received`` int64 [R + rank_size] in buckets of
    ``counts`` int32 [rank_size] (each counting its trailer) -> (values int64 [R], trailers int64 [rank_size])."""
    ends = np.cumsum(counts) - 1
    keep = np.ones(received.shape[0], dtype=bool)
    keep[ends] = False
    return received[keep], received[ends]
