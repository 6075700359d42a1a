"""The ``create_table`` arguments beyond the storage ones: padding keys and the NPU-only switches.

Padding keys (Rec SDK's ``padding_keys``, ``padding_keys_mask``, ``padding_keys_len``):

- ``padding_keys`` (an int or a list of ints of the key dtype) with ``padding_keys_mask=True`` and
  ``padding_keys_len`` (an int): ids equal to a padding key are padding, exactly as ``-1`` is: they
  look up zeros, own no row (nothing is admitted, counted, saved or evicted for them), take no
  update, and do not count towards ``send_count``. ``padding_keys_len`` is the feature's length
  (usually batch size x ids per sample): in static-shape mode it is the ``send_count`` of a lookup
  that gives none. (Rec SDK gives a padding key its initial row, frozen; here it reads zeros, as
  every padding id does, in training, evaluation and exported models alike.)
- ``padding_keys`` with ``padding_keys_mask=False``: Rec SDK refuses the pair; here the keys are
  ordinary keys (they get rows and train, which is what the mask being off means) and a line is
  logged once saying so. ``padding_keys_len`` still sets the static ``send_count``.
- ``padding_keys_mask=True`` without ``padding_keys``, or ``padding_keys`` without
  ``padding_keys_len``, is an error naming the table, as in Rec SDK.

NPU-only switches, accepted and validated as Rec SDK does, logged once as having no effect here:
``shard_num`` (device partitions of the table's memory), ``fusion_optimizer_var`` (fused optimizer
slots in one device buffer), ``hashtable_threshold`` (linear vs hash table on the device) and
``enable_merge`` (merging same-shaped tables into one to save host threads and device channels;
each table here already shares the process's threads, so there is nothing to merge).
"""
from typing import Any, Optional, Tuple

import numpy as np

from mx_rec.system.log import log_once

MAX_PADDING_KEYS = 2**31 - 1
MAX_SHARD_NUM = 8192
MAX_HASHTABLE_THRESHOLD = 2**31 - 1
NO_EFFECT_DEFAULTS = {"enable_merge": False, "shard_num": 1, "fusion_optimizer_var": True, "hashtable_threshold": 0}
_NO_EFFECT_WHY = {
    "enable_merge": "tables here share the process's host threads and collectives, there is nothing to merge",
    "shard_num": "it partitions a table's NPU memory; a table here is one variable per rank",
    "fusion_optimizer_var": "it fuses optimizer slots into one NPU buffer; slots here are separate variables",
    "hashtable_threshold": "it picks an NPU linear or hash table; keys here always go through the host index",
}


def _plain_int(value: Any) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_))


def check_padding_keys(table: str, key_range: Tuple[int, int], padding_keys, padding_keys_mask,
                       padding_keys_len) -> Tuple[Tuple[int, ...], bool, Optional[int]]:
    """Validate Rec SDK's padding-key arguments.

    Args:
        key_range: (lowest, highest) key of the table's key dtype.

    Returns:
        (padding keys: sorted distinct ints, mask: bool, length: int or None).

    Raises:
        TypeError / ValueError: naming the table and the argument.
    """
    if not isinstance(padding_keys_mask, (bool, np.bool_)):
        raise TypeError(f"table '{table}': padding_keys_mask must be True or False, got {padding_keys_mask!r}")
    if padding_keys_len is not None:
        if not _plain_int(padding_keys_len) or not 1 <= int(padding_keys_len) <= 2**31 - 1:
            raise ValueError(f"table '{table}': padding_keys_len must be an int in [1, 2147483647] (the feature's "
                             f"length, e.g. batch size x ids per sample), got {padding_keys_len!r}")
        padding_keys_len = int(padding_keys_len)
    if padding_keys is None:
        if padding_keys_mask:
            raise ValueError(f"table '{table}': padding_keys_mask=True needs padding_keys (the ids to mask)")
        if padding_keys_len is not None:
            raise ValueError(f"table '{table}': padding_keys_len={padding_keys_len} needs padding_keys")
        return (), False, None
    keys = [padding_keys] if _plain_int(padding_keys) else padding_keys
    if not isinstance(keys, (list, tuple, np.ndarray)) or not all(_plain_int(k) for k in keys):
        raise TypeError(f"table '{table}': padding_keys must be an int or a list of ints, got {padding_keys!r}")
    if not 1 <= len(keys) <= MAX_PADDING_KEYS:
        raise ValueError(f"table '{table}': padding_keys must hold at least one key, got {padding_keys!r}")
    low, high = key_range
    bad = [int(k) for k in keys if not low <= int(k) <= high]
    if bad:
        raise ValueError(f"table '{table}': padding keys {bad[:5]} are outside the key dtype's range [{low}, {high}]")
    if padding_keys_len is None:
        raise ValueError(f"table '{table}': padding_keys needs padding_keys_len (the feature's length, e.g. "
                         "batch size x ids per sample), as in Rec SDK")
    if not padding_keys_mask:
        log_once(f"padding_unmasked:{table}",
                 f"table '{table}': padding_keys without padding_keys_mask=True are ordinary keys (they get rows "
                 "and train); Rec SDK refuses this pair. Set padding_keys_mask=True to make them padding.")
    return tuple(sorted({int(k) for k in keys})), bool(padding_keys_mask), padding_keys_len


def check_npu_switches(table: str, enable_merge, shard_num, fusion_optimizer_var, hashtable_threshold) -> None:
    """Validate the NPU-only switches as Rec SDK does; log once each one set to a non-default value.

    Raises:
        TypeError / ValueError: naming the table and the argument.
    """
    for flag, value in (("enable_merge", enable_merge), ("fusion_optimizer_var", fusion_optimizer_var)):
        if not isinstance(value, (bool, np.bool_)):
            raise TypeError(f"table '{table}': {flag} must be True or False, got {value!r}")
    for name, value, high in (("shard_num", shard_num, MAX_SHARD_NUM),
                              ("hashtable_threshold", hashtable_threshold, MAX_HASHTABLE_THRESHOLD)):
        low = 1 if name == "shard_num" else 0
        if not _plain_int(value) or not low <= int(value) <= high:
            raise ValueError(f"table '{table}': {name} must be an int in [{low}, {high}], got {value!r}")
    given = {"enable_merge": enable_merge, "shard_num": shard_num, "fusion_optimizer_var": fusion_optimizer_var,
             "hashtable_threshold": hashtable_threshold}
    for name, value in given.items():
        if value != NO_EFFECT_DEFAULTS[name]:
            log_once(f"no_effect:{name}", f"create_table: {name}={value!r} has no effect here ({_NO_EFFECT_WHY[name]})")


def check_optimizer_list(table: str, optimizer_list) -> None:
    """Older Rec SDK scripts pass ``optimizer_list=`` to ``create_table``; the hash optimizers
    created before the table already follow it, so the list is checked and otherwise unused."""
    if optimizer_list is None:
        return
    if not isinstance(optimizer_list, (list, tuple)):
        raise TypeError(f"table '{table}': optimizer_list must be a list of hash optimizers, got {optimizer_list!r}")
    log_once("no_effect:optimizer_list", "create_table: optimizer_list has no effect here (every hash optimizer "
             "created before a table follows its rows)")
