"""Rec SDK's dynamic-expansion flow: gradients with respect to looked-up rows, applied by address.

With ``init(use_dynamic_expansion=True)`` each training lookup adds its gathered rows [G, dim] to
``ASCEND_SPARSE_LOOKUP_LOCAL_EMB`` and their device rows ("addresses") [G] to
``ASCEND_SPARSE_LOOKUP_ID_OFFSET``. A script takes ``tf.gradients(loss, local_embs)`` (or the
optimizer's own ``compute_gradients(loss, local_embs)``) and hands ``zip(grads, addresses)`` to a
``*_by_addr`` optimizer. Each one is a real hash optimizer (a ``tf.compat.v1.train.Optimizer``,
so loss-scale wrappers take it) whose ``apply_gradients`` turns each table's pairs into one
IndexedSlices on the table variable, then applies its usual lazy update.
"""
from typing import Iterable, Tuple

import tensorflow as tf

from mx_rec.config.graph_registry import find_registry
from mx_rec.config.initializer import ConfigInitializer


def _owner(address: tf.Tensor):
    for table in ConfigInitializer.get_instance().tables.values():
        registry = find_registry(table.variable.graph)
        if registry is not None and any(address is a for a in registry.addresses.get(table.table_name, ())):
            return table
    raise TypeError(f"{getattr(address, 'name', address)} is not an address from ASCEND_SPARSE_LOOKUP_ID_OFFSET "
                    "(dynamic expansion lookups add them); by-address optimizers take (gradient, address) pairs")


class ByAddressMixin:
    """Put first: ``class X(ByAddressMixin, SomeHashOptimizer)``."""

    def apply_gradients(self, grads_and_vars: Iterable[Tuple[tf.Tensor, tf.Tensor]], global_step=None, name=None):
        """(dense gradient [G, dim], address int64 [G]) pairs -> one update op for every table named.
        A pair whose second item is a table variable (an IndexedSlices gradient) passes through."""
        by_table, passed = {}, []
        for grad, target in grads_and_vars:
            if isinstance(target, tf.Variable):
                passed.append((grad, target))
                continue
            if grad is None:
                continue
            table = _owner(target)
            by_table.setdefault(table.table_name, (table, []))[1].append((grad, target))
        updates = list(passed)
        for table, pairs in by_table.values():
            values = tf.concat([tf.convert_to_tensor(g) for g, _ in pairs], axis=0)
            indices = tf.concat([a for _, a in pairs], axis=0)
            shape = tf.raw_ops.VariableShape(input=table.variable.handle, out_type=tf.int64)
            updates.append((tf.IndexedSlices(values, indices, dense_shape=shape), table.variable))
        return super().apply_gradients(updates, global_step=global_step, name=name)
