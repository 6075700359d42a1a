"""The SDK's logger (level from ``MXREC_LOG_LEVEL``) and ``log_once``, on the ground floor so that
every room can log; ``mx_rec.util.log`` is the door Rec SDK scripts import it from."""
import logging
import os
import sys
import threading
from typing import Any, Set

logger = logging.getLogger("mx_rec")
if not logger.handlers:
    _handler = logging.StreamHandler(sys.stderr)
    _handler.setFormatter(logging.Formatter("[mx_rec %(levelname)s %(asctime)s] %(message)s"))
    logger.addHandler(_handler)
    logger.propagate = False
logger.setLevel(os.environ.get("MXREC_LOG_LEVEL", "INFO").upper())

_logged: Set[str] = set()
_lock = threading.Lock()


def log_once(key: str, message: str, *args: Any) -> None:
    """Log ``message % args`` at INFO the first time ``key`` is seen in this process (how NPU-only
    names and ignored keywords say, once, that they have no effect here).

    Example:
        >>> log_once("npu_ops.initialize_system", "npu_ops.%s is NPU-only", "initialize_system")
    """
    with _lock:
        if key in _logged:
            return
        _logged.add(key)
    logger.info(message, *args)
