"""Export a checkpoint as a TF2 SavedModel that stock TensorFlow, TF Serving or Triton load.

``tools/export_savedmodel.py`` is its command line.

    <output>/saved_model.pb                      the serving graph: stock TF ops only, no mx_rec, no Horovod
    <output>/variables/variables.{index,data-*}  every table's sorted keys (int64 [K]) and rows ([K + 1 + D, dim]:
                                                 its rows, a zero row, the D lookup defaults)
    <output>/assets.extra/mx_rec_export.json     where it came from: checkpoint, step, ranks, tables, inputs

Signature ``serving_default``: one input per batch entry given to ``set_prediction`` (by its
name, leading dimension = batch, any size), output ``{"prediction": ...}``. Tables are looked up
as ``sparse_lookup(is_train=False)`` does (``serving_table.py``); the dense graph is the one
``export_local`` freezes. The checkpoint is verified first, as restore does; each table is
merged key range by key range within the memory budget (``table_merge.merge_shards``) and its
rows are written into ``variables/`` slice by slice (``variables_bundle.py``), so neither step
holds a table larger than the budget. The output folder is written under a temporary name and
renamed into place.

Example:
    >>> export_savedmodel("/ckpt", "/models/dlrm/1")                                   # doctest: +SKIP
    >>> served = tf.saved_model.load("/models/dlrm/1").signatures["serving_default"]  # doctest: +SKIP
    >>> served(dense_feature=dense, sparse_feature=ids)["prediction"]                 # doctest: +SKIP
"""
import json
import os
import shutil
import uuid
from dataclasses import dataclass, field
from typing import Dict, Optional

import numpy as np
import tensorflow as tf
from tensorflow.python.eager import context

from mx_rec.inference.export import default_memory_budget, prepare
from mx_rec.inference.freeze import ExportError
from mx_rec.inference.serving_graph import serving_function
from mx_rec.inference.serving_table import ServingTable
from mx_rec.inference.table_merge import MergeStats, merge_shards
from mx_rec.inference.variables_bundle import write_variables

FORMAT = "mx_rec-savedmodel-v1"
DESCRIPTION_FILE = os.path.join("assets.extra", "mx_rec_export.json")
ROW_DTYPES = ("float32", "float16")


@dataclass
class SavedModelReport:
    """What :func:`export_savedmodel` wrote.

    Attributes:
        prefix: checkpoint read. output: the SavedModel folder. tables: per table its merge.
        chunk_batch: the fixed batch the graph is served in chunks of (None: any batch in one pass).
        slices: ``SaveV2`` slices written into ``variables/`` (1 + one per table tensor when all fit the budget).
    """

    prefix: str
    output: str
    tables: Dict[str, MergeStats] = field(default_factory=dict)
    chunk_batch: Optional[int] = None
    slices: int = 0


class _Served(tf.Module):
    """The SavedModel's root object: its tables (a list, so checkpoint keys are ``tables/<i>/...``)."""

    def __init__(self, tables) -> None:
        super().__init__()
        self.tables = list(tables)


def _variable_key(index: int, attribute: str) -> str:
    return f"tables/{index}/{attribute}/.ATTRIBUTES/VARIABLE_VALUE"


def export_savedmodel(checkpoint: str, output: str, meta_graph: Optional[str] = None,
                      memory_budget_bytes: Optional[int] = None, row_dtype: str = "float32") -> SavedModelReport:
    """Write the SavedModel of ``checkpoint`` to ``output`` (replacing it).

    Args:
        checkpoint: checkpoint folder (its latest checkpoint) or prefix (``.../model-100``), saved by any
            number of ranks in any cache mode (HBM, DDR, SSD).
        output: SavedModel folder to write (e.g. ``/models/dlrm/1`` for TF Serving's version layout).
        meta_graph: the training graph's ``.meta`` (default ``<prefix>.meta``).
        memory_budget_bytes: memory merging and writing a table may use (default: a quarter of RAM).
        row_dtype: "float32" (exact) or "float16" (half the size; cast to the lookup's dtype in the graph).

    Returns:
        what was written (see the module docstring for the folder).

    Raises:
        ExportError: no usable graph or signature, or a bad ``row_dtype``; CheckpointError (ShardError): a
        missing, damaged or mixed checkpoint file, or key counts other than the manifest's, naming the file
        and the table.
    """
    if row_dtype not in ROW_DTYPES:
        raise ExportError(f"row_dtype must be one of {ROW_DTYPES}, got {row_dtype!r}")
    prefix, manifest, paths, graph_def, spec = prepare(checkpoint, meta_graph)
    budget = memory_budget_bytes or default_memory_budget()
    output = os.path.abspath(output)
    tmp = f"{output}.tmp-{uuid.uuid4().hex[:8]}"
    merged = tmp + ".tables"
    report = SavedModelReport(prefix, output)
    used = sorted({lk["table"] for lk in spec["lookups"]})
    try:
        for name in used:
            report.tables[name] = merge_shards(paths[name], name, manifest["tables"][name]["dim"],
                                               os.path.join(merged, name), budget)
        with context.eager_mode():  # the caller's graph mode (training scripts disable eager) stays as it is
            tables = {n: ServingTable(n, report.tables[n].dim, report.tables[n].keys, tf.as_dtype(row_dtype),
                                      [lk["default"] for lk in spec["lookups"] if lk["table"] == n])
                      for n in used}
            function, report.chunk_batch = serving_function(graph_def, spec, tables)
            root = _Served(tables[n] for n in used)
            tf.saved_model.save(root, tmp, signatures={"serving_default": function})
            replaced = {}
            for i, name in enumerate(used):
                folder = os.path.join(merged, name)
                replaced[_variable_key(i, "keys")] = ([np.load(os.path.join(folder, "keys.npy"), mmap_mode="r")],
                                                      np.int64)
                replaced[_variable_key(i, "rows")] = ([np.load(os.path.join(folder, "rows.npy"), mmap_mode="r"),
                                                       tables[name].extra_rows()], np.dtype(row_dtype))
            report.slices = write_variables(os.path.join(tmp, "variables", "variables"), replaced, budget)
        description = {"format": FORMAT, "checkpoint": prefix, "step": manifest.get("step"),
                       "saved_by_ranks": manifest["rank_size"], "chunk_batch": report.chunk_batch,
                       "inputs": {k: {"dtype": e["dtype"], "shape": e["shape"]} for k, e in spec["inputs"].items()},
                       "tables": {n: {"dim": s.dim, "keys": s.keys, "row_dtype": row_dtype,
                                      "variables": [_variable_key(i, "keys"), _variable_key(i, "rows")]}
                                  for i, (n, s) in enumerate(sorted(report.tables.items()))},
                       "lookups": [{k: lk[k] for k in ("table", "dim", "default") if k in lk}
                                   for lk in spec["lookups"]]}
        os.makedirs(os.path.join(tmp, os.path.dirname(DESCRIPTION_FILE)), exist_ok=True)
        with open(os.path.join(tmp, DESCRIPTION_FILE), "w", encoding="utf-8") as f:
            json.dump(description, f, indent=1)
        if os.path.exists(output):
            shutil.rmtree(output)
        os.rename(tmp, output)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
        shutil.rmtree(merged, ignore_errors=True)
    return report
