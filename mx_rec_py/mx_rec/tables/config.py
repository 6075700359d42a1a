"""``TableConfig``: the validated arguments of ``create_table``."""
import os
import re
from dataclasses import dataclass, field
from typing import Any, Optional, Tuple

import tensorflow as tf

from mx_rec.communication.gradient_reduction import GRADIENT_REDUCTIONS, GradientReduction
from mx_rec.constants.constants import All2allGradientsOp, MAX_EMB_DIM, MIN_EMB_DIM
from mx_rec.tables.extra_args import check_npu_switches, check_optimizer_list, check_padding_keys

_NAME_RE = re.compile(r"^[A-Za-z0-9_.\-]{1,255}$")
_KEY_DTYPES = (tf.int64, tf.int32)
_VALUE_DTYPES = (tf.float32, tf.float64)
HALF_DTYPES = (tf.float16, tf.bfloat16)  # storage_dtype / slot_dtype besides value_dtype (float32 math)


@dataclass(frozen=True)
class TableConfig:
    """What ``create_table`` was asked for; vocabulary sizes are global (all ranks together)."""

    table_name: str
    key_dtype: tf.DType
    dim: int
    emb_initializer: Any
    device_vocabulary_size: int
    host_vocabulary_size: int = 0
    ssd_vocabulary_size: int = 0
    ssd_data_path: Tuple[str, ...] = field(default_factory=lambda: (os.getcwd(),))
    is_save: bool = True
    is_dp: bool = False
    init_param: float = 1.0
    all2all_gradients_op: str = All2allGradientsOp.SUM_GRADIENTS.value
    value_dtype: tf.DType = tf.float32
    padding_keys: Tuple[int, ...] = ()  # sorted, distinct; ids that look up as padding when masked
    padding_keys_mask: bool = False
    padding_keys_len: Optional[int] = None  # the feature's length: static send_count when a lookup gives none
    enable_merge: bool = False  # NPU-only switches below: validated, logged, no effect
    shard_num: int = 1
    fusion_optimizer_var: bool = True
    hashtable_threshold: int = 0
    storage_dtype: Optional[tf.DType] = None  # mx_rec's own: the rows' dtype in memory (None: value_dtype)
    slot_dtype: Optional[tf.DType] = None  # mx_rec's own: the optimizer slots' dtype (None: value_dtype)

    def __post_init__(self) -> None:
        for name in ("storage_dtype", "slot_dtype"):
            if getattr(self, name) is None:
                object.__setattr__(self, name, self.value_dtype)

    @property
    def compact(self) -> bool:
        """Rows or slots are stored in float16 / bfloat16 (math, lookups and gradients stay value_dtype)."""
        return self.storage_dtype in HALF_DTYPES or self.slot_dtype in HALF_DTYPES

    @property
    def gradient_reduction(self) -> GradientReduction:
        """The strategy ``all2all_gradients_op`` names (``communication.gradient_reduction``)."""
        return GRADIENT_REDUCTIONS[self.all2all_gradients_op]

    @property
    def masked_keys(self) -> Tuple[int, ...]:
        """The ids that are padding (look up zeros, take no update) besides -1."""
        return self.padding_keys if self.padding_keys_mask else ()

    @property
    def init_shape(self) -> Tuple[int, int]:
        """``[vocabulary, dim]`` the initializers' fans are computed from: every tier, every rank."""
        return (self.device_vocabulary_size + self.host_vocabulary_size + self.ssd_vocabulary_size, self.dim)


def _int_in_range(table: str, name: str, value: Any, low: int, high: float) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"table '{table}': {name} must be an int, got {type(value).__name__} {value!r}")
    if not low <= value <= high:
        raise ValueError(f"table '{table}': {name}={value} is outside [{low}, {high}]")
    return value


def make_table_config(key_dtype, dim, name, emb_initializer, device_vocabulary_size=1, host_vocabulary_size=0,
                      ssd_vocabulary_size=0, ssd_data_path=None, is_save=True, is_dp=False, init_param=1.0,
                      all2all_gradients_op="sum_gradients", value_dtype=tf.float32, enable_merge=False,
                      padding_keys=None, padding_keys_mask=False, padding_keys_len=None, shard_num=1,
                      fusion_optimizer_var=True, hashtable_threshold=0, optimizer_list=None, *, storage_dtype=None,
                      slot_dtype=None) -> TableConfig:
    """Validate ``create_table`` arguments into a :class:`TableConfig`.

    Raises:
        TypeError / ValueError: naming the table and the argument at fault.
    """
    if not isinstance(name, str) or not _NAME_RE.match(name):
        raise ValueError(f"create_table: name must be 1-255 characters of [A-Za-z0-9_.-], got {name!r}")
    if isinstance(dim, tf.TensorShape):
        if dim.rank != 1:
            raise ValueError(f"table '{name}': dim as a tf.TensorShape must have one dimension, got {dim}")
        dim = dim.as_list()[0]
    dim = _int_in_range(name, "dim", dim, MIN_EMB_DIM, MAX_EMB_DIM)
    try:
        key_dtype = tf.as_dtype(key_dtype)
    except TypeError as err:
        raise TypeError(f"table '{name}': key_dtype {key_dtype!r} is not a dtype") from err
    if key_dtype not in _KEY_DTYPES:
        raise TypeError(f"table '{name}': key_dtype must be tf.int64 or tf.int32, got {key_dtype.name}")
    value_dtype = tf.as_dtype(value_dtype)
    if value_dtype not in _VALUE_DTYPES:
        raise TypeError(f"table '{name}': value_dtype must be tf.float32 or tf.float64, got {value_dtype.name}")
    device_vocabulary_size = _int_in_range(name, "device_vocabulary_size", device_vocabulary_size, 1, 2**40)
    host_vocabulary_size = _int_in_range(name, "host_vocabulary_size", host_vocabulary_size, 0, 2**40)
    ssd_vocabulary_size = _int_in_range(name, "ssd_vocabulary_size", ssd_vocabulary_size, 0, 2**40)
    if ssd_vocabulary_size and not host_vocabulary_size:
        raise ValueError(f"table '{name}': ssd_vocabulary_size needs host_vocabulary_size > 0 (SSD sits below DDR)")
    if isinstance(ssd_data_path, str):
        ssd_data_path = (ssd_data_path,)
    ssd_data_path = tuple(ssd_data_path) if ssd_data_path else (os.getcwd(),)
    ops = list(GRADIENT_REDUCTIONS)
    if all2all_gradients_op not in ops:
        raise ValueError(f"table '{name}': all2all_gradients_op must be one of {ops}, got {all2all_gradients_op!r}")
    if isinstance(init_param, bool) or not isinstance(init_param, (int, float)):
        raise TypeError(f"table '{name}': init_param must be a number, got {init_param!r}")
    if not -10.0 <= init_param <= 10.0:
        raise ValueError(f"table '{name}': init_param={init_param} is outside [-10, 10]")
    for flag, value in (("is_save", is_save), ("is_dp", is_dp)):
        if not isinstance(value, bool):
            raise TypeError(f"table '{name}': {flag} must be True or False, got {value!r}")
    key_range = (key_dtype.min, key_dtype.max)
    padding_keys, padding_keys_mask, padding_keys_len = check_padding_keys(name, key_range, padding_keys,
                                                                           padding_keys_mask, padding_keys_len)
    check_npu_switches(name, enable_merge, shard_num, fusion_optimizer_var, hashtable_threshold)
    check_optimizer_list(name, optimizer_list)
    storage_dtype = _storage_dtype(name, "storage_dtype", storage_dtype, value_dtype)
    slot_dtype = _storage_dtype(name, "slot_dtype", slot_dtype, value_dtype)
    if host_vocabulary_size and (storage_dtype in HALF_DTYPES or slot_dtype in HALF_DTYPES):
        raise ValueError(f"table '{name}': storage_dtype={storage_dtype.name} / slot_dtype={slot_dtype.name} is for "
                         "HBM tables only; in DDR/SSD mode (host_vocabulary_size > 0) rows and slots also live in "
                         "host memory and SSD files as value_dtype, so set host_vocabulary_size=0 or leave both "
                         "dtypes unset")
    return TableConfig(table_name=name, key_dtype=key_dtype, dim=dim, emb_initializer=emb_initializer,
                       device_vocabulary_size=device_vocabulary_size, host_vocabulary_size=host_vocabulary_size,
                       ssd_vocabulary_size=ssd_vocabulary_size, ssd_data_path=ssd_data_path, is_save=is_save,
                       is_dp=is_dp, init_param=float(init_param), all2all_gradients_op=all2all_gradients_op,
                       value_dtype=value_dtype, padding_keys=padding_keys, padding_keys_mask=padding_keys_mask,
                       padding_keys_len=padding_keys_len, enable_merge=bool(enable_merge), shard_num=int(shard_num),
                       fusion_optimizer_var=bool(fusion_optimizer_var), hashtable_threshold=int(hashtable_threshold),
                       storage_dtype=storage_dtype, slot_dtype=slot_dtype)


def _storage_dtype(table: str, name: str, dtype, value_dtype: tf.DType) -> tf.DType:
    """``storage_dtype`` / ``slot_dtype``: None (value_dtype), value_dtype, or float16 / bfloat16 over float32."""
    if dtype is None:
        return value_dtype
    try:
        dtype = tf.as_dtype(dtype)
    except TypeError as err:
        raise TypeError(f"table '{table}': {name} {dtype!r} is not a dtype") from err
    if dtype == value_dtype:
        return dtype
    if dtype not in HALF_DTYPES:
        raise TypeError(f"table '{table}': {name} must be None, value_dtype ({value_dtype.name}), tf.float16 or "
                        f"tf.bfloat16, got {dtype.name}")
    if value_dtype != tf.float32:
        raise TypeError(f"table '{table}': {name}={dtype.name} needs value_dtype=tf.float32 (the math, lookups and "
                        f"gradients stay float32), got value_dtype={value_dtype.name}")
    return dtype
