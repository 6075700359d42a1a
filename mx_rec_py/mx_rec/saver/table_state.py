"""A table shard's full state as numpy arrays: read from a session, written back into one."""
from dataclasses import dataclass, field
from typing import Dict, Optional

import numpy as np

from mx_rec.key_process.key_stats import KeyStats, NO_TIMESTAMP
from mx_rec.tables.table import EmbeddingTable


@dataclass
class TableState:
    """Keys with rows, their embeddings and slots, and the admission statistics.

    Attributes:
        keys: int64 [K]. embeddings: float [K, dim]. slots: "optimizer/slot" -> float [K, dim].
        stat_keys / counts / last_seen: int64 [S] (every key seen in training, admitted or not).
        newest: the newest batch timestamp (int64 seconds, or NO_TIMESTAMP).
        save_id: the save a checkpoint shard belongs to ("" when not read from or written to one).
    """

    keys: np.ndarray
    embeddings: np.ndarray
    slots: Dict[str, np.ndarray] = field(default_factory=dict)
    stat_keys: np.ndarray = field(default_factory=lambda: np.empty(0, np.int64))
    counts: np.ndarray = field(default_factory=lambda: np.empty(0, np.int64))
    last_seen: np.ndarray = field(default_factory=lambda: np.empty(0, np.int64))
    newest: int = NO_TIMESTAMP
    access_threshold: Optional[int] = None
    save_id: str = ""

    def arrays(self) -> Dict[str, np.ndarray]:
        """Flat name -> array mapping for an ``.npz`` file."""
        out = {"keys": self.keys, "embeddings": self.embeddings, "stat_keys": self.stat_keys,
               "counts": self.counts, "last_seen": self.last_seen, "newest": np.int64(self.newest)}
        out.update({f"slot:{name}": value for name, value in self.slots.items()})
        if self.save_id:
            out["save_id"] = np.array(self.save_id)
        return out

    def owned_by(self, rank: int, rank_size: int) -> "TableState":
        """The part of this state that rank ``rank`` of ``rank_size`` owns (``key mod rank_size``)."""
        mine = self.keys % rank_size == rank
        stats = self.stat_keys % rank_size == rank
        return TableState(keys=self.keys[mine], embeddings=self.embeddings[mine],
                          slots={n: v[mine] for n, v in self.slots.items()}, stat_keys=self.stat_keys[stats],
                          counts=self.counts[stats], last_seen=self.last_seen[stats], newest=self.newest)

    @classmethod
    def from_arrays(cls, arrays: Dict[str, np.ndarray]) -> "TableState":
        slots = {name[5:]: arrays[name] for name in arrays if name.startswith("slot:")}
        return cls(keys=arrays["keys"], embeddings=arrays["embeddings"], slots=slots, stat_keys=arrays["stat_keys"],
                   counts=arrays["counts"], last_seen=arrays["last_seen"], newest=int(arrays["newest"]),
                   save_id=str(arrays["save_id"]) if "save_id" in arrays else "")


def slot_key(optimizer_name: str, slot_name: str) -> str:
    return f"{optimizer_name}/{slot_name}"


def collect(table: EmbeddingTable, session) -> TableState:
    """Read a table shard's state from ``session``: every tier's keys with rows and slots."""
    keys, parts = table.backend.read_state(session, table.row_variables())
    slots = {slot_key(*n): part for n, part in zip(table.slot_order(), parts[1:])}
    state = TableState(keys=keys, embeddings=parts[0], slots=slots)
    if table.stats is not None:
        state.stat_keys, state.counts, state.last_seen = table.stats.items()
        state.newest = table.stats.newest
    return state


def apply(table: EmbeddingTable, state: TableState, session) -> None:
    """Make ``table`` hold exactly ``state`` (keys not in it are dropped); caller validated sizes."""
    saved = [state.slots.get(slot_key(*name)) for name in table.slot_order()]
    table.backend.write_state(session, table.row_variables(), table.slot_inits(), state.keys,
                              [state.embeddings] + saved)
    if table.stats is not None:
        table.stats.load(state.stat_keys, state.counts, state.last_seen, state.newest)
    elif state.stat_keys.size:
        table.stats = KeyStats()
        table.stats.load(state.stat_keys, state.counts, state.last_seen, state.newest)
