"""Rec SDK's dynamic-expansion flow: gradients with respect to looked-up rows, applied by address.

With ``init(use_dynamic_expansion=True)`` each training lookup adds its gathered rows [G, dim] to
``ASCEND_SPARSE_LOOKUP_LOCAL_EMB`` and their device rows ("addresses") [G] to
``ASCEND_SPARSE_LOOKUP_ID_OFFSET``. A script takes ``tf.gradients(loss, local_embs)`` and hands
``zip(grads, addresses)`` to a ``*_by_addr`` optimizer, which turns each table's pairs into one
IndexedSlices on the table variable and applies the wrapped hash optimizer's lazy update.
"""
from typing import Iterable, Tuple

import tensorflow as tf

from mx_rec.config.initializer import ConfigInitializer


def _owner(address: tf.Tensor):
    for table in ConfigInitializer.get_instance().tables.values():
        if any(address is a for a in table.address_tensors):
            return table
    raise TypeError(f"{address.name} is not an address from ASCEND_SPARSE_LOOKUP_ID_OFFSET (dynamic expansion "
                    "lookups add them); by-address optimizers take (gradient, address) pairs")


class ByAddressOptimizer:
    """Applies (dense gradient [G, dim], address int64 [G]) pairs with a wrapped hash optimizer.

    Args:
        optimizer: a hash optimizer (lazy Adam, Adagrad, SGD) that does the per-row update.
        weight_decay: added to each row's summed gradient as ``weight_decay * row`` (SGD by address).
    """

    def __init__(self, optimizer, weight_decay: float = 0.0) -> None:
        self.optimizer = optimizer
        self.weight_decay = float(weight_decay)

    def get_name(self) -> str:
        return self.optimizer.get_name()

    def get_slot(self, var, name):
        return self.optimizer.get_slot(var, name)

    def apply_gradients(self, grads_and_vars: Iterable[Tuple[tf.Tensor, tf.Tensor]], global_step=None, name=None):
        """One update op for every table named by the addresses."""
        by_table = {}
        for grad, address in grads_and_vars:
            if grad is None:
                continue
            by_table.setdefault(id(_owner(address)), (_owner(address), []))[1].append((grad, address))
        updates = []
        for table, pairs in by_table.values():
            values = tf.concat([g for g, _ in pairs], axis=0)
            indices = tf.concat([a for _, a in pairs], axis=0)
            if self.weight_decay:
                indices, position = tf.unique(indices)
                values = tf.math.unsorted_segment_sum(values, position, tf.shape(indices)[0])
                with tf.control_dependencies([values]):  # read rows after the lookups wrote them
                    rows = tf.gather(table.variable, indices)
                values += self.weight_decay * rows
            shape = tf.raw_ops.VariableShape(input=table.variable.handle, out_type=tf.int64)
            updates.append((tf.IndexedSlices(values, indices, dense_shape=shape), table.variable))
        return self.optimizer.apply_gradients(updates, global_step=global_step, name=name)
