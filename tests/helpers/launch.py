"""What the launcher's tests share: the fixture rank tables, the package path run.sh is given, a
rank-table builder and the ``IP`` scheme's cluster variables (``tests/unit/launch`` and
``tests/e2e/test_run_sh.py``)."""
from typing import Dict, Sequence

from tests.paths import REPO

PKG = REPO / "mx_rec_py" / "mx_rec"
TABLES = REPO / "tests" / "e2e" / "rank_tables"
CM_ENV = {"CM_CHIEF_IP": "127.0.0.1", "CM_CHIEF_PORT": "60001", "CM_WORKER_IP": "127.0.0.1", "CM_WORKER_SIZE": "2"}


def rank_table(version: str = "2.0", ranks: Sequence[Sequence[int]] = ((0, 1),),
               hosts: Sequence[str] = ("127.0.0.1",)) -> Dict:
    """A server-list rank table: ``ranks[i]`` are the rank ids of ``hosts[i]``.

    Example: ``rank_table(ranks=[(2, 3), (0, 1)], hosts=["10.0.0.2", "10.0.0.1"])`` is 4 ranks on 2 servers.
    """
    return {"version": version, "server_count": str(len(hosts)), "status": "completed",
            "server_list": [{"server_id": host,
                             "device": [{"device_id": str(d), "device_ip": f"192.168.{d}.1", "rank_id": str(r)}
                                        for d, r in enumerate(rank_ids)]}
                            for host, rank_ids in zip(hosts, ranks)]}
