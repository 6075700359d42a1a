"""Feature switches read from the environment, checked before any process starts.

| switch                  | values          | default            |
|-------------------------|-----------------|--------------------|
| ``USE_DYNAMIC``           | 0, 1            | 0                  |
| ``CACHE_MODE``            | HBM, DDR, SSD   | HBM                |
| ``USE_FAAE``              | 0, 1            | 0                  |
| ``USE_DYNAMIC_EXPANSION`` | 0, 1            | 0                  |
| ``USE_MULTI_LOOKUP``      | 0, 1            | 0                  |
| ``USE_MODIFY_GRAPH``      | 0, 1            | 0                  |
| ``TRAIN_RANK_SIZE``       | positive int    | the job's rank count |

An unset or empty variable takes its default: the values Rec SDK's model run.sh files (DLRM,
MMoE, Wide&Deep, DCNv2) export, so static shapes unless ``USE_DYNAMIC=1``. ``TRAIN_RANK_SIZE``, when set, must equal the
number of processes the rank table (or ``CM_WORKER_SIZE``) starts.
"""
import re
from dataclasses import dataclass
from typing import Dict, Mapping, Optional, Tuple

from mx_rec.launch.errors import LaunchError

CHOICES: Dict[str, Tuple[str, ...]] = {
    "USE_DYNAMIC": ("0", "1"),
    "CACHE_MODE": ("HBM", "DDR", "SSD"),
    "USE_FAAE": ("0", "1"),
    "USE_DYNAMIC_EXPANSION": ("0", "1"),
    "USE_MULTI_LOOKUP": ("0", "1"),
    "USE_MODIFY_GRAPH": ("0", "1"),
}
DEFAULTS: Dict[str, str] = {
    "USE_DYNAMIC": "0",
    "CACHE_MODE": "HBM",
    "USE_FAAE": "0",
    "USE_DYNAMIC_EXPANSION": "0",
    "USE_MULTI_LOOKUP": "0",
    "USE_MODIFY_GRAPH": "0",
}

_DIGITS = re.compile(r"[0-9]+")


@dataclass(frozen=True)
class Switches:
    """The resolved switches of one job (values as the processes will see them)."""

    use_dynamic: bool
    cache_mode: str
    use_faae: bool
    use_dynamic_expansion: bool
    use_multi_lookup: bool
    use_modify_graph: bool
    train_rank_size: int

    def as_env(self) -> Dict[str, str]:
        """The switches as environment variables, in table order."""
        return {
            "USE_DYNAMIC": str(int(self.use_dynamic)),
            "CACHE_MODE": self.cache_mode,
            "USE_FAAE": str(int(self.use_faae)),
            "USE_DYNAMIC_EXPANSION": str(int(self.use_dynamic_expansion)),
            "USE_MULTI_LOOKUP": str(int(self.use_multi_lookup)),
            "USE_MODIFY_GRAPH": str(int(self.use_modify_graph)),
            "TRAIN_RANK_SIZE": str(self.train_rank_size),
        }


def read_switch(env: Mapping[str, str], name: str) -> str:
    """The value of switch ``name`` (one of ``CHOICES``), or its default when unset or empty.

    Raises:
        LaunchError: the value is not one of the switch's valid values; the message lists them.
    """
    raw = env.get(name, "")
    value = raw.strip()
    if not value:
        return DEFAULTS[name]
    if value not in CHOICES[name]:
        raise LaunchError(f"invalid {name}={raw!r}; valid values: {', '.join(CHOICES[name])} "
                          f"(default {DEFAULTS[name]})")
    return value


def read_train_rank_size(env: Mapping[str, str], rank_size: int) -> int:
    """``TRAIN_RANK_SIZE`` checked against the job's ``rank_size``; ``rank_size`` when unset.

    Raises:
        LaunchError: not a positive integer, or different from ``rank_size``.
    """
    raw = env.get("TRAIN_RANK_SIZE", "")
    value: Optional[str] = raw.strip() or None
    if value is None:
        return rank_size
    if not _DIGITS.fullmatch(value) or int(value) < 1:
        raise LaunchError(f"invalid TRAIN_RANK_SIZE={raw!r}; valid values: a positive integer equal to "
                          f"the number of ranks ({rank_size}), or unset")
    if int(value) != rank_size:
        raise LaunchError(f"TRAIN_RANK_SIZE={value} does not match the {rank_size} ranks this job starts; "
                          f"set TRAIN_RANK_SIZE={rank_size} or unset it")
    return int(value)


def parse_switches(env: Mapping[str, str], rank_size: int) -> Switches:
    """All switches of a job of ``rank_size`` processes from ``env`` (e.g. ``os.environ``).

    Raises:
        LaunchError: the first invalid switch, with its valid values.
    """
    values = {name: read_switch(env, name) for name in CHOICES}
    return Switches(
        use_dynamic=values["USE_DYNAMIC"] == "1",
        cache_mode=values["CACHE_MODE"],
        use_faae=values["USE_FAAE"] == "1",
        use_dynamic_expansion=values["USE_DYNAMIC_EXPANSION"] == "1",
        use_multi_lookup=values["USE_MULTI_LOOKUP"] == "1",
        use_modify_graph=values["USE_MODIFY_GRAPH"] == "1",
        train_rank_size=read_train_rank_size(env, rank_size),
    )
