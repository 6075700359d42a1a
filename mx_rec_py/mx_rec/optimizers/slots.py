"""Optimizer slots that live row for row beside a table, whatever optimizer class made them.

Slots are made the usual TF way (``_zeros_slot`` ..., in ``_create_slots``, or Rec SDK's
``initialize_slots`` + ``insert_slot``); then each is registered with its table together with the
value a new row of it starts from, so DDR/SSD tiers move it with the rows, eviction resets it and
dynamic expansion grows it. A slot's initial value comes from, in order: the class's
``slot_init_values`` dict, Rec SDK's ``get_slot_init_values()`` list (one value a slot, in creation
order), or the slot variable's constant initial value.

A table with ``slot_dtype`` (float16 / bfloat16) gets its declared slots in that dtype
(:func:`make_table_slots`), whatever dtype its rows have.
"""
from typing import List, Optional

import tensorflow as tf
from tensorflow.python.training.optimizer import _var_key

from mx_rec.system.log import logger
from mx_rec.tables.variable_init import filled


def slot_names_of(optimizer, var) -> List[str]:
    """Names of ``optimizer``'s slots of ``var``, in creation order."""
    key = _var_key(var)
    return [name for name, per_var in optimizer._slots.items() if key in per_var]


def _constant_fill(tensor: tf.Tensor) -> Optional[float]:
    """The one value every element of ``tensor`` has when its graph says so (Fill / splat Const)."""
    op = tensor.op
    while op.type in ("Identity", "PlaceholderWithDefault") and op.inputs:
        op = op.inputs[0].op
    if op.type == "Fill":
        value = tf.get_static_value(op.inputs[1])
        return None if value is None else float(value)
    if op.type == "Const":
        proto = op.get_attr("value")
        if proto.tensor_content:
            return None
        for field in ("float_val", "double_val"):  # a splat keeps one value, whatever its shape
            values = getattr(proto, field)
            if len(values) == 1:
                return float(values[0])
    return None


def slot_init_value(optimizer, var, slot_name: str) -> float:
    """The value a new row of ``optimizer``'s slot ``slot_name`` of ``var`` starts from."""
    declared = getattr(optimizer, "slot_init_values", None) or {}
    if slot_name in declared:
        return float(declared[slot_name])
    names = slot_names_of(optimizer, var)
    own_list = type(optimizer).get_slot_init_values.__module__ != "mx_rec.optimizers.base"
    listed = list(optimizer.get_slot_init_values() or []) if own_list else []
    if listed:
        if len(listed) != len(names):
            raise ValueError(f"{optimizer.get_name()}: get_slot_init_values() gives {len(listed)} value(s) for "
                             f"its {len(names)} slot(s) {names}; give one a slot, in creation order")
        return float(listed[names.index(slot_name)])
    slot = optimizer.get_slot(var, slot_name)
    value = _constant_fill(slot.initial_value)
    if value is None:
        logger.warning("%s: slot %r has no constant initial value; its new rows start from 0.0 (declare "
                       "slot_init_values = {%r: value} on the class)", optimizer.get_name(), slot_name, slot_name)
        return 0.0
    return value


def make_table_slots(optimizer, var, dtype: tf.DType, growable: bool) -> None:
    """The declared slots of table variable ``var``, in ``dtype`` (its table's ``slot_dtype``), made before the
    class's own ``_create_slots`` runs (which then finds and keeps them), from initial values TF
    neither folds nor copies (``tables.variable_init.filled``); ``growable`` (dynamic expansion): with
    an open leading dimension so they grow with the table."""
    for slot_name, init in (getattr(optimizer, "slot_init_values", None) or {}).items():
        if growable:
            value = filled(tf.shape(var.initial_value), init, dtype)
            value = tf.compat.v1.placeholder_with_default(value, shape=[None, var.shape[1]])
            op_name = optimizer._name
        else:  # the variable names the class's own _create_slots would give
            value = filled(var.shape.as_list(), init, dtype)
            op_name = (optimizer.slot_op_name(slot_name) if hasattr(optimizer, "slot_op_name")  # FTRL-T's suffixes
                       else getattr(optimizer, f"_{slot_name}_name", None) or optimizer._name)  # TF Ftrl's accum_name
        optimizer._get_or_make_slot(var, value, slot_name, op_name)


def register_slots(optimizer, var, table) -> None:
    """Register every slot ``optimizer`` has of table variable ``var`` with ``table``.

    Raises:
        ValueError: a DDR table got a slot after create_table, or an expanding table a slot that
            cannot grow; both name the table and the slot.
    """
    table.check_optimizer(optimizer)
    names = slot_names_of(optimizer, var)
    if table.frozen_slots is not None:
        added = {(optimizer.get_name(), n) for n in names}
        if not added <= table.frozen_slots:
            raise ValueError(f"table '{table.table_name}' is in DDR mode: create every hash optimizer "
                             f"before create_table (slots {sorted(added - table.frozen_slots)} came later)")
    for slot_name in names:
        slot = optimizer.get_slot(var, slot_name)
        if table.expandable and slot.shape.rank is not None and slot.shape[0] is not None:
            raise ValueError(f"table '{table.table_name}' grows with dynamic expansion, but slot {slot_name!r} of "
                             f"{optimizer.get_name()} has a fixed row count; declare slot_init_values = "
                             f"{{{slot_name!r}: value}} on the optimizer class so the slot is made growable")
        table.register_slot(optimizer.get_name(), slot_name, slot, slot_init_value(optimizer, var, slot_name))


def grow_slots(optimizer, var, grad: tf.Tensor, table) -> List[tf.Operation]:
    """Ops that extend ``optimizer``'s slots of ``var`` to the variable's row count once ``grad``
    exists (the gradient comes after the lookups, which may have grown the variable)."""
    with tf.control_dependencies([grad]):
        rows = tf.raw_ops.VariableShape(input=var.handle, out_type=tf.int64)[0]
    ops = []
    for (owner, _), (slot, init) in sorted(table.slots.items()):
        if owner != optimizer.get_name():
            continue
        current = tf.raw_ops.VariableShape(input=slot.handle, out_type=tf.int64)[0]

        def grow(slot=slot, current=current, init=init):
            extra = tf.fill(tf.stack([rows - current, var.shape[1]]), tf.cast(init, slot.dtype.base_dtype))
            return tf.group(slot.assign(tf.concat([slot.read_value(), extra], 0), read_value=False))

        ops.append(tf.cond(current < rows, grow, tf.no_op))
    return ops

