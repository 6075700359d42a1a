"""Serve SavedModels with plain TensorFlow, in a process where mx_rec, horovod and numba cannot be imported.

    serve_savedmodel.py OUT.npz MODEL_DIR BATCH.npz [MODEL_DIR BATCH.npz ...]

For each model i: ``tf.saved_model.load``, call ``serving_default`` with the arrays of its BATCH.npz
(keys = the signature's input names) and store ``pred<i>`` (the ``prediction`` output) in OUT.npz;
also ``ops<i>``: every op type of the model's graph and its function library, and ``unregistered``:
those of them that stock TensorFlow (this process: ``import tensorflow`` and nothing else) does
not register; ``modules``: blocked modules loaded (none), ``refused``: those an import attempt was refused.
"""
import importlib.abc
import sys

BLOCKED = ("mx_rec", "horovod", "numba")


class _Blocker(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in BLOCKED:
            raise ImportError(f"{name} is blocked: a SavedModel must serve without it")
        return None


sys.meta_path.insert(0, _Blocker())

import os  # noqa: E402

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
from tensorflow.core.protobuf import saved_model_pb2  # noqa: E402
from tensorflow.python.framework import op_def_registry  # noqa: E402


def op_types(model_dir: str) -> set:
    """Every op type in the SavedModel's graphs and function libraries."""
    proto = saved_model_pb2.SavedModel.FromString(open(os.path.join(model_dir, "saved_model.pb"), "rb").read())
    ops = set()
    for meta in proto.meta_graphs:
        ops.update(n.op for n in meta.graph_def.node)
        for function in meta.graph_def.library.function:
            ops.update(n.op for n in function.node_def)
    return ops


def main() -> None:
    out_path, *pairs = sys.argv[1:]
    out = {}
    for i, (model_dir, batch_path) in enumerate(zip(pairs[::2], pairs[1::2])):
        batch = dict(np.load(batch_path))
        served = tf.saved_model.load(model_dir).signatures["serving_default"]
        names = sorted(served.structured_input_signature[1])
        out[f"pred{i}"] = served(**{k: tf.constant(batch[k]) for k in names})["prediction"].numpy()
        ops = sorted(op_types(model_dir))
        out[f"ops{i}"] = np.array(ops)
        out[f"unregistered{i}"] = np.array([op for op in ops if op_def_registry.get(op) is None], dtype=str)
    out["modules"] = np.array(sorted(m for m in sys.modules if m.split(".")[0] in BLOCKED), dtype=str)
    refused = []
    for name in BLOCKED:
        try:
            __import__(name)
        except ImportError:
            refused.append(name)
    out["refused"] = np.array(refused, dtype=str)
    np.savez(out_path, **out)


if __name__ == "__main__":
    main()
