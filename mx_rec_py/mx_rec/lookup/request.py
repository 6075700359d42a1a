"""The arguments of one lookup as they pass down the builders (``build_rows`` -> ``sharded_rows`` /
``replicated_rows`` -> ``owner_rows``): one frozen value instead of a row of positional arguments.
Each stage that changes what the next one sees derives a new request (``dataclasses.replace``).

    >>> request = LookupRequest(keys, timestamp, insert=True, send_count=None,             # doctest: +SKIP
    ...                         default_row=tf.zeros([1, 8]), out_dim=8)
    >>> extended, index = build_rows(table, request)
"""
from dataclasses import dataclass
from typing import Optional, Tuple

import tensorflow as tf

from mx_rec.key_process.lookahead import NextKeys


@dataclass(frozen=True, eq=False)
class LookupRequest:
    """One lookup of a table.

    Attributes:
        keys: int64 [N]; may repeat; -1 is padding (zeros).
        timestamp: int64 scalar, the batch's newest timestamp (``NO_TIMESTAMP`` when not evicting).
        insert: a training lookup (new keys get rows, sightings are counted).
        send_count: static shapes' fixed bucket size, Rec SDK's name: the most distinct keys per batch
            and owner rank (checked, never padded to), or None for dynamic shapes.
        default_row: value_dtype [1, out_dim] for keys without a row.
        out_dim: leading columns returned.
        modify_graph: keys come straight from a dataset iterator; the key stage waits for graph
            modification to move it into the input pipeline.
        weights: int64 [N], sightings each key stands for (requesters' counts), or None for one each.
        lookahead: (the pipeline's NextKeys, the batch's int64 sequence number) when the owner places
            the next batch while this one trains (``key_process.lookahead``), else None.
        distinct: ``keys`` are distinct and hold no padding (a dedup key stage ran before).
    """

    keys: tf.Tensor
    timestamp: tf.Tensor
    insert: bool
    send_count: Optional[int]
    default_row: tf.Tensor
    out_dim: int
    modify_graph: bool = False
    weights: Optional[tf.Tensor] = None
    lookahead: Optional[Tuple[NextKeys, tf.Tensor]] = None
    distinct: bool = False
