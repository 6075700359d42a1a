"""Save and restore every ``is_save`` table beside a TF checkpoint prefix, as one unit with TF's files.

A save writes every rank's shards into a temporary directory, then (rank 0) lets TF write its
files, links them into the unit (``unit.py``), writes the manifest that ties all of it to one save
id, and renames the directory into place: that rename completes the unit. Until then the previous
unit under the same name (its shards, its manifest and its own links to TF's previous files)
stays whole, so an exception or a kill at any point leaves it restorable. TF's ``checkpoint``
file is written after the rename (``tf_saver.py``). Restoring verifies every file before it
changes anything in the session.

Paths go through ``mx_rec.system.files`` (any filesystem TF has). Locally the unit is completed by
one atomic directory rename. Where directories cannot be renamed atomically (``ram://``, object
stores) the files move one by one with the manifest last, so a reader never takes a partial unit
for a complete one, and TF's ``checkpoint`` file still names the previous checkpoint until the new
unit is complete; what such a filesystem cannot guarantee is the previous unit of the *same* prefix
(a save without ``global_step``) when the save dies while replacing it: that prefix may then be
unreadable (an error naming the missing file). Save with ``global_step`` there.
"""
import json
import os
import re
import uuid
import zipfile
from typing import Callable, Dict, List, Optional

import numpy as np
import tensorflow as tf

from mx_rec.config.initializer import ConfigInitializer
from mx_rec.saver import layout, unit
from mx_rec.saver.layout import CheckpointError
from mx_rec.saver.table_state import TableState, apply, collect
from mx_rec.system import files as fs
from mx_rec.system.processes import pid_alive
from mx_rec.tables.table import EmbeddingTable
from mx_rec.system.log import logger

OWNER = "owner"  # in a temporary directory: "<pid of rank 0> <save id>"


def saved_tables() -> List[EmbeddingTable]:
    """Tables of the live configuration with ``is_save=True``, by name."""
    tables = ConfigInitializer.get_instance().tables
    return [tables[name] for name in sorted(tables) if tables[name].config.is_save]


def _write_shard(path: str, state: TableState) -> None:
    fs.makedirs(os.path.dirname(path), exist_ok=True)
    with fs.open_write(path) as f:
        np.savez(f, **state.arrays())


def _table_entry(table: EmbeddingTable, state: TableState, shard: dict) -> dict:
    return {"dim": table.dim, "is_dp": table.config.is_dp, "key_dtype": table.key_dtype.name,
            "value_dtype": table.value_dtype.name, "slots": sorted(state.slots),
            "shard": {**shard, "key_count": int(state.keys.shape[0]), "stat_key_count": int(state.stat_keys.shape[0])}}


def _manifest(tmp: str, rank_size: int, step: Optional[int], save_id: str) -> dict:
    """Merge the ranks' entries (``rank-<r>.json`` in ``tmp``) into the manifest (without its dense part)."""
    tables: Dict[str, dict] = {}
    for rank in range(rank_size):
        path = fs.join(tmp, f"rank-{rank}.json")
        ranked = json.loads(fs.read_text(path))
        if ranked.pop("save_id") != save_id:
            raise CheckpointError(f"{path} was written by another save than {save_id}")
        for name, entry in ranked.items():
            shard = entry.pop("shard")
            merged = tables.setdefault(name, {**entry, "key_counts": [], "stat_key_counts": [], "shards": []})
            merged["key_counts"].append(shard["key_count"])
            merged["stat_key_counts"].append(shard["stat_key_count"])
            merged["shards"].append(shard)
        fs.remove(path)
    return {"format_version": layout.FORMAT_VERSION, "save_id": save_id, "rank_size": rank_size, "step": step,
            "tables": tables}


def _state_bytes(state: TableState) -> int:
    return sum(int(np.asarray(a).nbytes) for a in state.arrays().values())


def _restore_dense(prefix: str, before: Dict[str, int], previous: str) -> None:
    """After a failed save: TF's files of ``prefix`` back as they were (from the previous unit's links),
    and the ones this save added removed."""
    copies = fs.join(previous, unit.DENSE_DIR)
    for path in unit.dense_files(prefix):
        if path not in before:
            fs.remove(path)
    for path, inode in before.items():
        copy = fs.join(copies, os.path.basename(path))
        if fs.isfile(copy) and (not fs.exists(path) or inode is None or fs.identity(path) != inode):
            fs.link_or_copy(copy, path + ".mxrec-back")
            fs.rename(path + ".mxrec-back", path)


def save_sparse(session, prefix: str, step: Optional[int] = None, barrier: Callable[[], None] = lambda: None,
                write_dense: Optional[Callable[[], None]] = None, dense_bytes: int = 0,
                collect_state: Callable[[EmbeddingTable, object], TableState] = collect,
                extra: Optional[dict] = None) -> str:
    """Write the checkpoint ``prefix`` as one unit (every rank its own shards); returns its sparse directory.

    With several ranks all of them call this; ``barrier`` waits for all. They write into one
    temporary directory; then rank 0 calls ``write_dense`` (TF's save of the dense variables),
    records TF's files, writes the manifest and renames the directory into place.

    Args:
        session: the session holding the tables. prefix: TF checkpoint prefix. step: recorded in the manifest.
        barrier: waits for every rank. write_dense: writes TF's files of ``prefix`` (rank 0).
        dense_bytes: about how many bytes ``write_dense`` writes (for the disk-full message).
        collect_state: reads a table's state to save (a delta's changed rows: ``delta.collect_delta``).
        extra: entries added to the manifest (a delta's kind and chain).

    Raises:
        DiskFullError (an OSError): the filesystem is full, naming the path and about how many bytes
            the save needs; nothing of earlier checkpoints changes.
        OSError: the directory cannot be written; nothing of earlier checkpoints changes.
    """
    config = ConfigInitializer.get_instance()
    final = layout.sparse_dir(prefix)
    single = config.rank_size == 1
    # several ranks share one temporary directory, so its name must not depend on the process
    tmp = f"{final}.tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}" if single else f"{final}.tmp-{config.rank_size}ranks"
    tables = saved_tables()
    written = 0
    before: Dict[str, int] = {}
    dense_started = False
    where = tmp  # what is being written, for the disk-full message
    try:
        if config.rank_id == 0:
            remove_leftovers(os.path.dirname(fs.abspath(prefix)))
            fs.rmtree(tmp, ignore_errors=True)  # left by a job that died mid-save
            fs.makedirs(tmp, exist_ok=False)
            fs.write_text(fs.join(tmp, OWNER), f"{os.getpid()} {uuid.uuid4().hex}")
        barrier()
        save_id = fs.read_text(fs.join(tmp, OWNER)).split()[1]
        entries: Dict[str, object] = {"save_id": save_id}
        for i, table in enumerate(tables):
            state = collect_state(table, session)
            state.save_id = save_id
            path = layout.shard_path(tmp, table.table_name, config.rank_id, config.rank_size)
            try:
                _write_shard(path, state)
            except OSError as err:
                if not unit.is_disk_full(err):
                    raise
                rest = sum(_state_bytes(collect_state(t, session)) for t in tables[i + 1:])
                raise unit.disk_full(path, written + _state_bytes(state) + rest + dense_bytes, err) from None
            digest = unit.file_digest(path)
            written += int(digest["bytes"])
            entries[table.table_name] = _table_entry(table, state, {"file": os.path.relpath(path, tmp), **digest})
        where = fs.join(tmp, f"rank-{config.rank_id}.json")
        fs.write_text(where, json.dumps(entries))
        barrier()
        if config.rank_id == 0:
            manifest = {**_manifest(tmp, config.rank_size, step, save_id), **(extra or {})}
            if write_dense is not None:
                before = {p: fs.identity(p) for p in unit.dense_files(prefix)}
                dense_started, where = True, prefix
                write_dense()
            where = fs.join(tmp, unit.DENSE_DIR)
            manifest["dense"] = unit.record_dense(prefix, tmp)
            manifest["digest"] = unit.manifest_digest(manifest)
            where = fs.join(tmp, layout.MANIFEST)
            layout.write_manifest(tmp, manifest)
            old = None
            if fs.exists(final):
                old = f"{final}.old-{uuid.uuid4().hex[:8]}"
                fs.rename(final, old, last=[layout.MANIFEST])
            fs.rename(tmp, final, last=[layout.MANIFEST])  # the new unit is complete
            if old:
                fs.rmtree(old, ignore_errors=True)
        barrier()
    except BaseException as err:
        if config.rank_id == 0:
            if dense_started and fs.isdir(tmp):  # TF may have replaced files of the previous unit
                try:
                    _restore_dense(prefix, before, final)
                except OSError as undo:
                    logger.error("could not put back TF's files of %s after the failed save: %s (restore still "
                                 "reads the previous unit's copies in %s)", prefix, undo, final)
            fs.rmtree(tmp, ignore_errors=True)
        if unit.is_disk_full(err) and not isinstance(err, unit.DiskFullError):
            where = getattr(err, "filename", None) or where
            raise unit.disk_full(where, written + dense_bytes, err) from None
        raise
    logger.info("saved %d sparse table(s) to %s", len(tables), final)
    return final


def check_capacity(name: str, table: EmbeddingTable, state: TableState) -> None:
    """Refuse a restore of more keys than ``table`` can hold (raises CheckpointError naming the table)."""
    room = table.backend.restore_capacity()
    if room is not None and state.keys.shape[0] > room:
        raise CheckpointError(f"table '{name}': checkpoint holds {state.keys.shape[0]} keys, more than the "
                              f"table's capacity {table.capacity()}; raise device_vocabulary_size")


def load_shard(path: str, table_name: str, dim: int, record: dict, save_id: Optional[str],
               state_class: type = TableState, what: str = "checkpoint shard") -> TableState:
    """One shard file as ``state_class`` (``TableState``, or a delta's ``DeltaState``), checked against its
    manifest ``record`` and ``save_id``. Raises CheckpointError naming the table and the file."""
    if not fs.isfile(path):
        raise CheckpointError(f"table '{table_name}': {what} {path} is missing")
    try:
        with fs.open_read(path) as f, np.load(f) as data:
            state = state_class.from_arrays({k: data[k] for k in data.files})
    except (OSError, ValueError, KeyError, zipfile.BadZipFile, EOFError) as err:
        raise CheckpointError(f"table '{table_name}': {what} {path} is truncated or unreadable "
                              f"({type(err).__name__}: {err})") from None
    if save_id is not None and state.save_id != save_id:
        raise CheckpointError(f"table '{table_name}': {what} {path} belongs to save {state.save_id!r}, "
                              f"the manifest to save {save_id}")
    k = state.keys.shape[0]
    if state.embeddings.shape != (k, dim) or any(v.shape != (k, dim) for v in state.slots.values()):
        raise CheckpointError(f"table '{table_name}': {what} {path} holds arrays of inconsistent shapes")
    s = state.stat_keys.shape[0]
    if state.counts.shape != (s,) or state.last_seen.shape != (s,):
        raise CheckpointError(f"table '{table_name}': {what} {path} holds admission counts of "
                              "inconsistent shapes")
    unit.check_counts(path, table_name, record, k, s)
    return state


def load_sparse(prefix: str, checked: Optional[unit.Unit] = None) -> Dict[str, TableState]:
    """Read and check the sparse part of ``prefix`` against the live tables; changes nothing.

    A checkpoint saved by N ranks loads on M: every shard is read and this rank keeps the keys
    it owns (``key mod M == rank``), with their rows, slots and admission counts.

    Args:
        prefix: TF checkpoint prefix. checked: its :func:`unit.verify` result (verified here when None).

    Raises:
        CheckpointError: missing, damaged or mixed files, another table set, another dim, key counts
            other than the manifest's, or too many keys; the message names the file or the table.
    """
    config = ConfigInitializer.get_instance()
    checked = checked or unit.verify(prefix)
    manifest = checked.manifest
    root = layout.unit_dir(prefix)
    tables = {t.table_name: t for t in saved_tables()}
    saved = manifest["tables"]
    if set(saved) != set(tables):
        missing, extra = sorted(set(tables) - set(saved)), sorted(set(saved) - set(tables))
        raise CheckpointError(f"checkpoint {root} does not match the session's tables: "
                              f"not in the checkpoint: {missing}; only in the checkpoint: {extra}")
    return {name: load_table(checked, root, name, table) for name, table in tables.items()}


def load_table(checked: unit.Unit, root: str, name: str, table: EmbeddingTable) -> TableState:
    """One table's state in the verified unit ``checked`` (at ``root``, for messages), as this rank
    keeps it (``key mod M == rank``); checks the dim and the capacity of the live ``table``.

    Raises:
        CheckpointError: the unit lacks the table, another dim, too many keys, a damaged shard (named).
    """
    config = ConfigInitializer.get_instance()
    manifest = checked.manifest
    entry = manifest["tables"].get(name)
    if entry is None:
        raise CheckpointError(f"table '{name}': checkpoint {root} does not hold it")
    if entry["dim"] != table.dim:
        raise CheckpointError(f"table '{name}': checkpoint {root} has dim {entry['dim']}, the session's "
                              f"table has dim {table.dim}")
    records = unit.shard_records(manifest, name)
    shards = [load_shard(path, name, table.dim, record, manifest.get("save_id"))
              for path, record in zip(checked.shards[name], records)]
    state = shards[0] if len(shards) == 1 else _merge(shards)
    if config.rank_size > 1 and not table.config.is_dp:
        state = state.owned_by(config.rank_id, config.rank_size)
    check_capacity(name, table, state)
    return state


def _merge(shards: List[TableState]) -> TableState:
    """Concatenate rank shards (keys are disjoint across ranks)."""
    names = set().union(*(s.slots for s in shards))
    return TableState(
        keys=np.concatenate([s.keys for s in shards]),
        embeddings=np.concatenate([s.embeddings for s in shards]),
        slots={n: np.concatenate([s.slots[n] for s in shards]) for n in names},
        stat_keys=np.concatenate([s.stat_keys for s in shards]),
        counts=np.concatenate([s.counts for s in shards]),
        last_seen=np.concatenate([s.last_seen for s in shards]),
        newest=max(s.newest for s in shards))


def restore_sparse(session, states: Dict[str, TableState]) -> None:
    """Write states checked by :func:`load_sparse` into the session's tables."""
    tables = ConfigInitializer.get_instance().tables
    for name, state in states.items():
        apply(tables[name], state, session)
    logger.info("restored %d sparse table(s)", len(states))


def _dead_tmp(path: str) -> bool:
    """True for a temporary sparse directory whose saving process (rank 0) is gone."""
    try:
        pid = fs.read_text(fs.join(path, OWNER)).split()[0]
    except (OSError, IndexError, tf.errors.OpError):
        pid = path.rsplit(".tmp-", 1)[1].split("-")[0]  # killed before it wrote its owner file
    return not pid.isdigit() or not pid_alive(int(pid))


# TF's temporaries: BundleWriter's "<file>.tempstate<n>", sharded saves' "<prefix>_temp[_<uuid>]/part-*"
# folders, and atomic writes' "<file>.tmp<32 hex>"
_TF_TEMP_FILE = re.compile(r".*(\.tempstate\d+|\.tmp[0-9a-f]{32})$")
_TF_TEMP_DIR = re.compile(r".*_temp(_[0-9a-f]{32})?$")


def remove_leftovers(directory: str) -> None:
    """Delete, in ``directory``, what saves that died left: TF's temporary files and folders, mx_rec's
    temporary sparse directories (and the TF files of their prefix when that prefix has no complete
    unit), and replaced units not yet deleted (or puts one back where its successor is not in place).
    Called by rank 0 at the start of every save."""
    if not fs.isdir(directory):
        return
    for entry in sorted(fs.listdir(directory)):  # a save killed between its two renames: put the unit back
        final = fs.join(directory, entry.split(layout.SUFFIX + ".old-")[0] + layout.SUFFIX)
        if layout.SUFFIX + ".old-" in entry and not fs.exists(final):
            fs.rename(fs.join(directory, entry), final, last=[layout.MANIFEST])
    for entry in fs.listdir(directory):
        path = fs.join(directory, entry)
        if fs.isdir(path) and _TF_TEMP_DIR.fullmatch(entry) and any(
                p.startswith("part-") for p in fs.listdir(path)):
            fs.rmtree(path, ignore_errors=True)
        elif fs.isfile(path) and _TF_TEMP_FILE.fullmatch(entry):
            fs.remove(path)
        elif layout.SUFFIX + ".tmp-" in entry and _dead_tmp(path):
            fs.rmtree(path, ignore_errors=True)
            prefix = path.split(layout.SUFFIX + ".tmp-")[0]
            if not fs.isdir(layout.sparse_dir(prefix)):
                for leftover in unit.dense_files(prefix):
                    fs.remove(leftover)
        elif layout.SUFFIX + ".old-" in entry:
            fs.rmtree(path, ignore_errors=True)


def remove_orphans(directory: str, keep: str) -> None:
    """Delete, in ``directory``: sparse directories whose TF checkpoint is gone (max_to_keep), except
    ``keep``, and temporary directories of saves whose process died."""
    if not fs.isdir(directory):
        return
    for entry in fs.listdir(directory):
        path = fs.join(directory, entry)
        if entry.endswith(layout.SUFFIX) and path != keep:
            if not fs.exists(path[:-len(layout.SUFFIX)] + ".index"):
                fs.rmtree(path, ignore_errors=True)
        elif layout.SUFFIX + ".tmp-" in entry and _dead_tmp(path):
            fs.rmtree(path, ignore_errors=True)
