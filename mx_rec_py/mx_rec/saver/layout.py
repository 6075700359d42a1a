"""Where a checkpoint's sparse part lives on disk, and its manifest.

    <prefix>-mxrec-sparse/
        manifest.json                         save id, tables, dims, slots, per shard: key counts, bytes,
                                              SHA-256; TF's files: bytes, SHA-256; rank count, step, digest
        <table>/shard-00000-of-00001.npz      keys, embeddings, slots, admission counts, last-seen times, save id
        dense/<basename>.index, .data-*, .meta   hard links to TF's files of this save (``unit.py``)
        owner                                 pid of the saving rank 0 and the save id (tells a dead save's
                                              temporary directory from a running one)

``<prefix>`` is the TF checkpoint prefix (``model.ckpt-100``); the directory is written under a
temporary name (``<prefix>-mxrec-sparse.tmp-*``) and renamed into place, so it either exists whole
or not at all; a save to a prefix that already has one moves the old one aside
(``.old-<id>``) for the instant between the two renames, and readers take it from there. On a
filesystem without atomic directory renames (``mx_rec.system.files``) the manifest moves last, and
a directory without its manifest is not yet the unit.
"""
import json
import os
from typing import Any, Dict, List

import tensorflow as tf

from mx_rec.system import files as fs

FORMAT_VERSION = 2
READABLE_VERSIONS = (1, 2)  # 1: before save ids and checksums, read unverified
SUFFIX = "-mxrec-sparse"
MANIFEST = "manifest.json"


class CheckpointError(RuntimeError):
    """A sparse checkpoint is missing, unreadable or does not fit the session; names the file/table."""


def sparse_dir(prefix: str) -> str:
    return prefix + SUFFIX


def unit_dir(prefix: str) -> str:
    """The directory a reader takes as the sparse part of ``prefix``: ``sparse_dir(prefix)``, or while a
    save to the same prefix is between its two renames (previous unit moved aside, new one not yet in
    place), the previous unit, still whole under ``<sparse_dir>.old-<id>``."""
    final = sparse_dir(prefix)
    if fs.isdir(final) and (fs.is_local(final) or fs.isfile(fs.join(final, MANIFEST))):
        return final
    aside = [p for p in fs.glob(final, ".old-*") if fs.isfile(fs.join(p, MANIFEST))]
    return max(aside, key=fs.getmtime) if aside else final


def shard_path(root: str, table_name: str, rank: int, rank_size: int) -> str:
    return fs.join(root, table_name, f"shard-{rank:05d}-of-{rank_size:05d}.npz")


def table_shard_paths(prefix: str, manifest: Dict[str, Any], table_name: str) -> List[str]:
    """The shard files a checkpoint holds for ``table_name``: one per saving rank, or one for a
    replicated (``is_dp``) table, whose shards are identical copies."""
    rank_size = manifest["rank_size"]
    ranks = [0] if manifest["tables"][table_name].get("is_dp") else range(rank_size)
    return [shard_path(unit_dir(prefix), table_name, r, rank_size) for r in ranks]


def write_manifest(root: str, manifest: Dict[str, Any]) -> None:
    """Write ``root/manifest.json`` (fsync-ed where local: the rename that follows completes the unit); the caller
    has put its ``digest`` in."""
    fs.write_text(fs.join(root, MANIFEST), json.dumps(manifest, indent=1, sort_keys=True), sync=True)


def read_manifest(prefix: str) -> Dict[str, Any]:
    """The manifest of the checkpoint at ``prefix``.

    Raises:
        CheckpointError: the sparse directory or its manifest is missing or unreadable.
    """
    path = fs.join(unit_dir(prefix), MANIFEST)
    if not fs.isfile(path):
        raise CheckpointError(f"sparse checkpoint manifest {path} does not exist (was the checkpoint saved "
                              "after mx_rec's init()?)")
    try:
        manifest = json.loads(fs.read_text(path))
    except (OSError, ValueError, tf.errors.OpError) as err:  # ValueError: also a damaged byte that is not UTF-8
        raise CheckpointError(f"sparse checkpoint manifest {path} is unreadable: {err}") from None
    if not isinstance(manifest, dict) or manifest.get("format_version") not in READABLE_VERSIONS:
        version = manifest.get("format_version") if isinstance(manifest, dict) else None
        raise CheckpointError(f"sparse checkpoint manifest {path}: format version {version!r}, "
                              f"this mx_rec reads {READABLE_VERSIONS}")
    return manifest


def resolve_prefix(path: str) -> str:
    """The checkpoint prefix of ``path``: a folder's latest checkpoint (by its ``checkpoint`` file), or
    ``path`` itself when it is a prefix (``<path>.index`` or its sparse unit exists).

    Raises:
        CheckpointError: a folder without a ``checkpoint`` file naming one, or no checkpoint at ``path``.
    """
    path = os.fspath(path)
    if fs.isdir(path) and not fs.isdir(unit_dir(path)):
        state = tf.train.get_checkpoint_state(path)
        if state is None or not state.model_checkpoint_path:
            raise CheckpointError(f"{path} holds no checkpoint (no 'checkpoint' file naming one)")
        # the 'checkpoint' file may hold absolute paths: a copied or moved folder must read its own files
        return fs.join(path, os.path.basename(state.model_checkpoint_path))
    if fs.isfile(path + ".index") or fs.isdir(unit_dir(path)):
        return path
    raise CheckpointError(f"{path} is neither a checkpoint folder nor a checkpoint prefix (no {path}.index)")
