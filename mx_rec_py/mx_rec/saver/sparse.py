"""Door kept for Rec SDK scripts: ``mx_rec.saver.sparse.export``."""
import os
from typing import Dict, Optional, Sequence

import numpy as np
import tensorflow as tf

from mx_rec.config.initializer import ConfigInitializer
from mx_rec.saver.table_state import collect
from mx_rec.system import files as fs


def export(table_list: Optional[Sequence] = None, path: Optional[str] = None, session=None) -> Dict[str, str]:
    """Write key -> embedding for tables (default: all) as ``<path>/<table>.npz`` with ``keys`` int64 [K]
    and ``embeddings`` float [K, dim] (this rank's keys).

    Args:
        table_list: tables or table names; None exports every table.
        path: output directory (default ``./mxrec_export``).
        session: the session holding the values (default: the default session).

    Returns:
        table name -> file written.
    """
    session = session or tf.compat.v1.get_default_session()
    if session is None:
        raise ValueError("export: pass session= or call it inside `with session.as_default():`")
    tables = ConfigInitializer.get_instance().tables
    names = sorted(tables) if table_list is None else [getattr(t, "table_name", t) for t in table_list]
    unknown = [n for n in names if n not in tables]
    if unknown:
        raise ValueError(f"export: no table(s) named {unknown}; tables: {sorted(tables)}")
    path = path or os.path.join(os.getcwd(), "mxrec_export")
    fs.makedirs(path, exist_ok=True)
    written = {}
    for name in names:
        state = collect(tables[name], session)
        order = np.argsort(state.keys, kind="stable")
        written[name] = fs.join(path, f"{name}.npz")
        with fs.open_write(written[name]) as f:
            np.savez(f, keys=state.keys[order], embeddings=state.embeddings[order])
    return written
