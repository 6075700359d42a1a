"""Sparse tables of a model and their lookups, as the feature switches ask.

Every table of the zoo is looked up with the batch's ``sparse_feature`` (int64 [B, F], all
fields in one id space), either in one lookup or, with ``USE_MULTI_LOOKUP=1``, once per field
(F lookups of the same table, as Rec SDK scripts do when features share a table).
"""
import contextlib
import math
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, Iterator, Mapping, Optional, Sequence

import tensorflow as tf

from mx_rec.core.embedding import create_table, sparse_lookup

from common.config import TrainConfig
from common.switches import JobSwitches, SwitchError

GRADIENTS_OP = "sum_gradients_and_div_by_ranksize"  # dense gradients are averaged over ranks too
MIN_ROWS = 1024


@dataclass(frozen=True)
class TableSpec:
    """One sparse table of a model.

    Attributes:
        name: table name (unique). dim: embedding width.
        optimizer: hash optimizer ("" = ``TrainConfig.sparse_optimizer``).
        learning_rate: its rate (0 = ``TrainConfig.sparse_lr``).
        init_stddev: truncated-normal stddev of initial rows (0 = ``TrainConfig.init_stddev``).
    """

    name: str
    dim: int
    optimizer: str = ""
    learning_rate: float = 0.0
    init_stddev: float = 0.0


def table_rows(keys: int, margin: float) -> int:
    """Device rows (over all ranks) for a table that may insert ``keys`` distinct keys."""
    return max(MIN_ROWS, int(math.ceil(keys * margin)) + MIN_ROWS)


def vocabulary_kwargs(cache_mode: str, rows: int, ssd_path: str, batch_keys: int, rank_size: int
                      ) -> Dict[str, object]:
    """``create_table`` vocabulary arguments (global, over all ranks) for ``CACHE_MODE``.

    HBM: every row on the device. DDR: the device caches a quarter of the rows, the host holds
    all. SSD: device an eighth, host a quarter, SSD all rows under ``ssd_path``. A device cache
    never gets fewer rows than two batches' worth of keys on every rank (``batch_keys`` ids per
    rank and batch; an owner shard may receive them from every rank), which the tiers need.
    """
    if cache_mode == "HBM":
        return {"device_vocabulary_size": rows}
    cache_floor = 2 * batch_keys * rank_size * rank_size + MIN_ROWS
    if cache_mode == "DDR":
        return {"device_vocabulary_size": max(cache_floor, rows // 4), "host_vocabulary_size": rows}
    return {"device_vocabulary_size": max(cache_floor, rows // 8), "host_vocabulary_size": max(cache_floor, rows // 4),
            "ssd_vocabulary_size": rows, "ssd_data_path": (ssd_path,)}


@contextlib.contextmanager
def ssd_folder(cache_mode: str, requested: str, label: str) -> Iterator[str]:
    """The SSD tier's folder: ``requested`` (created if missing), else a scratch folder of this
    process, removed on exit; "" when ``cache_mode`` is not SSD."""
    if cache_mode != "SSD":
        yield ""
    elif requested:
        Path(requested).mkdir(parents=True, exist_ok=True)
        yield requested
    else:
        scratch = tempfile.mkdtemp(prefix=f"mx_rec_ssd_{label}_")
        try:
            yield scratch
        finally:
            shutil.rmtree(scratch, ignore_errors=True)


def create_tables(specs: Sequence[TableSpec], cfg: TrainConfig, switches: JobSwitches, keys: int,
                  ssd_path: str, batch_keys: int, rank_size: int) -> Dict[str, object]:
    """``create_table`` for every spec, sized for ``keys`` distinct keys (and, for the DDR / SSD
    caches, ``batch_keys`` ids per rank and batch).

    Create the hash optimizers first (``training.make_sparse_optimizers``): in DDR/SSD mode a table
    makes its optimizer slots when it is created.

    Raises:
        SwitchError: the SDK cannot build the tier ``CACHE_MODE`` asks for.
    """
    rows = table_rows(keys, cfg.vocab_margin)
    tables = {}
    for i, spec in enumerate(specs):
        initializer = tf.compat.v1.truncated_normal_initializer(stddev=spec.init_stddev or cfg.init_stddev,
                                                                seed=cfg.seed + i)
        try:
            tables[spec.name] = create_table(key_dtype=tf.int64, dim=spec.dim, name=spec.name,
                                             emb_initializer=initializer, all2all_gradients_op=GRADIENTS_OP,
                                             **vocabulary_kwargs(switches.cache_mode, rows, ssd_path,
                                                                 batch_keys, rank_size))
        except NotImplementedError as err:
            raise SwitchError(f"CACHE_MODE={switches.cache_mode}: {err}") from None
    return tables


def lookup_fields(table, ids: tf.Tensor, is_train: bool, switches: JobSwitches, access_threshold: int,
                  prefix: str) -> tf.Tensor:
    """Embeddings of every field: ids int64 [B, F] -> float32 [B, F, dim].

    ``USE_DYNAMIC=0`` passes ``send_count`` = the ids of the lookup (B * F, or B per field): the
    distinct keys bound for one rank can never exceed it. ``USE_FAAE=1`` sets the table's
    admission threshold on training lookups. ``USE_MODIFY_GRAPH=1`` passes ``modify_graph=True``
    (``ids`` then come straight from the iterator; the job runs the graph modifier).
    """
    batch, fields = ids.shape.as_list()
    if batch is None or fields is None:
        raise ValueError(f"lookup of {table.table_name}: ids need a static shape [B, F], got {ids.shape}")
    admission: Optional[Mapping[str, int]] = (
        {"access_threshold": access_threshold} if switches.use_faae and is_train else None)
    if not switches.use_multi_lookup:
        return sparse_lookup(table, ids, send_count=None if switches.use_dynamic else batch * fields,
                             is_train=is_train, name=f"{prefix}_{table.table_name}",
                             access_and_evict_config=admission, modify_graph=switches.use_modify_graph)
    per_field = [sparse_lookup(table, ids[:, f], send_count=None if switches.use_dynamic else batch,
                               is_train=is_train, name=f"{prefix}_{table.table_name}_field{f}",
                               access_and_evict_config=admission, modify_graph=switches.use_modify_graph)
                 for f in range(fields)]
    return tf.stack(per_field, axis=1)
