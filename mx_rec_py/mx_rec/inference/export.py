"""Merge an N-rank checkpoint into a single-node inference model (``tools/export_local.py``).

    <output>/model.pb            frozen GraphDef: input placeholders -> prediction (``freeze.py``)
    <output>/model.json          format, source checkpoint, inputs, lookups, tables, each file's size and
                                 SHA-256 (see :func:`export_local`; ``load_inference_model`` checks them)
    <output>/tables/<t>/keys.npy int64 [K] sorted; rows.npy value dtype [K, dim] (``table_merge.py``)

The checkpoint is verified first as restore verifies it (``mx_rec.saver.unit.verify``: every
file's checksum, the save id that ties them, the manifest's key counts), so an export never reads a
damaged byte or parts of two saves. The output directory is written under a temporary name and
renamed into place. Nothing in it
needs Horovod or mx_rec's training code: ``load_inference_model`` reads it with TF and numpy.

Checkpoint and output may be on any filesystem TF has (``mx_rec.system.files``). An output that is
not local is built in a local temporary folder, copied beside the output under a temporary name,
then moved into place with ``model.json`` last (``load_inference_model`` checks every file it
records, so a partly moved model is refused, naming the missing file). Shards that are not local are
read whole into memory (no memory map), so the memory budget does not bound their merge.
"""
import json
import os
import shutil
import tempfile
import uuid
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Tuple

import tensorflow as tf
from tensorflow.core.framework import graph_pb2
from tensorflow.core.protobuf import meta_graph_pb2

from mx_rec.inference.freeze import ExportError, freeze
from mx_rec.inference.table_merge import MergeStats, ShardError, merge_shards, npz_member
from mx_rec.saver import layout, unit
from mx_rec.saver.layout import CheckpointError
from mx_rec.system import files as fs

FORMAT = "mx_rec-local-model-v1"
GRAPH_FILE = "model.pb"
SPEC_FILE = "model.json"
TABLES_DIR = "tables"


@dataclass
class ExportReport:
    """What :func:`export_local` wrote: the checkpoint prefix read, the output folder, per table the merge."""

    prefix: str
    output: str
    tables: Dict[str, MergeStats] = field(default_factory=dict)


def default_memory_budget() -> int:
    """A quarter of the machine's physical memory, in bytes."""
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") // 4


def resolve_checkpoint(path: str) -> str:
    """A TF checkpoint prefix from a folder (its latest checkpoint) or a prefix (``layout.resolve_prefix``).

    Raises:
        ExportError: neither, naming the path.
    """
    try:
        return layout.resolve_prefix(path)
    except CheckpointError as err:
        raise ExportError(str(err)) from None


def read_meta_graph(path: str) -> meta_graph_pb2.MetaGraphDef:
    """The MetaGraphDef in ``path`` (a Saver's ``.meta``), parsed without importing its ops."""
    if not fs.isfile(path):
        raise ExportError(f"{path} does not exist: the Saver writes it with save(..., write_meta_graph=True) (the "
                          "default); pass --meta_graph FILE (from tf.compat.v1.train.export_meta_graph) otherwise")
    meta = meta_graph_pb2.MetaGraphDef()
    meta.ParseFromString(fs.read_bytes(path))
    return meta


def shard_paths(prefix: str, manifest: dict, table: str) -> List[str]:
    """The shard files of ``table`` (one for a replicated table, else one per saving rank).

    Raises:
        ShardError: a shard file is missing, naming it.
    """
    paths = layout.table_shard_paths(prefix, manifest, table)
    for path in paths:
        if not fs.isfile(path):
            raise ShardError(f"table '{table}': checkpoint shard {path} is missing (saved by "
                             f"{manifest['rank_size']} ranks)")
    return paths


def prepare(checkpoint: str, meta_graph: Optional[str] = None
            ) -> Tuple[str, dict, Dict[str, List[str]], graph_pb2.GraphDef, Dict]:
    """What every export starts from: the checkpoint verified as restore verifies it, and its frozen graph.

    Returns:
        (prefix, manifest, table name -> shard paths, frozen GraphDef, spec of :func:`freeze.freeze`).

    Raises:
        ExportError: no usable graph or signature, or a lookup of a table the checkpoint lacks;
        CheckpointError (ShardError): a missing, damaged or mixed file, or key counts other than the
        manifest's, naming the file.
    """
    prefix = resolve_checkpoint(checkpoint)
    checked = unit.verify(prefix, need_meta=meta_graph is None)
    manifest = checked.manifest
    tables = sorted(manifest["tables"])
    paths = {name: shard_paths(prefix, manifest, name) for name in tables}
    for name in tables:
        for path, record in zip(paths[name], unit.shard_records(manifest, name)):
            unit.check_counts(path, name, record, int(npz_member(path, "keys").shape[0]))
    meta_path = meta_graph or checked.meta or prefix + ".meta"
    graph_def, spec = freeze(read_meta_graph(meta_path), checked.dense_prefix)
    unknown = sorted({lk["table"] for lk in spec["lookups"]} - set(tables))
    if unknown:
        raise ExportError(f"the prediction looks up table(s) {unknown} that checkpoint {prefix} does not hold "
                          f"(is_save=False?); it holds {tables}")
    return prefix, manifest, paths, graph_def, spec


def export_local(checkpoint: str, output: str, meta_graph: Optional[str] = None,
                 memory_budget_bytes: Optional[int] = None) -> ExportReport:
    """Write the local model of ``checkpoint`` to ``output`` (replacing it).

    Args:
        checkpoint: checkpoint folder (its latest checkpoint) or prefix (``.../model-100``).
        output: folder to write (see the module docstring).
        meta_graph: the training graph's ``.meta`` (default ``<prefix>.meta``).
        memory_budget_bytes: memory the table merge may use (default: a quarter of RAM); tables larger
            than it are merged range by range.

    Returns:
        what was written. ``model.json`` holds ``{"format", "checkpoint", "step", "saved_by_ranks",
        "prediction", "inputs", "lookups", "tables": {name: {"dim", "keys", "value_dtype"}},
        "files": {relative path: {"bytes", "sha256"}}}``.

    Raises:
        ExportError: no usable graph or signature; CheckpointError (ShardError): a missing, damaged or
        mixed checkpoint file, or key counts other than the manifest's, naming the file.
    """
    prefix, manifest, paths, graph_def, spec = prepare(checkpoint, meta_graph)
    tables = sorted(manifest["tables"])
    budget = memory_budget_bytes or default_memory_budget()
    output = fs.abspath(output)
    remote_tmp = None if fs.is_local(output) else f"{output}.tmp-{uuid.uuid4().hex[:8]}"
    tmp = f"{output}.tmp-{uuid.uuid4().hex[:8]}" if remote_tmp is None else tempfile.mkdtemp(prefix="mxrec-export-")
    report = ExportReport(prefix, output)
    try:
        os.makedirs(tmp, exist_ok=remote_tmp is not None)
        for name in tables:
            dim = manifest["tables"][name]["dim"]
            report.tables[name] = merge_shards(paths[name], name, dim, os.path.join(tmp, TABLES_DIR, name), budget)
        with open(os.path.join(tmp, GRAPH_FILE), "wb") as f:
            f.write(graph_def.SerializeToString())
        description = {"format": FORMAT, "checkpoint": fs.abspath(prefix), "step": manifest.get("step"),
                       "saved_by_ranks": manifest["rank_size"], **spec,
                       "tables": {n: {"dim": s.dim, "keys": s.keys,
                                      "value_dtype": manifest["tables"][n].get("value_dtype", "float32")}
                                  for n, s in report.tables.items()}}
        description["files"] = {os.path.relpath(p, tmp): unit.file_digest(p) for p in _files_under(tmp)}
        with open(os.path.join(tmp, SPEC_FILE), "w", encoding="utf-8") as f:
            json.dump(description, f, indent=1)
        if remote_tmp is not None:
            for path in _files_under(tmp):
                target = fs.join(remote_tmp, os.path.relpath(path, tmp))
                fs.makedirs(os.path.dirname(target))
                fs.write_bytes(target, fs.read_bytes(path))
        if fs.exists(output):
            fs.rmtree(output, ignore_errors=False)
        fs.rename(remote_tmp or tmp, output, last=[SPEC_FILE])
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
        if remote_tmp is not None:
            fs.rmtree(remote_tmp)
    return report


def _files_under(root: str) -> List[str]:
    return sorted(os.path.join(d, n) for d, _, names in os.walk(root) for n in names)
