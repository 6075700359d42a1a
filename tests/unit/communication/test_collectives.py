"""On one process (no horovodrun) the collectives behind the Rec SDK door ``hccl_ops`` are identities;
``tests/parallel`` runs them on 2 ranks."""
import numpy as np
import pytest
import tensorflow as tf


def test_single_process_collectives(graph):
    from mx_rec.util.communication import hccl_ops
    from mx_rec.util.initialize import ConfigInitializer
    assert (hccl_ops.get_rank_id(), hccl_ops.get_rank_size(), hccl_ops.get_local_rank_size()) == (0, 1, 1)
    assert ConfigInitializer.get_instance().rank_size == 1
    x = tf.constant([[1.0, 2.0], [3.0, 4.0]])
    received, counts = hccl_ops.all_to_all_v(x, tf.constant([2], tf.int32))
    with tf.compat.v1.Session() as sess:
        out = sess.run([hccl_ops.allreduce(x, "sum"), hccl_ops.broadcast(x, 0), received, counts])
    for value in out[:3]:
        np.testing.assert_array_equal(value, [[1.0, 2.0], [3.0, 4.0]])
    assert out[3].tolist() == [2]
    with pytest.raises(ValueError, match="reduction must be one of"):
        hccl_ops.allreduce(x, "prod")
