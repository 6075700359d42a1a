"""Door kept for Rec SDK scripts: ``init``, ``terminate_config_initializer``, ``ConfigInitializer``."""
from typing import Any

from mx_rec.communication import collectives, dense_sync
from mx_rec.communication.collectives import get_local_rank_size, get_rank_id, get_rank_size  # noqa: F401
from mx_rec.config.initializer import ConfigInitializer
from mx_rec.saver import tf_saver
from mx_rec.util.log import logger


def init(**kwargs: Any) -> ConfigInitializer:
    """Start the SDK for this process (keywords as in Rec SDK; see ``mx_rec.config.params``).

    Under ``horovodrun`` this starts Horovod: tables are sharded over the ranks, and
    ``global_variables_initializer()`` also broadcasts rank 0's dense variables. From here on
    ``tf.compat.v1.train.Saver`` also saves and restores the sparse tables.

    Raises:
        ValueError: an unknown keyword or an out-of-range value.
    """
    collectives.start()
    config = ConfigInitializer.create(**kwargs)
    tf_saver.install()
    if config.rank_size > 1:
        dense_sync.install()
    logger.info("mx_rec initialised: rank %d of %d", config.rank_id, config.rank_size)
    return config


def terminate_config_initializer() -> None:
    """Drop the configuration and table registry (call at the end of a job or between tests)."""
    ConfigInitializer.terminate()
    tf_saver.uninstall()
    dense_sync.uninstall()
