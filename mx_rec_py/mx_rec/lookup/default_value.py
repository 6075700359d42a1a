"""``serving_default_value`` given as a tensor: its value, fixed when the lookup is built.

Rec SDK scripts pass a tensor (``tf.ones(dim) * 2``). The value is needed as numbers, not as a
tensor: the graph's lookup record keeps it for exported models, and multi-lookup merges only
lookups with the same default. So a tensor computed from constants alone is evaluated once, on
the CPU, when ``sparse_lookup`` is called; one that depends on a placeholder, a variable or a
stateful op has no fixed value and is refused, naming the table.
"""
from typing import Any

import numpy as np
import tensorflow as tf


def _check_constant(table_name: str, tensor: tf.Tensor) -> None:
    seen, stack = set(), [tensor.op]
    while stack:
        op = stack.pop()
        if op.name in seen:
            continue
        seen.add(op.name)
        try:
            stateful = bool(op.op_def.is_stateful)
        except (AttributeError, ValueError):
            stateful = True
        if stateful or (not op.inputs and op.type != "Const"):
            raise TypeError(f"sparse_lookup on table '{table_name}': serving_default_value '{tensor.name}' depends "
                            f"on '{op.name}' (op type {op.type}); it must be computable from constants "
                            "(e.g. tf.ones([dim]) * 2), or a number / list / numpy array")
        stack.extend(t.op for t in op.inputs)


def static_default(table_name: str, value: Any) -> Any:
    """``value`` itself, or the numpy value of a tensor computed from constants.

    Raises:
        TypeError: a variable, or a tensor that depends on a placeholder, variable or stateful op.
    """
    if isinstance(value, tf.Variable):
        raise TypeError(f"sparse_lookup on table '{table_name}': serving_default_value must not be a variable "
                        f"('{value.name}'); pass a constant tensor, a number, a list or a numpy array")
    if not isinstance(value, tf.Tensor) or hasattr(value, "numpy"):
        return value
    static = tf.get_static_value(value)
    if static is not None:
        return np.asarray(static)
    _check_constant(table_name, value)
    config = tf.compat.v1.ConfigProto(device_count={"GPU": 0}, allow_soft_placement=True)
    with tf.compat.v1.Session(graph=value.graph, config=config) as session:
        return np.asarray(session.run(value))
