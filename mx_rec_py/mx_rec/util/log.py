"""The SDK's logger (``from mx_rec.util.log import logger``); level from ``MXREC_LOG_LEVEL``."""
import logging
import os
import sys

logger = logging.getLogger("mx_rec")
if not logger.handlers:
    _handler = logging.StreamHandler(sys.stderr)
    _handler.setFormatter(logging.Formatter("[mx_rec %(levelname)s %(asctime)s] %(message)s"))
    logger.addHandler(_handler)
    logger.propagate = False
logger.setLevel(os.environ.get("MXREC_LOG_LEVEL", "INFO").upper())
