"""Delta checkpoints: what changed since the previous save, written as a verified unit; restore of a chain.

A delta is a checkpoint unit like a full one (``checkpoint.save_sparse``: same temporary
directory, save id, SHA-256 manifest, rename), at the TF prefix of its step. Its manifest says
``"kind": "delta"`` and names its chain: the base and every delta up to its parent, each with its
save id and step. Each rank's shard of a table holds, for the keys of that shard that training
planned or eviction removed since the previous save (``key_process.changes``):

    keys, embeddings, slot:<opt>/<slot>   the changed keys that have a row now, with the row and its slots
    deleted_keys                          evicted keys without a row now
    stat_keys, counts, last_seen          the changed keys' admission counts and last-seen times
    deleted_stat_keys                     changed keys without a count now (evicted)
    newest, save_id                       as in a full shard

TF's files of the prefix hold the dense variables in full. A base is a full checkpoint saved with
``is_incremental_checkpoint=True`` (``"kind": "base"``); a plain full save (both flags False, Rec
SDK's "normal pattern") is no link and leaves the chain as it was; restoring any checkpoint makes
it the next delta's parent. A save takes the tables' change logs before it reads a value and
commits them once complete (rolls them back when it fails), so keys a pipeline plans while a save
runs go to the next delta. With ``recent_key_count_threshold`` > 0 the keys seen fewer times since
the previous save are left out of the delta for good (Rec SDK's low-frequency filter): a chain
restore then holds their row of an earlier save. Restoring a delta reads the base
and applies each delta of the chain in order, key by key, then gives every rank the keys it owns
(``key mod M``) and writes them into whatever tier the table has, as a full restore does: the
result is the full checkpoint of that step.

Rows of given keys are read where they live, without reading a whole table: the table's backend
(``Backend.read_rows``) finds them, and only the device rows among them are gathered from the
variable and its slots.

Example:
    >>> init(is_incremental_checkpoint=True, save_checkpoint_due_time=3600,
    ...      save_delta_checkpoints_secs=600)                                        # doctest: +SKIP
    >>> saver.save(sess, "ckpt/model", global_step=100, is_incremental_checkpoint=True)  # base doctest: +SKIP
    >>> saver.save(sess, "ckpt/model", global_step=200, is_incremental_checkpoint=True,
    ...            save_delta=True)                                                  # delta doctest: +SKIP
    >>> saver.restore(sess, "ckpt/model-200")        # base 100 + delta 200          # doctest: +SKIP
"""
import os
import re
import weakref
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Tuple

import numpy as np
import tensorflow as tf

from mx_rec.config.graph_registry import registry_of
from mx_rec.config.initializer import ConfigInitializer
from mx_rec.constants.constants import BASE_MODEL, DELTA_MODEL
from mx_rec.key_process import changes
from mx_rec.saver import layout, unit
from mx_rec.saver.checkpoint import check_capacity, load_shard, load_sparse, saved_tables
from mx_rec.saver.layout import CheckpointError
from mx_rec.saver.table_state import TableState, collect, slot_key
from mx_rec.system import files as fs
from mx_rec.tables.table import EmbeddingTable

KIND = "kind"    # manifest entry: BASE_MODEL or DELTA_MODEL (absent: a full checkpoint)
CHAIN = "chain"  # manifest entry of a delta: [{"prefix": basename, "save_id", "step"}], base first, parent last

_last_saves: "weakref.WeakKeyDictionary[ConfigInitializer, Dict]" = weakref.WeakKeyDictionary()


@dataclass
class DeltaState(TableState):
    """A table shard's changes: upserted rows (``TableState``'s fields) and deleted keys.

    Attributes:
        deleted_keys: int64 [D], keys whose row is gone. deleted_stat_keys: int64 [E], keys whose count is gone.
    """

    deleted_keys: np.ndarray = field(default_factory=lambda: np.empty(0, np.int64))
    deleted_stat_keys: np.ndarray = field(default_factory=lambda: np.empty(0, np.int64))

    def arrays(self) -> Dict[str, np.ndarray]:
        return {**super().arrays(), "deleted_keys": self.deleted_keys, "deleted_stat_keys": self.deleted_stat_keys}

    @classmethod
    def from_arrays(cls, arrays: Dict[str, np.ndarray]) -> "DeltaState":
        base = TableState.from_arrays(arrays)
        return cls(**{f: getattr(base, f) for f in base.__dataclass_fields__},
                   deleted_keys=arrays["deleted_keys"], deleted_stat_keys=arrays["deleted_stat_keys"])


# ----------------------------------------------------------------------------- reading rows by key

def prepare_readers(graph: Optional[tf.Graph] = None) -> None:
    """Build, for every table of ``graph`` (default: the default graph), the ops that gather given rows of
    its variable and slots. Called when a Saver is made (before ``MonitoredTrainingSession`` finalizes
    the graph); a table whose slots changed since gets its ops rebuilt."""
    graph = graph or tf.compat.v1.get_default_graph()
    for table in ConfigInitializer.get_instance().tables.values():
        if table.variable.graph is graph:
            _reader(table)


def _reader(table: EmbeddingTable) -> Tuple[tf.Tensor, List[tf.Tensor]]:
    names = tuple(table.slot_order())
    readers = registry_of(table.variable.graph).row_readers
    held = readers.get(table.table_name)
    if held is not None and held[0] == names:
        return held[1], held[2]
    graph = table.variable.graph
    if graph.finalized:
        raise RuntimeError(f"table '{table.table_name}': a delta checkpoint needs the ops that read changed rows, "
                           "built when the Saver is made; make the Saver after the optimizer (graph is final)")
    with graph.as_default(), tf.name_scope(f"{table.table_name}_delta_read"):
        rows = tf.compat.v1.placeholder(tf.int64, [None], name="rows")
        out = [tf.gather(table.variable, rows)] + [tf.gather(table.slots[n][0], rows) for n in names]
    readers[table.table_name] = (names, rows, out)
    return rows, out


def _gather(table: EmbeddingTable, rows: np.ndarray, session) -> List[np.ndarray]:
    """[embeddings [K, dim], then each slot [K, dim] in slot order] of device rows int64 [K]."""
    placeholder, out = _reader(table)
    return session.run(out, {placeholder: rows})


def _stats_of(table: EmbeddingTable, keys: np.ndarray) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(has_count bool [K], counts int64 [C], last_seen int64 [C]) of keys in the admission statistics."""
    if table.stats is None:
        return np.zeros(keys.shape[0], bool), np.empty(0, np.int64), np.empty(0, np.int64)
    slots = table.stats.index.lookup(keys)
    has = slots >= 0
    return has, table.stats.counts[slots[has]], table.stats.last_seen[slots[has]]


def collect_delta(table: EmbeddingTable, session) -> DeltaState:
    """This shard's changes since the previous save (takes the change log first: see ``changes``).

    Keys seen fewer than ``recent_key_count_threshold`` times since then are left out (Rec SDK's
    low-frequency filter); removed keys are always in.
    """
    planned, sightings, removed = changes.tracker(table).take()
    threshold = ConfigInitializer.get_instance().recent_key_count_threshold
    if threshold > 0:
        planned = planned[sightings >= threshold]
    keys = np.union1d(planned, removed)
    # only eviction takes a row or a count away: a key without one now that was not evicted had none before
    gone = np.isin(keys, removed, assume_unique=True)
    has_row, values = table.backend.read_rows(keys, lambda rows: _gather(table, rows, session))
    names = table.slot_order()
    state = DeltaState(keys=keys[has_row], embeddings=values[0],
                       slots={slot_key(*n): v for n, v in zip(names, values[1:])}, deleted_keys=keys[~has_row & gone])
    has_count, state.counts, state.last_seen = _stats_of(table, keys)
    state.stat_keys, state.deleted_stat_keys = keys[has_count], keys[~has_count & gone]
    if table.stats is not None:
        state.newest = table.stats.newest
    return state


# ----------------------------------------------------------------------------- saving

def collect_base(table: EmbeddingTable, session) -> TableState:
    """A base's full state of the shard; the change log is taken first, so the next delta starts here."""
    changes.tracker(table).take()
    return collect(table, session)


def save_kind(is_incremental_checkpoint: bool, save_delta: bool) -> Optional[str]:
    """What ``Saver.save`` writes: DELTA_MODEL, BASE_MODEL (``is_incremental_checkpoint=True``: a full save that
    starts a chain), or None (a plain full save, as Rec SDK's "normal pattern": no chain starts or ends there).

    Raises:
        ValueError: a delta asked for without ``init(is_incremental_checkpoint=True)`` (nothing tracked changes).
    """
    incremental = ConfigInitializer.get_instance().is_incremental_checkpoint
    if save_delta or is_incremental_checkpoint:
        if not incremental:
            raise ValueError("Saver.save(is_incremental_checkpoint=True / save_delta=True) needs "
                             "init(is_incremental_checkpoint=True, ...): without it no change is tracked")
        return DELTA_MODEL if save_delta else BASE_MODEL
    return None


def delta_manifest(prefix: str, step: Optional[int]) -> Dict:
    """The manifest entries of a delta at ``prefix``: its kind and chain (base ... parent).

    Raises:
        ValueError: no step, no previous save (base) in this job, or a parent in another directory.
    """
    if step is None:
        raise ValueError(f"Saver.save(save_delta=True) to {prefix}: a delta needs global_step (restore_model_version "
                         "names a step)")
    last = _last_saves.get(ConfigInitializer.get_instance())
    if last is None:
        raise ValueError(f"Saver.save(save_delta=True) to {prefix}: no checkpoint saved or restored in this job yet; "
                         "save a full (base) checkpoint first")
    if os.path.dirname(fs.abspath(last["prefix"])) != os.path.dirname(fs.abspath(prefix)):
        raise ValueError(f"Saver.save(save_delta=True) to {prefix}: its parent {last['prefix']} is in another "
                         "directory; a chain lives in one directory")
    if fs.abspath(last["prefix"]) == fs.abspath(prefix):
        raise ValueError(f"Saver.save(save_delta=True) to {prefix}: a delta cannot replace its own parent")
    link = {"prefix": os.path.basename(last["prefix"]), "save_id": last["save_id"], "step": last["step"]}
    return {KIND: DELTA_MODEL, CHAIN: last["chain"] + [link]}


def saved(prefix: str) -> None:
    """After a complete base or delta save: remember it as the next delta's parent; what the save took from
    the change logs is gone."""
    manifest = layout.read_manifest(prefix)
    _remember(prefix, manifest)
    changes.commit(saved_tables())


def failed() -> None:
    """After a failed base or delta save: the changes it took are logged again (the parent stays)."""
    changes.rollback(saved_tables())


def _remember(prefix: str, manifest: Dict) -> None:
    _last_saves[ConfigInitializer.get_instance()] = {
        "prefix": prefix, "save_id": manifest["save_id"], "step": manifest.get("step"),
        "chain": list(manifest.get(CHAIN, [])) if manifest.get(KIND) == DELTA_MODEL else []}


# ----------------------------------------------------------------------------- restoring

def versioned(save_path: str) -> str:
    """``save_path`` with its step replaced by ``restore_model_version`` when incremental checkpoints are on
    and it is set (Rec SDK's rule); else ``save_path``."""
    config = ConfigInitializer.get_instance()
    version = config.restore_model_version
    if not config.is_incremental_checkpoint or version is None:
        return save_path
    directory, name = os.path.split(save_path)
    stem = re.sub(r"-\d+$", "", name)
    return os.path.join(directory, f"{stem}-{version}")


def is_delta(manifest: Dict) -> bool:
    return manifest.get(KIND) == DELTA_MODEL


def load_chain(prefix: str, checked: unit.Unit) -> Dict[str, TableState]:
    """Read and check the delta ``prefix`` (verified: ``checked``) and every link of its chain; the state each
    of this rank's tables has at that step (as ``checkpoint.load_sparse`` returns); changes nothing.

    Raises:
        CheckpointError: a link is missing, damaged or of another save; the message names it and the delta.
    """
    directory = os.path.dirname(prefix)
    chain = checked.manifest[CHAIN]
    links: List[Tuple[str, unit.Unit]] = []
    for link in chain:
        path = os.path.join(directory, link["prefix"])
        try:
            verified = unit.verify(path)
        except CheckpointError as err:
            raise CheckpointError(f"delta checkpoint {prefix} needs {path} (step {link['step']}) of its chain: "
                                  f"{err}") from None
        if verified.manifest["save_id"] != link["save_id"]:
            raise CheckpointError(f"delta checkpoint {prefix} needs {path} of save {link['save_id']}, but that "
                                  f"checkpoint is of save {verified.manifest['save_id']} (it was saved again)")
        links.append((path, verified))
    if not links or is_delta(links[0][1].manifest):
        raise CheckpointError(f"delta checkpoint {prefix}: its chain does not start with a base checkpoint")
    states = load_sparse(links[0][0], links[0][1])
    for path, verified in links[1:] + [(prefix, checked)]:
        states = {name: _apply(state, _load_delta(path, verified, name)) for name, state in states.items()}
    return {name: _check_capacity(name, _sorted(state)) for name, state in states.items()}


def _load_delta(prefix: str, checked: unit.Unit, name: str) -> DeltaState:
    """This rank's part of the delta of table ``name`` at ``prefix`` (every saving rank's shard read)."""
    config = ConfigInitializer.get_instance()
    table = config.tables[name]
    if name not in checked.manifest["tables"]:
        raise CheckpointError(f"table '{name}': delta checkpoint {prefix} does not hold it")
    records = unit.shard_records(checked.manifest, name)
    shards = [load_shard(path, name, table.dim, record, checked.manifest["save_id"], DeltaState, "delta shard")
              for path, record in zip(checked.shards[name], records)]
    state = _concat(shards)
    if config.rank_size > 1 and not table.config.is_dp:
        rank, size = config.rank_id, config.rank_size
        owned = state.owned_by(rank, size)
        state = DeltaState(**{f: getattr(owned, f) for f in owned.__dataclass_fields__},
                           deleted_keys=state.deleted_keys[state.deleted_keys % size == rank],
                           deleted_stat_keys=state.deleted_stat_keys[state.deleted_stat_keys % size == rank])
    return state


def _concat(shards: List[DeltaState]) -> DeltaState:
    if len(shards) == 1:
        return shards[0]
    names = set().union(*(s.slots for s in shards))
    cat = np.concatenate
    return DeltaState(keys=cat([s.keys for s in shards]), embeddings=cat([s.embeddings for s in shards]),
                      slots={n: cat([s.slots[n] for s in shards]) for n in names},
                      stat_keys=cat([s.stat_keys for s in shards]), counts=cat([s.counts for s in shards]),
                      last_seen=cat([s.last_seen for s in shards]), newest=max(s.newest for s in shards),
                      deleted_keys=cat([s.deleted_keys for s in shards]),
                      deleted_stat_keys=cat([s.deleted_stat_keys for s in shards]))


def _apply(state: TableState, delta: DeltaState) -> TableState:
    """``state`` with ``delta``'s deletions and upserts applied, key by key."""
    if set(state.slots) != set(delta.slots):
        raise CheckpointError(f"a delta holds slots {sorted(delta.slots)}, its base {sorted(state.slots)}")
    keep = ~np.isin(state.keys, np.concatenate([delta.deleted_keys, delta.keys]))
    keep_stats = ~np.isin(state.stat_keys, np.concatenate([delta.deleted_stat_keys, delta.stat_keys]))
    cat = np.concatenate
    return TableState(keys=cat([state.keys[keep], delta.keys]),
                      embeddings=cat([state.embeddings[keep], delta.embeddings]),
                      slots={n: cat([v[keep], delta.slots[n]]) for n, v in state.slots.items()},
                      stat_keys=cat([state.stat_keys[keep_stats], delta.stat_keys]),
                      counts=cat([state.counts[keep_stats], delta.counts]),
                      last_seen=cat([state.last_seen[keep_stats], delta.last_seen]), newest=delta.newest)


def _sorted(state: TableState) -> TableState:
    """Rows and counts in key order (a restore does not depend on the order deltas came in)."""
    order, stat_order = np.argsort(state.keys, kind="stable"), np.argsort(state.stat_keys, kind="stable")
    return TableState(keys=state.keys[order], embeddings=state.embeddings[order],
                      slots={n: v[order] for n, v in state.slots.items()}, stat_keys=state.stat_keys[stat_order],
                      counts=state.counts[stat_order], last_seen=state.last_seen[stat_order], newest=state.newest)


def _check_capacity(name: str, state: TableState) -> TableState:
    check_capacity(name, ConfigInitializer.get_instance().tables[name], state)
    return state


def restored(prefix: str, manifest: Dict) -> None:
    """After a restore of ``prefix``: it is the next delta's parent, and the change logs start empty."""
    _remember(prefix, manifest)
    changes.reset(saved_tables())
