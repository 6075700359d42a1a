"""Write a SavedModel's ``variables/`` checkpoint with the tables' rows, one key range at a time.

``tf.saved_model.save`` writes every variable from memory. The export saves its tables as
stand-ins (one row each) and this module rewrites ``variables/variables.*``: every other tensor
of the stand-in checkpoint (the object graph, small variables) is copied, and each table's
``keys.npy`` / ``rows.npy`` (merged by ``table_merge.merge_shards``, memory-mapped here) is written
in slices of at most ``budget_bytes`` with TF's own ``SaveV2`` and joined with
``MergeV2Checkpoints``. The result is an ordinary TF checkpoint: TF's ``RestoreV2`` (the loader's,
TF Serving's) reads a tensor stored in slices as the whole tensor.
"""
import os
import shutil
from typing import Dict, List, Sequence, Tuple

import numpy as np
import tensorflow as tf

MIN_SLICE_BYTES = 256


def _slice_spec(shape: Tuple[int, ...], start: int, length: int) -> str:
    """TF's slice string of rows [start, start + length) of a tensor of ``shape`` ("10 4 0,3:-")."""
    dims = " ".join(str(d) for d in shape)
    rest = ":-" * (len(shape) - 1)
    return f"{dims} {start},{length}{rest}"


def write_variables(prefix: str, replaced: Dict[str, Tuple[Sequence[np.ndarray], np.dtype]], budget_bytes: int) -> int:
    """Rewrite the checkpoint ``prefix`` (``<savedmodel>/variables/variables``) in place.

    Args:
        prefix: the stand-in checkpoint that ``tf.saved_model.save`` wrote.
        replaced: checkpoint key -> (arrays [N_i, ...], possibly memory-mapped, stored one after the other
            as one tensor [sum N_i, ...]; dtype to store it as); the key must be in the stand-in checkpoint.
        budget_bytes: memory one slice may use.

    Returns:
        the number of ``SaveV2`` slices written.

    Raises:
        KeyError: a key of ``replaced`` is not in the checkpoint (names it and the keys there).
    """
    reader = tf.train.load_checkpoint(prefix)
    dtypes = reader.get_variable_to_dtype_map()
    missing = sorted(set(replaced) - set(dtypes))
    if missing:
        raise KeyError(f"SavedModel variables {prefix}: no tensor {missing}; it holds {sorted(dtypes)}")
    parts_dir = prefix + ".parts"
    shutil.rmtree(parts_dir, ignore_errors=True)
    os.makedirs(parts_dir)
    parts: List[str] = []

    def save(names, specs, tensors) -> None:
        part = os.path.join(parts_dir, f"part-{len(parts):06d}")
        tf.raw_ops.SaveV2(prefix=part, tensor_names=names, shape_and_slices=specs, tensors=tensors)
        parts.append(part)

    kept = sorted(set(dtypes) - set(replaced))
    save(kept, [""] * len(kept), [reader.get_tensor(n) for n in kept])
    for name in sorted(replaced):
        arrays, dtype = replaced[name]
        dtype = np.dtype(dtype)
        shape = (sum(int(a.shape[0]) for a in arrays),) + tuple(int(d) for d in arrays[0].shape[1:])
        row_bytes = max(1, int(np.prod(shape[1:], dtype=np.int64)) * max(dtype.itemsize, 8))
        step = max(1, max(MIN_SLICE_BYTES, budget_bytes) // (2 * row_bytes))  # the slice and its converted copy
        if shape[0] <= step:
            save([name], [""], [np.concatenate([np.asarray(a, dtype=dtype) for a in arrays])])
            continue
        offset = 0
        for array in arrays:
            for start in range(0, array.shape[0], step):
                chunk = np.ascontiguousarray(array[start:start + step], dtype=dtype)
                save([name], [_slice_spec(shape, offset + start, chunk.shape[0])], [chunk])
            offset += array.shape[0]
    for path in tf.io.gfile.glob(prefix + ".data-*") + [prefix + ".index"]:
        os.remove(path)
    tf.raw_ops.MergeV2Checkpoints(checkpoint_prefixes=parts, destination_prefix=prefix, delete_old_dirs=True)
    shutil.rmtree(parts_dir, ignore_errors=True)
    return len(parts)
