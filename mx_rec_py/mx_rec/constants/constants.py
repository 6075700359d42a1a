"""Constants Rec SDK scripts import (collection names, limits, switches)."""
from enum import Enum

ASCEND_TIMESTAMP = "ASCEND_TIMESTAMP"
ASCEND_SPARSE_LOOKUP_LOCAL_EMB = "ASCEND_SPARSE_LOOKUP_LOCAL_EMB"
ASCEND_SPARSE_LOOKUP_ID_OFFSET = "ASCEND_SPARSE_LOOKUP_ID_OFFSET"
ASCEND_GLOBAL_HASHTABLE_COLLECTION = "ASCEND_GLOBAL_HASHTABLE_COLLECTION"

MIN_EMB_DIM = 1
MAX_EMB_DIM = 8192
PADDING_KEY = -1
MAX_INT32 = 2**31 - 1


class All2allGradientsOp(Enum):
    """How gradients of one key from several ranks are combined."""

    SUM_GRADIENTS = "sum_gradients"
    SUM_GRADIENTS_AND_DIV_BY_RANKSIZE = "sum_gradients_and_div_by_ranksize"
