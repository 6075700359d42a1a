"""Admission and eviction settings of a table, gathered from FeatureSpecs or ``access_and_evict_config``."""
from dataclasses import dataclass
from typing import Optional

_CONFIG_KEYS = ("access_threshold", "eviction_threshold", "faae_coefficient")


@dataclass
class Lifecycle:
    """When a key gets a row (admission) and when it loses it (eviction).

    Attributes:
        access_threshold: count at which a key is admitted (None: admit on first sight).
        eviction_threshold: seconds (of batch timestamps) a key may go unseen before eviction (None: never).
        faae_coefficient: weight of one sighting in the count.
    """

    access_threshold: Optional[int] = None
    eviction_threshold: Optional[int] = None
    faae_coefficient: int = 1

    @property
    def counts(self) -> bool:
        return self.access_threshold is not None or self.eviction_threshold is not None

    @property
    def evicts(self) -> bool:
        return self.eviction_threshold is not None


def _check(table_name: str, name: str, value, low: int) -> None:
    if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < low):
        raise ValueError(f"table '{table_name}': {name} must be an int >= {low}, got {value!r}")


def make_lifecycle(table_name: str, access_threshold=None, eviction_threshold=None,
                   faae_coefficient=1) -> Lifecycle:
    """Validate settings; eviction needs admission (as in Rec SDK).

    Raises:
        ValueError: naming the table and the setting.
    """
    _check(table_name, "access_threshold", access_threshold, 0)
    _check(table_name, "eviction_threshold", eviction_threshold, 0)
    _check(table_name, "faae_coefficient", faae_coefficient, 1)
    if eviction_threshold is not None and access_threshold is None:
        raise ValueError(f"table '{table_name}': eviction_threshold needs access_threshold (eviction without "
                         "admission is not supported, as in Rec SDK); set access_threshold=0 to admit every key")
    return Lifecycle(access_threshold, eviction_threshold, faae_coefficient)


def lifecycle_from_dict(table_name: str, config: dict) -> Lifecycle:
    """``sparse_lookup(..., access_and_evict_config={...})`` to a :class:`Lifecycle`."""
    if not isinstance(config, dict):
        raise TypeError(f"table '{table_name}': access_and_evict_config must be a dict, got {config!r}")
    unknown = sorted(set(config) - set(_CONFIG_KEYS))
    if unknown:
        raise ValueError(f"table '{table_name}': unknown access_and_evict_config key(s) {unknown}; "
                         f"accepted: {list(_CONFIG_KEYS)}")
    return make_lifecycle(table_name, config.get("access_threshold"), config.get("eviction_threshold"),
                          config.get("faae_coefficient", 1))
