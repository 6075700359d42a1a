"""A local model exported by ``tools/export_local.py``: one TF session and the merged tables.

Example:
    >>> model = load_inference_model("/models/dlrm_local")                          # doctest: +SKIP
    >>> probs = model.predict({"sparse_feature": ids, "dense_feature": dense})    # ids int64 [n, 26]
"""
import json
from typing import Dict, List, Mapping, Optional

import numpy as np
import tensorflow as tf
from tensorflow.core.framework import graph_pb2

from mx_rec.inference.export import FORMAT, GRAPH_FILE, SPEC_FILE, TABLES_DIR, default_memory_budget
from mx_rec.inference.merged_table import MergedTable
from mx_rec.saver.layout import CheckpointError
from mx_rec.saver.unit import check_file
from mx_rec.system import files as fs

DEFAULT_CHUNK = 4096


class InferenceModel:
    """Predicts with a frozen dense graph whose embeddings come from :class:`MergedTable` lookups.

    Args:
        directory: the exported model folder.
        mmap: True memory-maps every table, False loads every table; None (default) maps the tables
            whose rows file is larger than ``memory_budget_bytes`` (default: a quarter of RAM).

    Attributes:
        inputs: batch key -> {"tensor", "dtype", "shape"} of the entries ``predict`` needs.
        tables: table name -> MergedTable. batch_size: the graph's fixed batch size, or None.
    """

    def __init__(self, directory: str, mmap: Optional[bool] = None,
                 memory_budget_bytes: Optional[int] = None) -> None:
        spec_path = fs.join(directory, SPEC_FILE)
        try:
            self.spec = json.loads(fs.read_text(spec_path))
        except ValueError as err:
            raise CheckpointError(f"exported model file {spec_path} is damaged: {err}") from None
        if not isinstance(self.spec, dict) or self.spec.get("format") != FORMAT:
            found = self.spec.get("format") if isinstance(self.spec, dict) else None
            raise ValueError(f"{directory}/{SPEC_FILE}: format {found!r}, expected {FORMAT!r}")
        for relative, expected in sorted(self.spec.get("files", {}).items()):  # absent before checksums
            check_file(fs.join(directory, relative), expected, "exported model file")
        graph_def = graph_pb2.GraphDef()
        graph_def.ParseFromString(fs.read_bytes(fs.join(directory, GRAPH_FILE)))
        self.graph = tf.Graph()
        with self.graph.as_default():
            tf.compat.v1.import_graph_def(graph_def, name="")
        self.session = tf.compat.v1.Session(graph=self.graph)
        self.inputs: Dict[str, Dict] = self.spec["inputs"]
        self.lookups: List[Dict] = self.spec["lookups"]
        budget = memory_budget_bytes or default_memory_budget()
        self.tables: Dict[str, MergedTable] = {}
        for name in sorted({lk["table"] for lk in self.lookups}):
            folder = fs.join(directory, TABLES_DIR, name)
            big = fs.getsize(fs.join(folder, "rows.npy")) > budget
            self.tables[name] = MergedTable(folder, mmap=big if mmap is None else mmap)
            recorded = self.spec.get("tables", {}).get(name, {}).get("keys")
            if recorded is not None and self.tables[name].keys.shape[0] != recorded:
                raise CheckpointError(f"exported model file {folder}/keys.npy holds {self.tables[name].keys.shape[0]} "
                                      f"keys, {spec_path} records {recorded}")
        leading = {(e["shape"] or [None])[0] for e in self.inputs.values()}
        self.batch_size: Optional[int] = leading.pop() if len(leading) == 1 else None
        self._prediction = self.graph.get_tensor_by_name(self.spec["prediction"])
        self._ids = [self.graph.get_tensor_by_name(lk["ids"]) for lk in self.lookups]
        self._embeddings = [self.graph.get_tensor_by_name(lk["embeddings"]) for lk in self.lookups]

    def predict(self, batch: Mapping[str, np.ndarray]) -> np.ndarray:
        """Predictions for n samples.

        Args:
            batch: batch key -> numpy array [n, ...] for every key of ``inputs`` (others are ignored),
                e.g. ``sparse_feature`` int64 [n, F] and ``dense_feature`` float32 [n, D]; any n.

        Returns:
            the prediction tensor's values for the n samples (e.g. float32 [n, T] probabilities).

        Raises:
            KeyError: a needed entry is missing, naming it. ValueError: entries of different lengths.
        """
        missing = sorted(set(self.inputs) - set(batch))
        if missing:
            raise KeyError(f"predict: the batch lacks {missing}; the model reads {sorted(self.inputs)}")
        arrays = {k: np.asarray(batch[k], dtype=e["dtype"]) for k, e in self.inputs.items()}
        lengths = {k: a.shape[0] for k, a in arrays.items()}
        if len(set(lengths.values())) > 1:
            raise ValueError(f"predict: batch entries differ in length: {lengths}")
        n = next(iter(lengths.values())) if lengths else 0
        step = self.batch_size or DEFAULT_CHUNK
        outputs = []
        for start in range(0, n, step):
            end = min(n, start + step)
            index = np.arange(start, start + step) if self.batch_size else np.arange(start, end)
            index = np.minimum(index, n - 1)  # a fixed-size graph: pad with copies of the last sample
            outputs.append(self._run({k: a[index] for k, a in arrays.items()})[:end - start])
        if not outputs:
            return np.zeros([0] + self._prediction.shape.as_list()[1:], self._prediction.dtype.as_numpy_dtype)
        return np.concatenate(outputs)

    def _run(self, arrays: Mapping[str, np.ndarray]) -> np.ndarray:
        feeds = {self.graph.get_tensor_by_name(e["tensor"]): arrays[k] for k, e in self.inputs.items()}
        ids = self.session.run(self._ids, feeds) if self._ids else []
        for lookup, tensor, values in zip(self.lookups, self._embeddings, ids):
            feeds[tensor] = self.tables[lookup["table"]].lookup(values, lookup["dim"], lookup["default"],
                                                                lookup.get("padding_keys", ()))
        return self.session.run(self._prediction, feeds)

    def close(self) -> None:
        """Release the session."""
        self.session.close()

    def __enter__(self) -> "InferenceModel":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def load_inference_model(directory: str, mmap: Optional[bool] = None) -> InferenceModel:
    """The model exported to ``directory`` by ``export_local`` (see :class:`InferenceModel`).

    Every file is checked against the size and SHA-256 that ``model.json`` records, and each table's
    key count against its record, before anything is used.

    Raises:
        CheckpointError: a file is missing, damaged or of other size, naming it.
    """
    return InferenceModel(directory, mmap=mmap)
