"""Door kept for Rec SDK scripts: ``start_asc_pipeline``."""
from mx_rec.config.initializer import ConfigInitializer
from mx_rec.util.log import logger


def start_asc_pipeline() -> None:
    """Rec SDK starts its host key-processing threads here. mx_rec processes keys inside the
    training graph, so there is nothing to start; this checks that ``init()`` ran."""
    config = ConfigInitializer.get_instance()
    logger.debug("start_asc_pipeline: %d table(s), keys are processed in the graph", len(config.tables))
