"""Save and restore every ``is_save`` table beside a TF checkpoint prefix.

Saving writes the whole sparse directory under a temporary name and renames it into place, so an
exception or a kill mid-save leaves earlier checkpoints untouched (and TF's ``checkpoint`` file,
written last by TF's Saver, still names the previous one). Restoring reads and checks every file
before it changes anything in the session.
"""
import json
import os
import shutil
import uuid
import zipfile
from typing import Callable, Dict, List, Optional

import numpy as np

from mx_rec.config.initializer import ConfigInitializer
from mx_rec.saver import layout
from mx_rec.saver.layout import CheckpointError
from mx_rec.saver.table_state import TableState, apply, collect
from mx_rec.tables.table import EmbeddingTable
from mx_rec.util.log import logger


def saved_tables() -> List[EmbeddingTable]:
    """Tables of the live configuration with ``is_save=True``, by name."""
    tables = ConfigInitializer.get_instance().tables
    return [tables[name] for name in sorted(tables) if tables[name].config.is_save]


def _write_shard(path: str, state: TableState) -> None:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        np.savez(f, **state.arrays())


def _table_entry(table: EmbeddingTable, state: TableState) -> dict:
    return {"dim": table.dim, "is_dp": table.config.is_dp, "key_dtype": table.key_dtype.name,
            "value_dtype": table.value_dtype.name,
            "slots": sorted(state.slots), "key_count": int(state.keys.shape[0]),
            "stat_key_count": int(state.stat_keys.shape[0])}


def _manifest(tmp: str, rank_size: int, step: Optional[int]) -> dict:
    """Merge the ranks' entries (``rank-<r>.json`` in ``tmp``) into the manifest."""
    tables: Dict[str, dict] = {}
    for rank in range(rank_size):
        path = os.path.join(tmp, f"rank-{rank}.json")
        with open(path, encoding="utf-8") as f:
            for name, entry in json.load(f).items():
                merged = tables.setdefault(name, {**entry, "key_counts": [], "stat_key_counts": []})
                merged["key_counts"].append(entry["key_count"])
                merged["stat_key_counts"].append(entry["stat_key_count"])
        os.remove(path)
    for entry in tables.values():
        entry.pop("key_count")
        entry.pop("stat_key_count")
    return {"format_version": layout.FORMAT_VERSION, "rank_size": rank_size, "step": step, "tables": tables}


def save_sparse(session, prefix: str, step: Optional[int] = None, barrier: Callable[[], None] = lambda: None
                ) -> str:
    """Write the sparse part of the checkpoint ``prefix`` (every rank its own shards); returns its directory.

    With several ranks all of them call this; ``barrier`` waits for all. They write into one
    temporary directory, then rank 0 writes the manifest and renames the directory into place.

    Raises:
        OSError: the directory cannot be written; nothing of earlier checkpoints changes.
    """
    config = ConfigInitializer.get_instance()
    final = layout.sparse_dir(prefix)
    single = config.rank_size == 1
    # several ranks share one temporary directory, so its name must not depend on the process
    tmp = f"{final}.tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}" if single else f"{final}.tmp-{config.rank_size}ranks"
    tables = saved_tables()
    try:
        if config.rank_id == 0:
            shutil.rmtree(tmp, ignore_errors=True)  # left by a job that died mid-save
            os.makedirs(tmp)
        barrier()
        entries = {}
        for table in tables:
            state = collect(table, session)
            _write_shard(layout.shard_path(tmp, table.table_name, config.rank_id, config.rank_size), state)
            entries[table.table_name] = _table_entry(table, state)
        with open(os.path.join(tmp, f"rank-{config.rank_id}.json"), "w", encoding="utf-8") as f:
            json.dump(entries, f)
        barrier()
        if config.rank_id == 0:
            layout.write_manifest(tmp, _manifest(tmp, config.rank_size, step))
            old = None
            if os.path.exists(final):
                old = f"{final}.old-{uuid.uuid4().hex[:8]}"
                os.rename(final, old)
            os.rename(tmp, final)
            if old:
                shutil.rmtree(old, ignore_errors=True)
        barrier()
    except BaseException:
        if config.rank_id == 0:
            shutil.rmtree(tmp, ignore_errors=True)
        raise
    logger.info("saved %d sparse table(s) to %s", len(tables), final)
    return final


def _load_shard(path: str, table_name: str, dim: int) -> TableState:
    if not os.path.isfile(path):
        raise CheckpointError(f"table '{table_name}': checkpoint shard {path} is missing")
    try:
        with np.load(path) as data:
            state = TableState.from_arrays({k: data[k] for k in data.files})
    except (OSError, ValueError, KeyError, zipfile.BadZipFile, EOFError) as err:
        raise CheckpointError(f"table '{table_name}': checkpoint shard {path} is truncated or unreadable "
                              f"({type(err).__name__}: {err})") from None
    k = state.keys.shape[0]
    if state.embeddings.shape != (k, dim) or any(v.shape != (k, dim) for v in state.slots.values()):
        raise CheckpointError(f"table '{table_name}': checkpoint shard {path} holds arrays of inconsistent shapes")
    return state


def load_sparse(prefix: str) -> Dict[str, TableState]:
    """Read and check the sparse part of ``prefix`` against the live tables; changes nothing.

    A checkpoint saved by N ranks loads on M: every shard is read and this rank keeps the keys
    it owns (``key mod M == rank``), with their rows, slots and admission counts.

    Raises:
        CheckpointError: missing/unreadable files, another table set, another dim or too many keys;
            the message names the file or the table.
    """
    config = ConfigInitializer.get_instance()
    manifest = layout.read_manifest(prefix)
    root = layout.sparse_dir(prefix)
    tables = {t.table_name: t for t in saved_tables()}
    saved = manifest["tables"]
    if set(saved) != set(tables):
        missing, extra = sorted(set(tables) - set(saved)), sorted(set(saved) - set(tables))
        raise CheckpointError(f"checkpoint {root} does not match the session's tables: "
                              f"not in the checkpoint: {missing}; only in the checkpoint: {extra}")
    states = {}
    for name, table in tables.items():
        entry = saved[name]
        if entry["dim"] != table.dim:
            raise CheckpointError(f"table '{name}': checkpoint {root} has dim {entry['dim']}, the session's "
                                  f"table has dim {table.dim}")
        shards = [_load_shard(path, name, table.dim) for path in layout.table_shard_paths(prefix, manifest, name)]
        state = shards[0] if len(shards) == 1 else _merge(shards)
        if config.rank_size > 1 and not table.config.is_dp:
            state = state.owned_by(config.rank_id, config.rank_size)
        if not table.expandable and state.keys.shape[0] > table.capacity() - (table.store.rows if table.tiered else 0):
            raise CheckpointError(f"table '{name}': checkpoint holds {state.keys.shape[0]} keys, more than the "
                                  f"table's capacity {table.capacity()}; raise device_vocabulary_size")
        states[name] = state
    return states


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


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def remove_orphans(directory: str, keep: str) -> None:
    """Delete, in ``directory``: sparse directories whose TF checkpoint is gone (max_to_keep), except
    ``keep``, and temporary directories of saves whose process died."""
    if not os.path.isdir(directory):
        return
    for entry in os.listdir(directory):
        path = os.path.join(directory, entry)
        if entry.endswith(layout.SUFFIX) and path != keep:
            if not os.path.exists(path[:-len(layout.SUFFIX)] + ".index"):
                shutil.rmtree(path, ignore_errors=True)
        elif layout.SUFFIX + ".tmp-" in entry:
            pid = entry.rsplit(".tmp-", 1)[1].split("-")[0]
            if pid.isdigit() and not _pid_alive(int(pid)):
                shutil.rmtree(path, ignore_errors=True)
