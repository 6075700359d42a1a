"""The keyword arguments ``init()`` accepts, with their types, ranges and defaults."""
from dataclasses import dataclass
from typing import Any, Dict

from mx_rec.constants.constants import MAX_INT32


@dataclass(frozen=True)
class _Param:
    kind: type
    default: Any
    low: int = -1
    high: int = MAX_INT32


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
}


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
        if spec.kind is bool:
            if not isinstance(value, bool):
                raise ValueError(f"init(): {name} must be True or False, got {value!r}")
        else:
            if isinstance(value, bool) or not isinstance(value, int):
                raise ValueError(f"init(): {name} must be an int, got {value!r}")
            if not spec.low <= value <= spec.high:
                raise ValueError(f"init(): {name}={value} is outside [{spec.low}, {spec.high}]")
        values[name] = value
    return values
