"""How big the zoo's tables are: device / host / SSD rows for ``CACHE_MODE``, and the SSD folder.

Every table of the zoo is looked up with the batch's ``sparse_feature`` (int64 [B, F], all fields
in one id space), so a table must hold the distinct keys training can insert (``insertable_keys``),
with a margin; ``vocabulary_kwargs`` turns that into ``create_table``'s vocabulary arguments.
"""
import contextlib
import math
import shutil
import tempfile
from pathlib import Path
from typing import Dict, Iterator

from models.common.config import TrainConfig
from models.common.data import DataInfo

MIN_ROWS = 1024


def insertable_keys(info: DataInfo, cfg: TrainConfig) -> int:
    """Distinct keys training can insert: ``cfg.table_keys``, else ``meta.json``'s distinct training
    keys or vocabulary size, else the bound samples * fields."""
    if cfg.table_keys:
        return cfg.table_keys
    for key in ("train_distinct_keys", "vocab_size"):
        if info.meta.get(key):
            return int(info.meta[key])
    return info.train.samples * info.width("sparse_feature")


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

    Example:
        >>> vocabulary_kwargs("DDR", rows=100_000, ssd_path="", batch_keys=1024, rank_size=1)
        {'device_vocabulary_size': 25000, 'host_vocabulary_size': 100000}
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
