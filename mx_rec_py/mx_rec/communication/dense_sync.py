"""Dense variables start equal on every rank: the initializer also broadcasts rank 0's values.

Installed by ``init()`` in a multi-rank job and removed on terminate: while installed,
``tf.compat.v1.global_variables_initializer()`` (also what ``MonitoredTrainingSession``'s scaffold
runs) initialises every variable and then overwrites each dense one with rank 0's value. Table
variables and their slots are left alone: each rank holds different rows.
"""
import tensorflow as tf
from tensorflow.python.ops import variables as tf_variables

from mx_rec.communication import collectives
from mx_rec.config.initializer import ConfigInitializer

_original = {}


def _initialize_then_broadcast():
    init = _original["fn"]()
    if not ConfigInitializer.is_initialized():
        return init
    sparse = {id(v) for v in ConfigInitializer.get_instance().sparse_variables()}
    dense = [v for v in tf.compat.v1.global_variables() if id(v) not in sparse]
    with tf.control_dependencies([init]):
        assigns = [v.assign(collectives.broadcast(v.read_value(), 0, name=f"mxrec_bcast_{i}"), read_value=False)
                   for i, v in enumerate(dense)]
    return tf.group(init, *assigns, name="init_and_broadcast")


def install() -> None:
    if _original:
        return
    _original["fn"] = tf_variables.global_variables_initializer
    tf_variables.global_variables_initializer = _initialize_then_broadcast
    tf.compat.v1.global_variables_initializer = _initialize_then_broadcast


def uninstall() -> None:
    if _original:
        tf_variables.global_variables_initializer = _original["fn"]
        tf.compat.v1.global_variables_initializer = _original["fn"]
        _original.clear()
