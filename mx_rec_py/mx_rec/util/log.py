"""Door kept for Rec SDK scripts: the SDK's logger (``from mx_rec.util.log import logger``); level from
``MXREC_LOG_LEVEL``. It lives in ``mx_rec.system.log``."""
from mx_rec.system.log import log_once, logger  # noqa: F401
