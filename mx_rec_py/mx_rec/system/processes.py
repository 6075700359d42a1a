"""Whether a process still runs: how leftovers of killed jobs (save folders, SSD folders, converter
staging folders) are told from the work of a live one."""
import os


def pid_alive(pid: int) -> bool:
    """True when a process with id ``pid`` exists on this host (one owned by another user counts).

    Example:
        >>> pid_alive(os.getpid())
        True
    """
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
