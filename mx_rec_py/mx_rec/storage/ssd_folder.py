"""The SSD tier's folders: one fresh folder per table, rank and process, gone when the process ends.

Each :class:`~mx_rec.storage.ssd.SsdStore` database lives in its own folder under a path of
``ssd_data_path``::

    <path>/mxrec_ssd_<table>_rank<r>_<pid>_<token>/
        owner.json    {"host", "pid", "started" (the process's start time), "state": "in use" | "kept"}
        db/           the RocksDB files

- The folder is removed when its store is garbage-collected or the process exits normally, unless
  the environment variable ``MXREC_KEEP_SSD_DATA`` is ``1`` (or ``true``/``yes``) when the table is
  created: then the database is flushed and the folder stays, its ``owner.json`` saying ``kept``
  (for inspection; remove it yourself, no later run reads it).
- A process that is killed (SIGKILL, a crash, a node failure) cannot clean up: its folder still says
  ``in use``. The next store created under that path on the same host removes every such folder
  whose process is no longer running. The tier is a cache of the live table, so no run ever opens
  another process's folder: a half-written database is never mistaken for data.
"""
import json
import os
import secrets
import shutil
import socket
import time
import weakref
from typing import Callable, List, Optional, Sequence

from mx_rec.system.processes import pid_alive
from mx_rec.system.log import logger

KEEP_ENV = "MXREC_KEEP_SSD_DATA"
PREFIX = "mxrec_ssd_"
MARKER = "owner.json"
DB = "db"
IN_USE = "in use"
KEPT = "kept"


def keep_requested() -> bool:
    """Whether ``MXREC_KEEP_SSD_DATA`` asks to keep the SSD folders after the process ends."""
    return os.environ.get(KEEP_ENV, "").strip().lower() in ("1", "true", "yes")


def _start_time(pid: int) -> Optional[str]:
    """The start time of process ``pid`` (clock ticks since boot, from /proc), or None when it is not
    running. Tells a live owner from a new process that reused its pid."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as handle:
            stat = handle.read()
    except FileNotFoundError:
        return None
    except OSError:  # no /proc here: liveness from the pid alone
        return "" if pid_alive(pid) else None
    return stat.rsplit(b")", 1)[1].split()[19].decode()  # field 22; the name before it may hold spaces


def _write_marker(folder: str, state: str) -> None:
    pid = os.getpid()
    marker = {"host": socket.gethostname(), "pid": pid, "started": _start_time(pid), "state": state,
              "time": time.time()}
    tmp = os.path.join(folder, f".{MARKER}.tmp")
    with open(tmp, "w", encoding="utf-8") as handle:
        json.dump(marker, handle)
    os.replace(tmp, os.path.join(folder, MARKER))


def _abandoned(folder: str) -> bool:
    """Whether ``folder`` is an SSD folder of a process on this host that ended without cleaning up."""
    try:
        with open(os.path.join(folder, MARKER), encoding="utf-8") as handle:
            marker = json.load(handle)
    except (OSError, ValueError):
        return False  # no readable marker: not known to be ours (it may be being created)
    if marker.get("state") != IN_USE or marker.get("host") != socket.gethostname():
        return False
    started = _start_time(int(marker.get("pid", -1)))
    return started is None or (started != "" and started != marker.get("started"))


def remove_abandoned(paths: Sequence[str]) -> List[str]:
    """Remove the folders killed processes left under ``paths``; returns them."""
    removed = []
    for path in paths:
        for name in sorted(os.listdir(path)):
            folder = os.path.join(path, name)
            if name.startswith(PREFIX) and os.path.isdir(folder) and _abandoned(folder):
                shutil.rmtree(folder, ignore_errors=True)
                removed.append(folder)
    if removed:
        logger.info("removed %d SSD folder(s) left by processes that ended without cleaning up: %s", len(removed),
                    ", ".join(removed))
    return removed


def create_folders(table_name: str, paths: Sequence[str], rank: int) -> List[str]:
    """A fresh folder per path for this table and rank (see the module docstring); returns the
    database paths inside them (``<folder>/db``)."""
    remove_abandoned(paths)
    token = secrets.token_hex(4)
    folders = []
    for path in paths:
        folder = os.path.join(path, f"{PREFIX}{table_name}_rank{rank}_{os.getpid()}_{token}")
        os.mkdir(folder)
        _write_marker(folder, IN_USE)
        folders.append(folder)
    return folders


def release_on_exit(owner: object, folders: Sequence[str], close: Callable[[bool], None]) -> None:
    """When ``owner`` is collected or the process exits: ``close(keep)`` (closing the databases,
    flushing them first when keeping), then remove ``folders`` or mark them kept."""
    keep = keep_requested()
    if keep:
        logger.info("%s=1: the SSD folders %s stay after the process ends", KEEP_ENV, ", ".join(folders))
    weakref.finalize(owner, _release, list(folders), close, keep)


def _release(folders: List[str], close: Callable[[bool], None], keep: bool) -> None:
    try:
        close(keep)
    except Exception as err:  # at exit: say so, and still remove the folders
        logger.warning("closing the SSD databases in %s failed: %s", ", ".join(folders), err)
        keep = False
    for folder in folders:
        if keep and os.path.isdir(folder):
            _write_marker(folder, KEPT)
        else:
            shutil.rmtree(folder, ignore_errors=True)
