"""The keyword arguments ``init()`` accepts, with their types, ranges and defaults.

Every keyword of Rec SDK's ``init`` is accepted. Those that only tune an NPU (``use_lccl``,
``use_shm_swap``, ``bind_cpu``, ...) are validated, have no effect here, and say so once in the
log. ``is_incremental_checkpoint=True`` turns on delta checkpoints (``mx_rec.saver.delta``): a base
every ``save_checkpoint_due_time`` seconds, a delta every ``save_delta_checkpoints_secs``, deltas
without keys seen fewer than ``recent_key_count_threshold`` times, and restores of the step
``restore_model_version``; without it those keywords have no effect (logged once).
"""
from dataclasses import dataclass
from typing import Any, Dict

from mx_rec.constants.constants import MAX_INT32
from mx_rec.system.log import log_once


@dataclass(frozen=True)
class _Param:
    kind: type
    default: Any
    low: int = -1
    high: int = MAX_INT32
    optional: bool = False  # None is accepted (the keyword was not given)


# -1 for a step count means "not limited / not used", as in Rec SDK.
INIT_PARAMS: Dict[str, _Param] = {
    "train_steps": _Param(int, -1),
    "eval_steps": _Param(int, -1),
    "max_steps": _Param(int, -1),
    "save_steps": _Param(int, -1),
    "if_load": _Param(bool, False),
    "use_dynamic": _Param(bool, True),
    "use_dynamic_expansion": _Param(bool, False),
    "use_hot": _Param(bool, False),
    "bind_cpu": _Param(bool, True),
    "use_mpi": _Param(bool, True),
    # merge training lookups of one table (mx_rec.lookup.merge); default: USE_MULTI_LOOKUP=1 in the environment
    "use_multi_lookup": _Param(bool, False),
    "use_lccl": _Param(bool, False),
    "use_shm_swap": _Param(bool, False),
    # incremental (delta) checkpoints (mx_rec.saver.delta, mx_rec.saver.delta_schedule)
    "is_incremental_checkpoint": _Param(bool, False),
    "save_checkpoint_due_time": _Param(int, None, low=1, optional=True),
    "save_delta_checkpoints_secs": _Param(int, None, low=1, optional=True),
    "restore_model_version": _Param(int, None, low=0, optional=True),
    "recent_key_count_threshold": _Param(int, 0, low=0),
}

# keyword -> what it does on an NPU; here it changes nothing (logged once when set to a non-default value)
NPU_ONLY: Dict[str, str] = {
    "use_lccl": "LCCL collective operators on Ascend devices",
    "use_shm_swap": "PCIe shared-memory swaps between host and device",
    "bind_cpu": "binding the host pipeline threads to CPU cores",
    "use_hot": "the hot-embedding cache on the device",
    "use_mpi": "MPI as the host-side launcher (horovodrun --gloo starts the ranks here)",
}
_INCREMENTAL_ONLY = ("save_checkpoint_due_time", "save_delta_checkpoints_secs", "recent_key_count_threshold",
                     "restore_model_version")


def _check_value(name: str, spec: _Param, value: Any) -> None:
    if value is None and spec.optional:
        return
    if spec.kind is bool:
        if not isinstance(value, bool):
            raise ValueError(f"init(): {name} must be True or False, got {value!r}")
        return
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"init(): {name} must be an int, got {value!r}")
    if not spec.low <= value <= spec.high:
        raise ValueError(f"init(): {name}={value} is outside [{spec.low}, {spec.high}]")


def validate_init_kwargs(kwargs: Dict[str, Any]) -> Dict[str, Any]:
    """Check ``init()`` keywords and fill defaults.

    Raises:
        ValueError: an unknown keyword, a value of the wrong type, or one out of range;
            the message names the keyword and what it accepts.
    """
    unknown = sorted(set(kwargs) - set(INIT_PARAMS))
    if unknown:
        raise ValueError(f"init(): unknown keyword(s) {unknown}; accepted: {sorted(INIT_PARAMS)}")
    values = {}
    for name, spec in INIT_PARAMS.items():
        value = kwargs.get(name, spec.default)
        _check_value(name, spec, value)
        values[name] = value
    check_incremental(values)
    _log_no_effect(values)
    return values


def check_incremental(values: Dict[str, Any]) -> None:
    """Check the incremental-checkpoint settings together.

    Raises:
        ValueError: ``is_incremental_checkpoint=True`` without both intervals (Rec SDK requires them),
            or a full-save interval shorter than the delta interval.
    """
    if values["is_incremental_checkpoint"]:
        missing = [n for n in ("save_checkpoint_due_time", "save_delta_checkpoints_secs") if values[n] is None]
        if missing:
            raise ValueError(f"init(): is_incremental_checkpoint=True needs {' and '.join(missing)} "
                             "(seconds between full and between delta saves)")
        if values["save_checkpoint_due_time"] < values["save_delta_checkpoints_secs"]:
            raise ValueError(f"init(): save_checkpoint_due_time={values['save_checkpoint_due_time']} must not be "
                             f"shorter than save_delta_checkpoints_secs={values['save_delta_checkpoints_secs']}")


def _log_no_effect(values: Dict[str, Any]) -> None:
    """One log line per keyword (per process) that was set but changes nothing here."""
    for name, what in NPU_ONLY.items():
        if values[name] != INIT_PARAMS[name].default:
            log_once(f"init:{name}", "init(%s=%r): %s is NPU-only; it has no effect here", name, values[name], what)
    for name in () if values["is_incremental_checkpoint"] else _INCREMENTAL_ONLY:
        if values[name] not in (None, INIT_PARAMS[name].default):
            log_once(f"init:{name}", "init(%s=%r): only used with is_incremental_checkpoint=True; it has no effect "
                     "here", name, values[name])

