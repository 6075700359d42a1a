"""Shared fixtures: every test gets a fresh graph and a fresh mx_rec configuration."""
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import pytest  # noqa: E402
import tensorflow as tf  # noqa: E402

from mx_rec.util.initialize import init, terminate_config_initializer  # noqa: E402

tf.compat.v1.disable_eager_execution()


@pytest.fixture
def graph():
    """A new default graph, with mx_rec initialised (dynamic shapes) and torn down after the test."""
    g = tf.Graph()
    with g.as_default():
        init()
        yield g
    terminate_config_initializer()
