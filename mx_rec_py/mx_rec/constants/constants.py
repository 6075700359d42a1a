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


class ApplyGradientsStrategy(Enum):
    """How a step's gradient rows of one key reach the hash optimizer (``APPLY_GRADIENTS_STRATEGY``).

    DIRECT_APPLY: each lookup's rows are applied as they come, one lookup after another.
    SUM_SAME_ID_GRADIENTS_AND_APPLY: a key's rows from every lookup are summed, then applied once.
    """

    DIRECT_APPLY = "direct_apply"
    SUM_SAME_ID_GRADIENTS_AND_APPLY = "sum_same_id_gradients_and_apply"

    @classmethod
    def mapping(cls, key) -> "ApplyGradientsStrategy":
        """The member whose value is ``key`` (a value or a member); KeyError listing the values otherwise."""
        value = key.value if isinstance(key, Enum) else key
        for member in cls:
            if member.value == value:
                return member
        raise KeyError(f"{cls.__name__}: {key!r} is not one of {[m.value for m in cls]}")
