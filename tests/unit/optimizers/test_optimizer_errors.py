"""Bad optimizer input gets a clear error naming the variable or the argument."""
import pytest
import tensorflow as tf


def test_hash_optimizer_refuses_dense_variables(graph):
    from mx_rec.optimizers.lazy_adam import create_hash_optimizer
    w = tf.compat.v1.get_variable("w", [3], initializer=tf.zeros_initializer())
    with pytest.raises(TypeError, match="'w:0' is not one"):
        create_hash_optimizer().minimize(tf.reduce_sum(w), var_list=[w])


def test_optimizer_parameter_ranges():
    from mx_rec.optimizers import adagrad, ftrl, lazy_adam
    with pytest.raises(ValueError, match=r"learning_rate=11 is outside \[0.0, 10.0\]"):
        lazy_adam.create_hash_optimizer(11)
    with pytest.raises(ValueError, match="initial_accumulator_value=0.0"):
        adagrad.create_hash_optimizer(0.1, initial_accumulator_value=0.0)
    with pytest.raises(TypeError, match=r"unknown keyword\(s\) \['l3'\]"):
        ftrl.create_hash_optimizer(0.1, l3=1.0)
