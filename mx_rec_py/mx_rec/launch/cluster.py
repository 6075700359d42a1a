"""The rank-table-free scheme: ``run.sh ... IP`` with the cluster described by ``CM_*`` variables.

| variable         | meaning                                          |
|------------------|--------------------------------------------------|
| ``CM_CHIEF_IP``    | IP of the chief (rank 0's host)                  |
| ``CM_CHIEF_PORT``  | port the chief listens on (1..65535)             |
| ``CM_WORKER_IP``   | IP of this host, where the processes start       |
| ``CM_WORKER_SIZE`` | number of processes (ranks) to start             |

``horovodrun`` runs its own Gloo rendezvous server on the launching host and picks the port
itself (0.28 has no flag for it), so ``CM_CHIEF_IP`` / ``CM_CHIEF_PORT`` are checked and passed
to the processes unchanged; the processes start with ``-np CM_WORKER_SIZE -H CM_WORKER_IP:CM_WORKER_SIZE``.
"""
import ipaddress
import re
from dataclasses import dataclass
from typing import Dict, Mapping

from mx_rec.launch.errors import LaunchError

CM_VARIABLES = ("CM_CHIEF_IP", "CM_CHIEF_PORT", "CM_WORKER_IP", "CM_WORKER_SIZE")
_DIGITS = re.compile(r"[0-9]+")


@dataclass(frozen=True)
class ClusterEnv:
    """A validated rank-table-free cluster description."""

    ip: str
    chief_ip: str
    chief_port: int
    worker_ip: str
    worker_size: int

    def as_env(self) -> Dict[str, str]:
        """The ``CM_*`` variables, normalised, for the processes."""
        return {"CM_CHIEF_IP": self.chief_ip, "CM_CHIEF_PORT": str(self.chief_port),
                "CM_WORKER_IP": self.worker_ip, "CM_WORKER_SIZE": str(self.worker_size)}


def check_ip(value: str, name: str) -> str:
    """``value`` as a normalised IPv4 / IPv6 address.

    Raises:
        LaunchError: not an IP address; the message names ``name``.
    """
    try:
        return str(ipaddress.ip_address(value.strip()))
    except ValueError as err:
        raise LaunchError(f"invalid {name}={value!r}; valid values: an IPv4 or IPv6 address "
                          "such as 127.0.0.1") from err


def _positive_int(value: str, name: str, what: str, upper: int = 0) -> int:
    """``value`` as an int in ``1 .. upper`` (no upper bound when 0)."""
    text = value.strip()
    if not _DIGITS.fullmatch(text) or int(text) < 1 or (upper and int(text) > upper):
        bound = f"an integer 1..{upper}" if upper else "a positive integer"
        raise LaunchError(f"invalid {name}={value!r}; valid values: {bound} ({what})")
    return int(text)


def parse_cluster_env(env: Mapping[str, str], ip: str) -> ClusterEnv:
    """Check ``ip`` (run.sh's 5th argument) and the four ``CM_*`` variables of ``env``.

    Raises:
        LaunchError: a variable is missing (all missing ones are named) or invalid.
    """
    missing = [name for name in CM_VARIABLES if not env.get(name, "").strip()]
    if missing:
        raise LaunchError(f"IP {ip!r} given (rank-table-free scheme), but {', '.join(missing)} "
                          f"{'is' if len(missing) == 1 else 'are'} not set; set all of {', '.join(CM_VARIABLES)}")
    return ClusterEnv(
        ip=check_ip(ip, "IP (5th argument)"),
        chief_ip=check_ip(env["CM_CHIEF_IP"], "CM_CHIEF_IP"),
        chief_port=_positive_int(env["CM_CHIEF_PORT"], "CM_CHIEF_PORT", "the chief's port", upper=65535),
        worker_ip=check_ip(env["CM_WORKER_IP"], "CM_WORKER_IP"),
        worker_size=_positive_int(env["CM_WORKER_SIZE"], "CM_WORKER_SIZE", "the number of processes"),
    )
