"""Shared behaviour of the hash optimizers (a mixin over TF1 optimizers).

A hash optimizer only updates table variables, only with sparse gradients, and registers
each slot it creates with the table so that storage tiers can move slots with their rows.
Duplicate indices (several lookups of one table) are summed by TF's base class first.
"""

import tensorflow as tf

from mx_rec.config.initializer import ConfigInitializer
from mx_rec.lookup.merge import build_pending_lookups


def table_of(var) -> "EmbeddingTable":  # noqa: F821
    """The table whose variable is ``var``; TypeError naming the variable otherwise."""
    if ConfigInitializer.is_initialized():
        for table in ConfigInitializer.get_instance().tables.values():
            if table.variable is var:
                return table
    raise TypeError(f"hash optimizers update sparse table variables only; {getattr(var, 'name', var)!r} is not "
                    "one (use a dense optimizer for it, see get_dense_and_sparse_variable())")


def _indices_are_unique(table) -> bool:
    """A table with one built lookup (one call, or several merged by multi-lookup) gets a gradient on
    distinct rows only (the lookup already summed duplicate ids; static shapes pad nothing), so TF's
    extra unique + segment-sum pass can be skipped."""
    return table.built_lookups == 1


def check_learning_rate(learning_rate, name: str) -> None:
    if isinstance(learning_rate, (int, float)) and not isinstance(learning_rate, bool):
        if not 0.0 <= learning_rate <= 10.0:
            raise ValueError(f"{name}: learning_rate={learning_rate} is outside [0.0, 10.0]")
    elif not isinstance(learning_rate, (tf.Tensor, tf.Variable)):
        raise TypeError(f"{name}: learning_rate must be a float or a tensor, got {learning_rate!r}")


class HashOptimizerMixin:
    """Put first in the bases: ``class X(HashOptimizerMixin, tf.compat.v1.train.SomeOptimizer)``."""

    slot_init_values: dict = {}

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if ConfigInitializer.is_initialized():
            ConfigInitializer.get_instance().hash_optimizers.append(self)

    def compute_gradients(self, loss, var_list=None, **kwargs):
        build_pending_lookups()  # multi-lookup: the merged lookups must exist before gradients flow to them
        return super().compute_gradients(loss, var_list=var_list, **kwargs)

    def _create_slots(self, var_list):
        for var in var_list:
            if table_of(var).expandable:
                self._make_growable_slots(var)
        super()._create_slots(var_list)
        for var in var_list:
            table = table_of(var)
            if table.frozen_slots is not None:
                added = {(self.get_name(), n) for n in self.get_slot_names() if self.get_slot(var, n) is not None}
                if not added <= table.frozen_slots:
                    raise ValueError(f"table '{table.table_name}' is in DDR mode: create every hash optimizer "
                                     f"before create_table (slots {sorted(added - table.frozen_slots)} came later)")
        for var in var_list:
            table = table_of(var)
            for slot_name in self.get_slot_names():
                slot = self.get_slot(var, slot_name)
                if slot is not None:
                    table.register_slot(self.get_name(), slot_name, slot, self.slot_init_values.get(slot_name, 0.0))

    def _make_growable_slots(self, var) -> None:
        """Slots with an open leading dimension (they grow with an expandable table), made before TF's
        own ``_create_slots`` runs, which then finds and keeps them."""
        for slot_name, init in self.slot_init_values.items():
            value = tf.fill(tf.shape(var.initial_value), tf.cast(init, var.dtype.base_dtype))
            value = tf.compat.v1.placeholder_with_default(value, shape=[None, var.shape[1]])
            self._get_or_make_slot(var, value, slot_name, self._name)

    def _grow_slots(self, var, grad):
        """Ops that extend this optimizer's slots of ``var`` to the variable's row count once ``grad``
        exists (the gradient comes after the lookups, which may have grown the variable)."""
        with tf.control_dependencies([grad]):
            rows = tf.raw_ops.VariableShape(input=var.handle, out_type=tf.int64)[0]
        ops = []
        for slot_name, init in self.slot_init_values.items():
            slot = self.get_slot(var, slot_name)
            current = tf.raw_ops.VariableShape(input=slot.handle, out_type=tf.int64)[0]

            def grow(slot=slot, current=current, init=init):
                extra = tf.fill(tf.stack([rows - current, var.shape[1]]), tf.cast(init, slot.dtype.base_dtype))
                return tf.group(slot.assign(tf.concat([slot.read_value(), extra], 0), read_value=False))

            ops.append(tf.cond(current < rows, grow, tf.no_op))
        return ops

    def _resource_apply_sparse_duplicate_indices(self, grad, handle, indices):
        table = table_of(handle)
        deps = self._grow_slots(handle, grad) if table.expandable else []
        with tf.control_dependencies(deps):
            if _indices_are_unique(table) and self._has_own_sparse_update():
                update = self._resource_apply_sparse(grad, handle, indices)
            else:
                update = super()._resource_apply_sparse_duplicate_indices(grad, handle, indices)
        if table.lookahead_ops:  # DDR/SSD: the next batch is placed beside the update, not before it
            return tf.group(update, *table.lookahead_ops)
        return update

    def _has_own_sparse_update(self) -> bool:
        # TF's GradientDescent only implements the duplicate-indices path (a scatter-add needs no dedup)
        return type(self)._resource_apply_sparse is not tf.compat.v1.train.Optimizer._resource_apply_sparse

    def _resource_apply_dense(self, grad, handle):
        raise TypeError(f"{self.get_name()}: table variable {handle.name} got a dense gradient; hash optimizers "
                        "need the IndexedSlices gradient that sparse_lookup produces")

    def _apply_dense(self, grad, var):
        return self._resource_apply_dense(grad, var)

    def _valid_dtypes(self):
        return {tf.float32, tf.float64}
