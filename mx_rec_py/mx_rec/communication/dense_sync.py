"""Dense variables start equal on every rank: the initializer also broadcasts rank 0's values.

Installed by ``init()`` in a multi-rank job and removed on terminate: while installed,
``tf.compat.v1.global_variables_initializer()`` (also what ``MonitoredTrainingSession``'s scaffold
runs) initialises every variable and then overwrites each dense one with rank 0's value. Table
variables and their slots are left alone: each rank holds different rows. Which variables those
are is asked, each time the initializer is built, of the function ``install`` was handed (the
caller knows the tables; this room stands below them).
"""
from typing import Callable, Iterable, Optional

import tensorflow as tf
from tensorflow.python.ops import variables as tf_variables

from mx_rec.communication import collectives

SparseVariables = Callable[[], Optional[Iterable[tf.Variable]]]
_original = {}


def _initialize_then_broadcast():
    init = _original["fn"]()
    sparse_variables = _original["sparse"]()
    if sparse_variables is None:
        return init
    sparse = {id(v) for v in sparse_variables}
    dense = [v for v in tf.compat.v1.global_variables() if id(v) not in sparse]
    with tf.control_dependencies([init]):
        assigns = [v.assign(collectives.broadcast(v.read_value(), 0, name=f"mxrec_bcast_{i}"), read_value=False)
                   for i, v in enumerate(dense)]
    return tf.group(init, *assigns, name="init_and_broadcast")


def install(sparse_variables: SparseVariables) -> None:
    """Make ``global_variables_initializer()`` also broadcast rank 0's dense variables: every global
    variable except those ``sparse_variables()`` returns (table variables and their optimizer slots,
    looked up when the initializer is built); when it returns None (no SDK configuration) the
    initializer is TF's own.

    Example:
        >>> install(lambda: [table.variable for table in tables])  # doctest: +SKIP
    """
    if _original:
        return
    _original["fn"] = tf_variables.global_variables_initializer
    _original["sparse"] = sparse_variables
    tf_variables.global_variables_initializer = _initialize_then_broadcast
    tf.compat.v1.global_variables_initializer = _initialize_then_broadcast


def uninstall() -> None:
    if _original:
        tf_variables.global_variables_initializer = _original["fn"]
        tf.compat.v1.global_variables_initializer = _original["fn"]
        _original.clear()
