"""Initial values of table-sized variables that TF neither folds into a constant nor copies.

``tf.zeros([rows, dim])`` (and ``zeros_initializer``) has constant inputs, so grappler folds it into a
``Const`` node whose kernel keeps the whole tensor for the session's life; the variable starts as an
alias of it, and the first sparse access (gather, scatter) copies the variable away from it: two
copies of every table-sized variable, for good. ``Empty(init=True)`` zero-fills a fresh buffer at run
time, is not folded, and the variable adopts that buffer.
"""
import tensorflow as tf


def filled(shape, value: float, dtype: tf.DType) -> tf.Tensor:
    """``dtype`` tensor of ``shape`` (a list or an int tensor [rank]) holding ``value`` everywhere.

    Example:
        >>> initial = filled([1001, 16], 0.0, tf.float32)   # for tf.Variable(initial, ...)
    """
    shape = shape if isinstance(shape, tf.Tensor) else tf.constant(shape, tf.int32)
    zeros = tf.raw_ops.Empty(shape=shape, dtype=dtype, init=True)
    return zeros if value == 0 else zeros + tf.constant(value, dtype)  # the add reuses the buffer
