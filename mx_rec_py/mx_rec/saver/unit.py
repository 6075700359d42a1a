"""A checkpoint as one unit: the files of one save, tied together and checked before anything reads them.

A save records in ``manifest.json`` a random ``save_id`` (also written into every table shard),
the size and SHA-256 of every shard and of TF's files of the prefix (``.index``, ``.data-*``,
``.meta``), and a digest of the manifest itself. It also hard-links TF's files into
``<prefix>-mxrec-sparse/dense/``: a later save to the same prefix replaces TF's files by rename,
so until that save is complete the previous unit still has its own dense files.

:func:`verify` is what restore and export both call: it finds the unit's dense files (the live
ones, or the linked copies when the live ones belong to a newer, unfinished save) and checks every
file, so no restore and no export ever reads parts of two saves or a damaged byte.

Every path goes through ``mx_rec.system.files``, so a unit may live on any filesystem TF has. Where
there are no hard links (``ram://``, object stores) the unit keeps copies of TF's files instead,
with the same guarantee at the cost of their bytes.
"""
import errno
import hashlib
import json
import os
import re
from dataclasses import dataclass, field
from typing import Dict, List, Optional

from mx_rec.saver import layout
from mx_rec.saver.layout import CheckpointError
from mx_rec.system import files as fs
from mx_rec.system.log import logger

DENSE_DIR = "dense"
_CHUNK = 1 << 20
_legacy_warned = set()


class DiskFullError(OSError):
    """A save ran out of space; the message names the path and about how many bytes the save needs."""


def file_digest(path: str) -> Dict[str, object]:
    """``{"bytes": int, "sha256": hex str}`` of the file at ``path``."""
    digest = hashlib.sha256()
    size = 0
    with fs.open_read(path) as f:
        while True:
            chunk = f.read(_CHUNK)
            if not chunk:
                break
            digest.update(chunk)
            size += len(chunk)
    return {"bytes": size, "sha256": digest.hexdigest()}


def check_file(path: str, expected: Dict[str, object], what: str) -> None:
    """Raise CheckpointError naming ``path`` unless it exists with the recorded size and SHA-256."""
    if not fs.isfile(path):
        raise CheckpointError(f"{what} {path} is missing")
    size = fs.getsize(path)
    if size != expected["bytes"]:
        raise CheckpointError(f"{what} {path} is truncated or unreadable: {size} bytes, the manifest records "
                              f"{expected['bytes']} (or it is a file of another save)")
    if file_digest(path)["sha256"] != expected["sha256"]:
        raise CheckpointError(f"{what} {path} is damaged or of another save: its SHA-256 differs from the one "
                              "the manifest records")


def manifest_digest(manifest: Dict) -> str:
    """SHA-256 of the manifest's content without its own ``digest`` entry (key order and spacing ignored)."""
    body = {k: v for k, v in manifest.items() if k != "digest"}
    return hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()


def dense_files(prefix: str) -> List[str]:
    """TF's files of ``prefix`` that exist: ``.index``, the newest complete ``.data-i-of-n`` set, ``.meta``."""
    out = [prefix + ".index"] if fs.isfile(prefix + ".index") else []
    sets: Dict[int, List[str]] = {}
    for path in fs.glob(prefix, ".data-*-of-*"):
        found = re.fullmatch(r".*\.data-(\d+)-of-(\d+)", path)
        if found:
            sets.setdefault(int(found.group(2)), []).append(path)
    complete = [paths for n, paths in sets.items() if len(paths) == n]
    if complete:
        out += sorted(max(complete, key=lambda ps: max(fs.getmtime(p) for p in ps)))
    if fs.isfile(prefix + ".meta"):
        out.append(prefix + ".meta")
    return out


def record_dense(prefix: str, root: str) -> Dict[str, Dict[str, object]]:
    """Link TF's files of ``prefix`` into ``root/dense/`` and return ``{file name: digest}``.

    Where the filesystem has no hard links the files are copied (``files.link_or_copy``).
    """
    files = {}
    copy_dir = fs.join(root, DENSE_DIR)
    fs.makedirs(copy_dir, exist_ok=True)
    for path in dense_files(prefix):
        name = os.path.basename(path)
        fs.link_or_copy(path, fs.join(copy_dir, name))
        files[name] = file_digest(path)
    return files


@dataclass
class Unit:
    """A verified checkpoint: its manifest, the prefix to restore dense variables from, and the shards.

    Attributes:
        manifest: the parsed ``manifest.json``. dense_prefix: ``prefix`` itself, or the unit's linked
        copy under ``<prefix>-mxrec-sparse/dense/``. meta: the unit's ``.meta`` path or None.
        shards: table name -> its shard files (one per saving rank, one for a replicated table).
    """

    manifest: Dict
    dense_prefix: str
    meta: Optional[str]
    shards: Dict[str, List[str]] = field(default_factory=dict)


def _dense_mismatch(prefix: str, files: Dict[str, Dict[str, object]], need_meta: bool) -> Optional[str]:
    """The first of TF's files of ``prefix`` that differs from the manifest's record, as a message."""
    directory = os.path.dirname(prefix)
    for name, expected in sorted(files.items()):
        if name.endswith(".meta") and not need_meta:
            continue
        try:
            check_file(fs.join(directory, name), expected, "TF checkpoint file")
        except CheckpointError as err:
            return str(err)
    return None


def _find_dense(prefix: str, manifest: Dict, need_meta: bool) -> str:
    files = manifest.get("dense", {})
    problem = _dense_mismatch(prefix, files, need_meta)
    if problem is None:
        return prefix
    copy = fs.join(layout.unit_dir(prefix), DENSE_DIR, os.path.basename(prefix))
    if files and _dense_mismatch(copy, files, need_meta) is None:
        logger.warning("%s; it belongs to a save that did not finish: using the dense files of the last complete "
                       "save (save id %s) kept in %s", problem, manifest["save_id"], os.path.dirname(copy))
        return copy
    raise CheckpointError(f"checkpoint {prefix} mixes files of two saves or is damaged: {problem} "
                          f"(manifest {os.path.join(layout.unit_dir(prefix), layout.MANIFEST)}, save id "
                          f"{manifest['save_id']})")


def verify(prefix: str, need_meta: bool = False) -> Unit:
    """Check every file of the checkpoint ``prefix`` against its manifest; reads all of them, changes nothing.

    Args:
        prefix: TF checkpoint prefix (``.../model-100``) with a ``-mxrec-sparse`` directory.
        need_meta: also check the ``.meta`` (export needs it; restore does not).

    Returns:
        the unit, whose ``dense_prefix`` is the one to restore TF's variables from.

    Raises:
        CheckpointError: a file is missing, damaged, truncated, or of another save; the message names it.

    Example:
        >>> unit = verify("/ckpt/model-100")                                        # doctest: +SKIP
        >>> tf.compat.v1.train.Saver().restore(sess, unit.dense_prefix)             # doctest: +SKIP
    """
    manifest = layout.read_manifest(prefix)
    path = fs.join(layout.unit_dir(prefix), layout.MANIFEST)
    if manifest["format_version"] == 1 and "digest" not in manifest:  # written before checkpoints were units
        if path not in _legacy_warned:
            _legacy_warned.add(path)
            logger.warning("%s predates save ids and checksums: its files are not verified", path)
        meta = prefix + ".meta" if fs.isfile(prefix + ".meta") else None
        shards = {name: layout.table_shard_paths(prefix, manifest, name) for name in sorted(manifest["tables"])}
        return Unit(manifest, prefix, meta, shards)
    if manifest.get("digest") != manifest_digest(manifest):
        raise CheckpointError(f"sparse checkpoint manifest {path} is damaged: its content does not match its digest")
    shards = {name: layout.table_shard_paths(prefix, manifest, name) for name in sorted(manifest["tables"])}
    dense_prefix = _find_dense(prefix, manifest, need_meta)
    for name, paths in shards.items():
        records = manifest["tables"][name]["shards"]
        for shard, record in zip(paths, records):
            if not fs.isfile(shard):
                raise CheckpointError(f"table '{name}': checkpoint shard {shard} is missing (saved by "
                                      f"{manifest['rank_size']} ranks)")
            check_file(shard, record, f"table '{name}': checkpoint shard")
    meta_name = os.path.basename(prefix) + ".meta"
    meta = dense_prefix + ".meta" if meta_name in manifest.get("dense", {}) else None
    return Unit(manifest, dense_prefix, meta, shards)


def check_counts(path: str, table: str, record: Dict, keys: int, stat_keys: Optional[int] = None) -> None:
    """Raise CheckpointError naming ``path`` if a shard's key (and admission-count) rows differ from the manifest."""
    if "key_count" in record and keys != record["key_count"]:
        raise CheckpointError(f"table '{table}': checkpoint shard {path} holds {keys} keys, the manifest records "
                              f"{record['key_count']}")
    if stat_keys is not None and "stat_key_count" in record and stat_keys != record["stat_key_count"]:
        raise CheckpointError(f"table '{table}': checkpoint shard {path} holds admission counts of {stat_keys} "
                              f"keys, the manifest records {record['stat_key_count']}")


def shard_records(manifest: Dict, table: str) -> List[Dict]:
    """The manifest's per-shard records of ``table`` (empty dicts for a format-1 manifest)."""
    entry = manifest["tables"][table]
    if "shards" in entry:
        return entry["shards"]
    return [{"key_count": k, "stat_key_count": s}
            for k, s in zip(entry.get("key_counts", []), entry.get("stat_key_counts", []))] or [{}]


def disk_full(path: str, needed: int, err: BaseException,
              outcome: str = "the previous checkpoint is unchanged") -> DiskFullError:
    """The DiskFullError for ``err`` (ENOSPC/EDQUOT) hit writing ``path``; ``needed`` bytes: about what the save
    writes; ``outcome``: what the failure left."""
    directory = fs.abspath(path)
    while fs.is_local(directory) and (not os.path.isdir(directory) or layout.SUFFIX + ".tmp-" in directory):
        directory = os.path.dirname(directory)  # the checkpoint's folder
    try:
        free = os.statvfs(directory).f_bavail * os.statvfs(directory).f_frsize
    except OSError:
        free = -1
    return DiskFullError(errno.ENOSPC, f"no space left on device writing {path}: this save needs about {needed} bytes "
                                       f"in {directory}, {free} bytes are free; {outcome} ({_cause(err)})")


def _cause(err: BaseException) -> str:
    """The line of ``err`` that says why (TF's errors carry a long graph traceback)."""
    lines = [line.strip() for line in str(err).splitlines() if line.strip()]
    return next((line for line in lines if "No space left" in line or "quota" in line), lines[0] if lines else
                type(err).__name__)


def is_disk_full(err: BaseException) -> bool:
    """True for an OSError ENOSPC/EDQUOT, or a TF error whose message says the device is full."""
    if isinstance(err, OSError) and err.errno in (errno.ENOSPC, errno.EDQUOT):
        return True
    text = str(err)
    return "No space left on device" in text or "Disk quota exceeded" in text
