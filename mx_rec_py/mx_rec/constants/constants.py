"""Constants Rec SDK scripts import (collection names, limits, switches, op-library names, enums).

The names and values are Rec SDK's, so ``from mx_rec.constants.constants import X`` works unchanged;
limits that only bound NPU resources (channel depths, device ids) are kept for scripts that read them.
"""
from enum import Enum
from typing import Any

# graph collections
ASCEND_TIMESTAMP = "ASCEND_TIMESTAMP"
ASCEND_SPARSE_LOOKUP_LOCAL_EMB = "ASCEND_SPARSE_LOOKUP_LOCAL_EMB"
ASCEND_SPARSE_LOOKUP_ID_OFFSET = "ASCEND_SPARSE_LOOKUP_ID_OFFSET"
ASCEND_SPARSE_LOOKUP_UNIQUE_KEYS = "ASCEND_SPARSE_LOOKUP_UNIQUE_KEYS"
ASCEND_SPARSE_LOOKUP_ENTRANCE = "ASCEND_SPARSE_LOOKUP_ENTRANCE"
ASCEND_CUTTING_POINT_INITIALIZER = "ASCEND_CUTTING_POINT_INITIALIZER"
ASCEND_GLOBAL_HASHTABLE_COLLECTION = "ASCEND_GLOBAL_HASHTABLE_COLLECTION"
# names of older Rec SDK releases, kept for the scripts written against them
ASCEND_CUTTING_POINT = "ASCEND_CUTTING_POINT"
ASCEND_SPARSE_LOOKUP_RESTORE_VECTOR = "ASCEND_SPARSE_LOOKUP_RESTORE_VECTOR"
ASCEND_SPARSE_LOOKUP_LOOKUP_RESULT = "ASCEND_SPARSE_LOOKUP_LOOKUP_RESULT"
ASCEND_SPARSE_LOOKUP_ALL2ALL_MATRIX = "ASCEND_SPARSE_LOOKUP_ALL2ALL_MATRIX"
ASCEND_SPARSE_LOOKUP_HOT_POS = "ASCEND_SPARSE_LOOKUP_HOT_POS"
CUSTOMIZED_OPS_LIB_PATH = "CUSTOMIZED_OPS_LIB_PATH"
HOST_PIPELINE_OPS_LIB_PATH = "HOST_PIPELINE_OPS_LIB_PATH"
LOCAL_RANK_SIZE = "LOCAL_RANK_SIZE"
MAX_DEVICE_NUM_LOCAL_MACHINE = 16
DEFAULT_DEVICE_NUM_LOCAL_MACHINE = 8
MAX_DEVICE_NUM = 16
MIN_DEVICE_NUM = 1
AVOID_TENSOR_POS = 439999
ASCEND_TABLE_NAME_MUST_CONTAIN = None
EMPTY_STR = ""
GET_CONFIG_INSTANCE_ERR_MSG = "Please init the environment for mx_rec at first."
ANCHOR_DATASET_NAME = "PrefetchDataset"

# native op libraries Rec SDK loads; here they name the same Python-level ops (mx_rec.util.ops)
LIBASC_OPS_SO = "libasc_ops.so"
LIBREC_EOS_OPS_SO = "librec_eos_ops.so"
LIBREC_TF_REC_V1_CPU_SO = "librec_tf_rec_v1_cpu.so"
OP_LIBRARY_NAMES = (LIBASC_OPS_SO, LIBREC_EOS_OPS_SO, LIBREC_TF_REC_V1_CPU_SO)

# data channels between host and device (here: which pipeline a dataset feeds)
TRAIN_CHANNEL_ID = 0
EVAL_CHANNEL_ID = 1

MIN_EMB_DIM = 1
MAX_EMB_DIM = 8192
PADDING_KEY = -1
MAX_INT32 = 2**31 - 1
MAX_WHILE_SIZE = 800
DEFAULT_HD_CHANNEL_SIZE = 40
MAX_HD_CHANNEL_SIZE = 8192
MIN_HD_CHANNEL_SIZE = 2
DEFAULT_KP_THREAD_NUM = 6
MIN_KP_THREAD_NUM = 1
MAX_KP_THREAD_NUM = 10
DEFAULT_FAST_UNIQUE_THREAD_NUM = 8
MIN_FAST_UNIQUE_THREAD_NUM = 1
MAX_FAST_UNIQUE_THREAD_NUM = 8
DEFAULT_HOT_EMB_UPDATE_STEP = 1000
MIN_HOT_EMB_UPDATE_STEP = 1
MAX_HOT_EMB_UPDATE_STEP = 1000
MULTI_LOOKUP_TIMES = 128
DEFAULT_EVICT_TIME_INTERVAL = 60 * 60 * 24  # seconds
HASHTABLE_COLLECTION_NAME_LENGTH = 30
MAX_VOCABULARY_SIZE = 10**10
MAX_DEVICE_VOCABULARY_SIZE = 10**9
VALID_DEVICE_ID_LIST = [str(i) for i in range(16)]
MIN_SIZE = 1
MAX_CONFIG_SIZE = 10 * 1024 * 1024  # bytes
MAX_SIZE = 1024 * 1024 * 1024 * 1024  # bytes
MAX_FILE_SIZE = 500 * 1024 * 1024 * 1024  # bytes
MAX_RANK_SIZE = 4095
MIN_RANK_SIZE = 1
LOG_MAX_SIZE = 1024 * 1024  # bytes
DUMP_MIDIFY_GRAPH_FILE_MODE = 0o550  # (sic: Rec SDK's spelling)
MAX_DEVICE_ID = 15
HDFS_FILE_PREFIX = ["viewfs://", "hdfs://"]


class BaseEnum(Enum):
    """An Enum whose members can be looked up by value (or by member) with ``mapping``."""

    @classmethod
    def mapping(cls, key: Any) -> "BaseEnum":
        """The member whose value is ``key`` (or ``key.value`` when ``key`` is a member).

        Example:
            >>> All2allGradientsOp.mapping("sum_gradients") is All2allGradientsOp.SUM_GRADIENTS
            True

        Raises:
            KeyError: no member has that value; the message lists the valid values.
        """
        value = key.value if isinstance(key, Enum) else key
        for member in cls:
            if member.value == value:
                return member
        raise KeyError(f"{cls.__name__} has no member with value {key!r} ({type(key).__name__}); "
                       f"valid values: {[m.value for m in cls]}")


class EnvOption(Enum):
    """Environment variables Rec SDK reads (most only tune NPU-side threads and channels)."""

    MXREC_LOG_LEVEL = "MXREC_LOG_LEVEL"
    RANK_TABLE_FILE = "RANK_TABLE_FILE"
    ASCEND_VISIBLE_DEVICES = "ASCEND_VISIBLE_DEVICES"
    CM_CHIEF_DEVICE = "CM_CHIEF_DEVICE"
    CM_WORKER_SIZE = "CM_WORKER_SIZE"
    TF_DEVICE = "TF_DEVICE"
    APPLY_GRADIENTS_STRATEGY = "APPLY_GRADIENTS_STRATEGY"
    ACL_TIMEOUT = "AclTimeout"
    HD_CHANNEL_SIZE = "HD_CHANNEL_SIZE"
    KEY_PROCESS_THREAD_NUM = "KEY_PROCESS_THREAD_NUM"
    MAX_UNIQUE_THREAD_NUM = "MAX_UNIQUE_THREAD_NUM"
    FAST_UNIQUE = "FAST_UNIQUE"
    UPDATEEMB_V2 = "UpdateEmb_V2"
    HOT_EMB_UPDATE_STEP = "HOT_EMB_UPDATE_STEP"
    GLOG_STDERRTHREAHOLD = "GLOG_stderrthreshold"
    USE_COMBINE_FAAE = "USE_COMBINE_FAAE"
    STAT_ON = "STAT_ON"
    RECORD_KEY_COUNT = "RECORD_KEY_COUNT"
    OMPI_COMM_WORLD_SIZE = "OMPI_COMM_WORLD_SIZE"
    OMPI_COMM_WORLD_LOCAL_SIZE = "OMPI_COMM_WORLD_LOCAL_SIZE"
    OMPI_COMM_WORLD_RANK = "OMPI_COMM_WORLD_RANK"


class DataName(Enum):
    KEY = "key"
    EMBEDDING = "embedding"
    FEATURE_MAPPING = "feature_mapping"
    OFFSET = "offset"
    THRESHOLD = "threshold"
    VALID_LEN = "valid_len"
    VALID_BUCKET_NUM = "valid_bucket_num"


class DataAttr(Enum):
    SHAPE = "shape"
    DATATYPE = "data_type"


class ASCAnchorAttr(Enum):
    """Attributes Rec SDK attaches to a lookup's anchor tensors (kept for scripts that name them)."""

    TABLE_INSTANCE = "table_instance"
    IS_TRAINING = "is_training"
    RESTORE_VECTOR = "restore_vector"
    ID_OFFSETS = "id_offsets"
    FEATURE_SPEC = "feature_spec"
    ALL2ALL_MATRIX = "all2all_matrix"
    HOT_POS = "hot_pos"
    LOOKUP_RESULT = "lookup_result"
    MOCK_LOOKUP_RESULT = "mock_lookup_result"
    RESTORE_VECTOR_SECOND = "restore_vector_second"
    UNIQUE_KEYS = "unique_keys"
    GRADIENTS_STRATEGY = "gradients_strategy"
    IS_GRAD = "is_grad"


class MxRecMode(BaseEnum):
    ASC = "ASC"


class OptimizerType(Enum):
    LAZY_ADAM = "LazyAdam"
    SGD = "SGD"

    @staticmethod
    def get_optimizer_state_meta(mode: "OptimizerType") -> list:
        """Slot names of optimizer ``mode``."""
        if mode in OPTIMIZER_STATE_META:
            return OPTIMIZER_STATE_META[mode]
        raise ValueError(f"invalid optimizer type {mode!r}; valid: {[m.value for m in OptimizerType]}")


OPTIMIZER_STATE_META = {OptimizerType.LAZY_ADAM: ["momentum", "velocity"], OptimizerType.SGD: []}


class RecPyLogLevel(Enum):
    DEBUG = "DEBUG"
    INFO = "INFO"
    ERROR = "ERROR"


class RecCPPLogLevel(Enum):
    TRACE = "-2"
    DEBUG = "-1"
    INFO = "0"
    WARN = "1"
    ERROR = "2"


class TFDevice(Enum):
    CPU = "CPU"
    NPU = "NPU"
    GPU = "GPU"
    NONE = "NONE"


class Flag(Enum):
    TRUE = "1"
    FALSE = "0"


class AnchorDatasetOp(Enum):
    MODEL_DATASET = "ModelDataset"
    OPTIMIZE_DATASET = "OptimizeDataset"
    PREFETCH_DATASET = "PrefetchDataset"


class AnchorIteratorOp(Enum):
    ITERATOR_GET_NEXT = "IteratorGetNext"
    MAKE_ITERATOR = "MakeIterator"
    ONE_SHOT_ITERATOR = "OneShotIterator"


class All2allGradientsOp(BaseEnum):
    """How gradients of one key from several ranks are combined."""

    SUM_GRADIENTS = "sum_gradients"
    SUM_GRADIENTS_AND_DIV_BY_RANKSIZE = "sum_gradients_and_div_by_ranksize"


class ApplyGradientsStrategy(BaseEnum):
    """How a step's gradient rows of one key reach the hash optimizer (``APPLY_GRADIENTS_STRATEGY``).

    DIRECT_APPLY: each lookup's rows are applied as they come, one lookup after another.
    SUM_SAME_ID_GRADIENTS_AND_APPLY: a key's rows from every lookup are summed, then applied once.
    """

    DIRECT_APPLY = "direct_apply"
    SUM_SAME_ID_GRADIENTS_AND_APPLY = "sum_same_id_gradients_and_apply"


# incremental checkpoints (Rec SDK's names): a full checkpoint, and one holding what changed since the previous save
BASE_MODEL = "base"
DELTA_MODEL = "delta"
