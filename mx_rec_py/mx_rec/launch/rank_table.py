"""HCCL rank tables (``HCCL_JSON``): which ranks run on which hosts.

Three shapes are read, all with ``"status": "completed"``:

version 1.0 / 2.0, server list (one entry per host, one device per rank)::

    {"version": "1.0", "server_count": "1", "status": "completed",
     "server_list": [{"server_id": "127.0.0.1",
                      "device": [{"device_id": "0", "device_ip": "192.168.100.101", "rank_id": "0"},
                                 {"device_id": "1", "device_ip": "192.168.101.101", "rank_id": "1"}]}]}

version 1.0, group list (older files; one instance per rank, ``rank_id`` on the instance)::

    {"version": "1.0", "status": "completed", "group_count": "1",
     "group_list": [{"group_name": "hccl_world_group", "instance_count": "2",
                     "instance_list": [{"rank_id": "0", "server_id": "127.0.0.1",
                                        "devices": [{"device_id": "0", "device_ip": "192.168.100.101"}]},
                                       ...]}]}

Numbers may be JSON strings (as HCCL writes them) or integers. Rank ids must be exactly
``0 .. N-1`` and, because ``horovodrun`` numbers ranks host by host, each host's ranks must be
one contiguous block.
"""
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, List, Mapping, Sequence, Tuple

from mx_rec.launch.errors import LaunchError

SUPPORTED_VERSIONS = ("1.0", "2.0")

_DIGITS = re.compile(r"[0-9]+")


@dataclass(frozen=True)
class Device:
    """One rank of the table: its host (``server_id``), device id and rank id."""

    rank_id: int
    server_id: str
    device_id: int
    device_ip: str = ""


@dataclass(frozen=True)
class RankTable:
    """A validated rank table.

    Attributes:
        source: the file (or a label) the table came from, for messages.
        version: "1.0" or "2.0".
        devices: every rank, sorted by ``rank_id`` (0 .. N-1).
    """

    source: str
    version: str
    devices: Tuple[Device, ...]

    @property
    def rank_size(self) -> int:
        """Number of ranks (= processes to start)."""
        return len(self.devices)

    def hosts(self) -> List[Tuple[str, int]]:
        """``(host, slots)`` per server in rank order, as ``horovodrun -H host:slots,...`` wants them."""
        hosts: List[Tuple[str, int]] = []
        for device in self.devices:
            if hosts and hosts[-1][0] == device.server_id:
                hosts[-1] = (device.server_id, hosts[-1][1] + 1)
            else:
                hosts.append((device.server_id, 1))
        return hosts


def load_rank_table(path: Path) -> RankTable:
    """Read and validate the rank table at ``path``.

    Raises:
        LaunchError: the file is missing, unreadable, not JSON, or not a valid rank table; the
            message names the file.
    """
    path = Path(path)
    if not path.exists():
        raise LaunchError(f"HCCL_JSON: rank table file not found: {path}")
    if not path.is_file():
        raise LaunchError(f"HCCL_JSON: {path} is not a file (expected an HCCL rank table .json)")
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as err:
        raise LaunchError(f"HCCL_JSON: cannot read rank table {path}: {err}") from err
    try:
        data = json.loads(text)
    except json.JSONDecodeError as err:
        raise LaunchError(f"HCCL_JSON: rank table {path} is not valid JSON "
                          f"(line {err.lineno}, column {err.colno}: {err.msg})") from err
    return parse_rank_table(data, source=str(path))


def parse_rank_table(data: Any, source: str = "<rank table>") -> RankTable:
    """Validate a decoded rank table (``json.loads`` output) and list its ranks.

    Args:
        data: the decoded JSON document.
        source: name used in messages (normally the file path).

    Raises:
        LaunchError: unknown version, status not "completed", no devices, bad or duplicate
            rank ids, ids not 0..N-1, a ``server_count`` that disagrees with ``server_list``,
            or a host whose ranks are not contiguous.
    """
    where = f"HCCL_JSON {source}"
    if not isinstance(data, dict):
        raise LaunchError(f"{where}: expected a JSON object at the top level, got {type(data).__name__}")
    version = str(data.get("version", "")).strip()
    if version not in SUPPORTED_VERSIONS:
        shown = repr(data["version"]) if "version" in data else "missing"
        raise LaunchError(f"{where}: unknown rank table version {shown}; "
                          f"supported versions: {', '.join(SUPPORTED_VERSIONS)}")
    status = data.get("status", "completed")
    if status != "completed":
        raise LaunchError(f"{where}: status is {status!r}, expected 'completed' (the table is not final)")
    if "server_list" in data:
        devices = _devices_of_server_list(data, where)
    elif version == "1.0" and "group_list" in data:
        devices = _devices_of_group_list(data["group_list"], where)
    else:
        wanted = "'server_list' or 'group_list'" if version == "1.0" else "'server_list'"
        raise LaunchError(f"{where}: version {version} table has no {wanted}")
    if not devices:
        raise LaunchError(f"{where}: the table lists no devices (no ranks to start)")
    ordered = _check_rank_ids(devices, where)
    _check_hosts(ordered, where)
    return RankTable(source=source, version=version, devices=tuple(ordered))


def _devices_of_server_list(data: Mapping[str, Any], where: str) -> List[Device]:
    """Ranks of a ``server_list`` table (versions 1.0 and 2.0)."""
    servers = data["server_list"]
    if not isinstance(servers, list):
        raise LaunchError(f"{where}: 'server_list' must be a list, got {type(servers).__name__}")
    if "server_count" in data:
        count = _as_int(data["server_count"], "server_count", where)
        if count != len(servers):
            raise LaunchError(f"{where}: server_count is {count} but server_list has {len(servers)} entries")
    devices: List[Device] = []
    seen_servers: Dict[str, int] = {}
    for index, server in enumerate(servers):
        label = f"server_list[{index}]"
        if not isinstance(server, dict):
            raise LaunchError(f"{where}: {label} must be an object")
        server_id = _server_id(server, label, where)
        if server_id in seen_servers:
            raise LaunchError(f"{where}: server_id {server_id!r} appears twice in server_list "
                              f"(entries {seen_servers[server_id]} and {index})")
        seen_servers[server_id] = index
        entries = server.get("device")
        if not isinstance(entries, list) or not entries:
            raise LaunchError(f"{where}: {label} ({server_id}) has no 'device' list or it is empty")
        for dev_index, entry in enumerate(entries):
            dev_label = f"{label}.device[{dev_index}]"
            if not isinstance(entry, dict):
                raise LaunchError(f"{where}: {dev_label} must be an object")
            devices.append(_device(entry, entry.get("rank_id"), server_id, dev_label, where))
    _check_device_ids(devices, where)
    return devices


def _devices_of_group_list(groups: Any, where: str) -> List[Device]:
    """Ranks of an older version 1.0 ``group_list`` table (``rank_id`` on each instance)."""
    if not isinstance(groups, list):
        raise LaunchError(f"{where}: 'group_list' must be a list, got {type(groups).__name__}")
    devices: List[Device] = []
    for g_index, group in enumerate(groups):
        if not isinstance(group, dict) or not isinstance(group.get("instance_list"), list):
            raise LaunchError(f"{where}: group_list[{g_index}] has no 'instance_list' list")
        for i_index, instance in enumerate(group["instance_list"]):
            label = f"group_list[{g_index}].instance_list[{i_index}]"
            if not isinstance(instance, dict):
                raise LaunchError(f"{where}: {label} must be an object")
            server_id = _server_id(instance, label, where)
            entries = instance.get("devices")
            if not isinstance(entries, list) or len(entries) != 1 or not isinstance(entries[0], dict):
                raise LaunchError(f"{where}: {label} must hold exactly one device in 'devices' (one per rank)")
            devices.append(_device(entries[0], instance.get("rank_id"), server_id, label, where))
    _check_device_ids(devices, where)
    return devices


def _server_id(entry: Mapping[str, Any], label: str, where: str) -> str:
    """The non-empty ``server_id`` (host name or IP) of a server or instance entry."""
    server_id = entry.get("server_id")
    if not isinstance(server_id, str) or not server_id.strip():
        raise LaunchError(f"{where}: {label} has no 'server_id' (the host's IP or name)")
    return server_id.strip()


def _device(entry: Mapping[str, Any], rank_id: Any, server_id: str, label: str, where: str) -> Device:
    """One ``Device`` from a device entry; ``rank_id`` comes from the entry or its instance."""
    if rank_id is None:
        raise LaunchError(f"{where}: {label} has no 'rank_id'")
    if "device_id" not in entry:
        raise LaunchError(f"{where}: {label} has no 'device_id'")
    return Device(rank_id=_as_int(rank_id, f"{label}.rank_id", where), server_id=server_id,
                  device_id=_as_int(entry["device_id"], f"{label}.device_id", where),
                  device_ip=str(entry.get("device_ip", "")))


def _as_int(value: Any, label: str, where: str) -> int:
    """A non-negative int from a JSON int or a decimal string."""
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        raise LaunchError(f"{where}: {label} must be a non-negative integer, got {value!r}")
    text = str(value).strip()
    if not _DIGITS.fullmatch(text):
        raise LaunchError(f"{where}: {label} must be a non-negative integer, got {value!r}")
    return int(text)


def _check_device_ids(devices: Sequence[Device], where: str) -> None:
    """No device id twice on one host."""
    seen = set()
    for device in devices:
        key = (device.server_id, device.device_id)
        if key in seen:
            raise LaunchError(f"{where}: device_id {device.device_id} appears twice on server {device.server_id}")
        seen.add(key)


def _check_rank_ids(devices: Sequence[Device], where: str) -> List[Device]:
    """The devices sorted by rank id, after checking the ids are exactly 0 .. N-1."""
    by_rank: Dict[int, Device] = {}
    for device in devices:
        if device.rank_id in by_rank:
            raise LaunchError(f"{where}: duplicate rank_id {device.rank_id} (on servers "
                              f"{by_rank[device.rank_id].server_id} and {device.server_id})")
        by_rank[device.rank_id] = device
    expected = set(range(len(devices)))
    if set(by_rank) != expected:
        missing = sorted(expected - set(by_rank))
        extra = sorted(set(by_rank) - expected)
        raise LaunchError(f"{where}: rank ids must be 0..{len(devices) - 1} for {len(devices)} devices; "
                          f"missing {missing}, out of range {extra}")
    return [by_rank[rank] for rank in range(len(devices))]


def _check_hosts(ordered: Sequence[Device], where: str) -> None:
    """Each host's ranks form one contiguous block (horovodrun assigns ranks host by host)."""
    finished = set()
    previous = None
    for device in ordered:
        if device.server_id != previous:
            if device.server_id in finished:
                raise LaunchError(f"{where}: the ranks of server {device.server_id} are not contiguous "
                                  f"(rank {device.rank_id} comes after another server's); horovodrun "
                                  "numbers ranks host by host, so give each server one block of rank ids")
            if previous is not None:
                finished.add(previous)
            previous = device.server_id
