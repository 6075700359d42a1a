"""The feature switches of a model-zoo job, read from the environment.

run.sh checks and exports them (``mx_rec.launch.switches``); a ``main_mxrec.py`` started by hand
reads the same variables with the same defaults and the same checks:

| switch                  | effect here |
|-------------------------|-------------|
| ``USE_DYNAMIC``=0         | ``init(use_dynamic=False)``; every lookup gets a ``send_count`` (static shapes) |
| ``CACHE_MODE``=DDR/SSD    | tables get ``host_vocabulary_size`` (and ``ssd_vocabulary_size``, ``ssd_data_path``) |
| ``USE_FAAE``=1            | admission: a key is trained only after ``access_threshold`` sightings |
| ``USE_DYNAMIC_EXPANSION``=1 | ``init(use_dynamic_expansion=True)``; sparse updates by address |
| ``USE_MULTI_LOOKUP``=1    | the shared table is looked up once per field; the SDK merges those lookups into one |
| ``USE_MODIFY_GRAPH``=1    | lookups get iterator tensors (``modify_graph=True``); the SDK rewires the pipelines |
"""
import os
from dataclasses import dataclass
from typing import Any, Dict, Mapping, Optional

from mx_rec.launch.errors import LaunchError
from mx_rec.launch.switches import parse_switches


class SwitchError(SystemExit):
    """A switch this job cannot honour; exits the process with the message (code 2)."""

    def __init__(self, message: str) -> None:
        super().__init__(f"main_mxrec.py: error: {message}")


@dataclass(frozen=True)
class JobSwitches:
    """The switches of this process (see the module docstring)."""

    use_dynamic: bool = True
    cache_mode: str = "HBM"
    use_faae: bool = False
    use_dynamic_expansion: bool = False
    use_multi_lookup: bool = False
    use_modify_graph: bool = False

    def init_kwargs(self) -> Dict[str, Any]:
        """Keywords for ``mx_rec.util.initialize.init``."""
        return {"use_dynamic": self.use_dynamic, "use_dynamic_expansion": self.use_dynamic_expansion,
                "use_multi_lookup": self.use_multi_lookup}

    def describe(self) -> str:
        return (f"USE_DYNAMIC={int(self.use_dynamic)} CACHE_MODE={self.cache_mode} USE_FAAE={int(self.use_faae)} "
                f"USE_DYNAMIC_EXPANSION={int(self.use_dynamic_expansion)} "
                f"USE_MULTI_LOOKUP={int(self.use_multi_lookup)} USE_MODIFY_GRAPH={int(self.use_modify_graph)}")


def read_switches(env: Optional[Mapping[str, str]] = None) -> JobSwitches:
    """The switches from ``env`` (default ``os.environ``), checked as run.sh checks them.

    The rank count for ``TRAIN_RANK_SIZE`` is Horovod's (``HOROVOD_SIZE``, 1 outside ``horovodrun``).

    Raises:
        SwitchError: an invalid value (the message lists the valid ones).
    """
    env = os.environ if env is None else env
    rank_size = int(env.get("HOROVOD_SIZE", "1") or 1)
    try:
        switches = parse_switches(env, rank_size)
    except LaunchError as err:
        raise SwitchError(str(err)) from None
    return JobSwitches(use_dynamic=switches.use_dynamic, cache_mode=switches.cache_mode,
                       use_faae=switches.use_faae, use_dynamic_expansion=switches.use_dynamic_expansion,
                       use_multi_lookup=switches.use_multi_lookup, use_modify_graph=switches.use_modify_graph)
