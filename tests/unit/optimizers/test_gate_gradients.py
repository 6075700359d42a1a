"""Hash optimizers' compute_gradients leaves TF's per-op gating off for resource variables (same numbers)."""
import numpy as np
import tensorflow as tf

from mx_rec.core.embedding import create_table, sparse_lookup
from mx_rec.optimizers import lazy_adam
from tests.graphs import fresh_graph


def _gated_ops(graph) -> int:
    return sum(1 for op in graph.get_operations() if "/tuple/control_dependency" in op.name)


def _gradients(gate=None, use_resource=True):
    with fresh_graph() as graph:
        table = create_table(tf.int64, 4, "t", tf.compat.v1.truncated_normal_initializer(seed=1),
                             device_vocabulary_size=16)
        emb = sparse_lookup(table, tf.constant([[1, 2], [2, 3]], tf.int64))
        w = tf.compat.v1.get_variable("w", initializer=tf.ones([8, 1]) * 0.5, use_resource=use_resource)
        loss = tf.reduce_sum(tf.square(tf.matmul(tf.reshape(emb, [2, 8]), w)))
        opt = lazy_adam.create_hash_optimizer(0.1)
        kwargs = {} if gate is None else {"gate_gradients": gate}
        pairs = opt.compute_gradients(loss, var_list=[table.variable, w], **kwargs)
        with tf.compat.v1.Session() as session:
            session.run(tf.compat.v1.global_variables_initializer())
            values = session.run([tf.convert_to_tensor(g) for g, _ in pairs])
        return values, _gated_ops(graph)


def test_resource_variables_are_not_gated_and_give_the_same_gradients():
    ungated, n_ungated = _gradients()
    gated, n_gated = _gradients(tf.compat.v1.train.Optimizer.GATE_OP)
    assert n_ungated == 0 and n_gated > 0
    for a, b in zip(ungated, gated):
        np.testing.assert_array_equal(a, b)


def test_a_reference_variable_keeps_tf_gating():
    _, n_gated = _gradients(use_resource=False)
    assert n_gated > 0
