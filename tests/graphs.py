"""A fresh graph and mx_rec configuration, as a new process would have (for tests that build several)."""
import contextlib

import tensorflow as tf

from mx_rec.util.initialize import init, terminate_config_initializer


@contextlib.contextmanager
def fresh_graph(**init_kwargs):
    """A new default graph with ``init(**init_kwargs)``; the configuration is dropped afterwards."""
    terminate_config_initializer()
    with tf.Graph().as_default() as graph:
        init(**init_kwargs)
        yield graph
    terminate_config_initializer()
