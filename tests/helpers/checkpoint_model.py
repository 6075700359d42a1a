"""A one-table model with lazy Adam and a global step, for checkpoint tests."""
import tensorflow as tf

from mx_rec.core.embedding import create_table, sparse_lookup
from mx_rec.optimizers import lazy_adam

INIT = tf.compat.v1.truncated_normal_initializer(stddev=0.1, seed=1)


def small_model(dim=4, names=("t",)):
    tables = [create_table(tf.int64, dim, n, INIT, device_vocabulary_size=50) for n in names]
    ids = tf.compat.v1.placeholder(tf.int64, [None])
    loss = tf.add_n([tf.reduce_sum(sparse_lookup(t, ids)) for t in tables])
    step = tf.compat.v1.train.get_or_create_global_step()
    train = lazy_adam.create_hash_optimizer(0.1).minimize(loss, var_list=[t.variable for t in tables],
                                                          global_step=step)
    return tables, ids, train
