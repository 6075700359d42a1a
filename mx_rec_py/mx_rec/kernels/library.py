"""Loading the compiled op library once per process, or saying why it is not used.

``MXREC_FUSED_KERNELS``: unset or ``1``: use the library when it is built; ``0``: never (TF's own
ops run instead, with the same numbers); ``build``: build it here when the cache lacks it.
"""
import os
from typing import Optional

import tensorflow as tf

from mx_rec.system.log import log_once

ENV_NAME = "MXREC_FUSED_KERNELS"
_loaded = {}


def enabled() -> bool:
    """False when ``MXREC_FUSED_KERNELS=0``."""
    return os.environ.get(ENV_NAME, "1").strip().lower() not in ("0", "false", "off", "no")


def library() -> Optional[object]:
    """The op module (``mxrec_sparse_lazy_adam``, ``mxrec_segment_sum``), or None when disabled or not built
    (logged once, naming the command that builds it)."""
    if not enabled():
        return None
    if "module" not in _loaded:
        from mx_rec.kernels import build

        path = build.library_path()
        if not path.exists() and os.environ.get(ENV_NAME, "").strip().lower() == "build":
            path = build.build()
        if path.exists():
            _loaded["module"] = tf.load_op_library(str(path))
        else:
            _loaded["module"] = None
            log_once("kernels:missing", "mx_rec's fused kernels are not built for this TensorFlow (%s); TF's own ops "
                     "run instead (same numbers, slower). Build them with: python -m mx_rec.kernels.build", path)
    return _loaded["module"]
