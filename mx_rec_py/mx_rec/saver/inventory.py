"""What a checkpoint folder holds: every unit (full checkpoint, base or delta), read from its manifest.

Read by ``tools/inspect_checkpoint.py``. A unit is a ``<prefix>-mxrec-sparse`` directory with a
``manifest.json`` (``layout.py``); its kind is the manifest's ``kind`` (``"full"`` when it records
none) and a delta names its ``base``, so a chain (a base and the deltas after it) lists as its
units in step order. Every unit is verified as a restore verifies it (``unit.verify``): a missing,
truncated or damaged file is reported naming it. Temporary directories of saves that did not
finish (``.tmp-*``) and units moved aside (``.old-*``) are listed as leftovers.
"""
import os
from dataclasses import asdict, dataclass, field
from typing import Dict, List, Optional

import tensorflow as tf

from mx_rec.saver import layout, unit
from mx_rec.saver.layout import CheckpointError
from mx_rec.system import files as fs


@dataclass
class TableSummary:
    """One table of a unit: dim (int), keys per saving rank and in all, admission-count rows, shard bytes."""

    name: str
    dim: int
    keys_per_rank: List[int]
    keys: int
    stat_keys: int
    bytes: int
    replicated: bool = False


@dataclass
class UnitSummary:
    """One unit: its prefix, kind (``full`` / ``base`` / ``delta``...), step, saving ranks, bytes, tables, and
    ``problem``: None when every file verified, else the error naming the file."""

    prefix: str
    kind: str
    step: Optional[int]
    base: Optional[str]
    rank_size: int
    save_id: str
    bytes: int
    dense_bytes: int
    tables: List[TableSummary] = field(default_factory=list)
    problem: Optional[str] = None


@dataclass
class Inventory:
    """Everything :func:`inspect_checkpoint` found; ``latest``: what TF's ``checkpoint`` file names."""

    directory: str
    latest: Optional[str]
    units: List[UnitSummary] = field(default_factory=list)
    leftovers: List[str] = field(default_factory=list)

    @property
    def damaged(self) -> List[UnitSummary]:
        return [u for u in self.units if u.problem]

    def as_dict(self) -> Dict:
        return asdict(self)


def summarize_unit(prefix: str) -> UnitSummary:
    """The summary of the unit of checkpoint ``prefix``, verified (``problem`` says what is wrong).

    Raises:
        CheckpointError: the manifest itself is missing or unreadable, naming it.
    """
    manifest = layout.read_manifest(prefix)
    tables = []
    for name in sorted(manifest["tables"]):
        entry = manifest["tables"][name]
        records = unit.shard_records(manifest, name)
        per_rank = [int(r.get("key_count", 0)) for r in records]
        tables.append(TableSummary(name=name, dim=int(entry["dim"]), keys_per_rank=per_rank, keys=sum(per_rank),
                                   stat_keys=sum(int(r.get("stat_key_count", 0)) for r in records),
                                   bytes=sum(int(r.get("bytes", 0)) for r in records),
                                   replicated=bool(entry.get("is_dp", False))))
    dense_bytes = sum(int(d.get("bytes", 0)) for d in manifest.get("dense", {}).values())
    summary = UnitSummary(prefix=prefix, kind=str(manifest.get("kind", "full")), step=manifest.get("step"),
                          base=manifest.get("base"), rank_size=int(manifest["rank_size"]),
                          save_id=str(manifest.get("save_id", "")), dense_bytes=dense_bytes,
                          bytes=dense_bytes + sum(t.bytes for t in tables), tables=tables)
    try:
        unit.verify(prefix, need_meta=True)
    except CheckpointError as err:
        summary.problem = str(err)
    return summary


def inspect_checkpoint(path: str) -> Inventory:
    """Every unit in the checkpoint folder ``path`` (or the one unit of the prefix ``path``), in step order.

    Args:
        path: a checkpoint folder, on any filesystem TF has, or a checkpoint prefix (``.../model-100``).

    Returns:
        the inventory; a unit whose manifest cannot be read is listed with ``problem`` naming it.

    Raises:
        CheckpointError: ``path`` is neither a folder nor a checkpoint prefix.

    Example:
        >>> inv = inspect_checkpoint("/ckpt")                                            # doctest: +SKIP
        >>> [(u.kind, u.step, sum(t.keys for t in u.tables)) for u in inv.units]         # doctest: +SKIP
    """
    path = os.fspath(path)
    if not fs.isdir(path) or fs.isdir(layout.sparse_dir(path)):
        if not fs.isdir(layout.sparse_dir(path)) and not fs.isfile(path + ".index"):
            raise CheckpointError(f"{path} is neither a checkpoint folder nor a checkpoint prefix")
        directory = os.path.dirname(path)
        return Inventory(directory, _latest(directory), [_summary_or_problem(path)])
    inventory = Inventory(path, _latest(path))
    for entry in sorted(fs.listdir(path)):
        full = fs.join(path, entry)
        if layout.SUFFIX + ".tmp-" in entry or layout.SUFFIX + ".old-" in entry:
            inventory.leftovers.append(full)
        elif entry.endswith(layout.SUFFIX) and fs.isdir(full):
            inventory.units.append(_summary_or_problem(full[:-len(layout.SUFFIX)]))
    inventory.units.sort(key=lambda u: (u.step is None, u.step if u.step is not None else 0, u.kind != "base",
                                        u.prefix))
    return inventory


def _summary_or_problem(prefix: str) -> UnitSummary:
    try:
        return summarize_unit(prefix)
    except CheckpointError as err:
        return UnitSummary(prefix=prefix, kind="?", step=None, base=None, rank_size=0, save_id="", bytes=0,
                           dense_bytes=0, problem=str(err))


def _latest(directory: str) -> Optional[str]:
    try:
        state = tf.train.get_checkpoint_state(directory)
    except (tf.errors.OpError, ValueError):
        return None
    return state.model_checkpoint_path if state is not None and state.model_checkpoint_path else None


def format_inventory(inventory: Inventory) -> str:
    """Human-readable lines of ``inventory`` (what the tool prints)."""
    lines = [f"checkpoint folder {inventory.directory}: {len(inventory.units)} unit(s); TF's 'checkpoint' file "
             f"names {inventory.latest or 'none'} as the latest"]
    for u in inventory.units:
        status = "ok" if u.problem is None else f"DAMAGED: {u.problem}"
        base = f" base {u.base}" if u.base else ""
        lines.append(f"{os.path.basename(u.prefix)}  {u.kind}{base}  step {u.step}  saved by {u.rank_size} rank(s)  "
                     f"{_size(u.bytes)} (dense {_size(u.dense_bytes)})  save id {u.save_id or '-'}  {status}")
        for t in u.tables:
            ranks = ", ".join(f"rank {r}: {k}" for r, k in enumerate(t.keys_per_rank))
            lines.append(f"    table {t.name}  dim {t.dim}  keys {t.keys} ({'replicated; ' if t.replicated else ''}"
                         f"{ranks})  admission counts {t.stat_keys}  {_size(t.bytes)}")
    for leftover in inventory.leftovers:
        lines.append(f"leftover of a save that did not finish: {leftover}")
    return "\n".join(lines)


def _size(n: int) -> str:
    for unit_name, scale in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if n >= scale:
            return f"{n / scale:.1f} {unit_name}"
    return f"{n} B"
