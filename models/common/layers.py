"""Dense building blocks the models share (TF1 layers, seeded, shared between train and eval graphs)."""
import warnings
import zlib
from typing import Optional, Sequence

import tensorflow as tf


def glorot(seed: int, name: str):
    """Glorot-uniform initializer seeded by ``seed`` and the variable's full scope name, so that two
    layers of equal shape never start equal (Keras' unseeded default draws from Python's ``random``)."""
    scope = tf.compat.v1.get_variable_scope().name
    return tf.compat.v1.glorot_uniform_initializer(seed=(seed * 7919 + zlib.crc32(f"{scope}/{name}".encode()))
                                                   % (2**31 - 1))


def dense(x: tf.Tensor, units: int, name: str, seed: int, activation: Optional[str] = None,
          use_bias: bool = True, bias_init: float = 0.0) -> tf.Tensor:
    """One fully connected layer ``name`` in the current variable scope: float32 [B, n] -> [B, units]."""
    with warnings.catch_warnings():  # TF1 layers are the point here (Rec SDK scripts use them)
        warnings.filterwarnings("ignore", message=".*tf.layers.dense.* is deprecated")
        return tf.compat.v1.layers.dense(x, units, activation=activation, use_bias=use_bias, name=name,
                                         kernel_initializer=glorot(seed, name),
                                         bias_initializer=tf.compat.v1.constant_initializer(bias_init))


def mlp(x: tf.Tensor, units: Sequence[int], name: str, seed: int, last_activation: Optional[str] = "relu"
        ) -> tf.Tensor:
    """ReLU layers of widths ``units`` (the last one gets ``last_activation``): [B, n] -> [B, units[-1]]."""
    with tf.compat.v1.variable_scope(name, reuse=tf.compat.v1.AUTO_REUSE):
        for i, width in enumerate(units):
            activation = "relu" if i < len(units) - 1 else last_activation
            x = dense(x, width, f"layer_{i}", seed, activation)
    return x
