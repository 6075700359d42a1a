"""A converter's output folder, replaced whole or not at all.

Every converter (``tools/criteo/convert.py``, ``tools/criteo/synthetic.py``, ``models/mmoe/census.py``)
writes into a fresh folder beside its ``--output_path`` and swaps it into place only once the new
output is complete:

    with replace_folder(Path(args.output_path)) as staging:
        ...write staging / "train", staging / "test", staging / "meta.json"...
    # here the new output is at --output_path; the previous one is gone

- An exception inside the block (a malformed line, a truncated gzip, a full disk) removes the staging
  folder and leaves the previous output byte-for-byte as it was; so does a killed process (its
  staging folder ``.<name>.partial-<pid>-<token>`` is removed by the next run).
- The swap is one ``renameat2(RENAME_EXCHANGE)`` (Linux): readers see the old folder or the new one,
  never a mix. Where that call is missing, the old folder is first renamed aside
  (``.<name>.previous-<pid>-<token>``) and put back by the next run if the process dies in between.
- Only a converter's own folder is replaced: an existing non-empty ``--output_path`` must hold a
  ``meta.json`` and nothing but what converters write (``OUTPUT_ENTRIES``); anything else is an
  error naming the entries, before any work starts and again just before the swap.
"""
import ctypes
import errno
import os
import secrets
import shutil
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator, List, Optional

from mx_rec.system.processes import pid_alive

OUTPUT_ENTRIES = frozenset({"train", "test", "meta.json", "feature_map.json"})
PARTIAL = "partial"
PREVIOUS = "previous"
_RENAME_EXCHANGE = 2


class OutputFolderError(RuntimeError):
    """The output folder cannot be replaced; the message names it and says what to do."""


def _leftovers(output: Path, kind: str) -> List[Path]:
    """Staging (``partial``) or set-aside (``previous``) folders of ``output`` whose process has ended."""
    found = []
    for path in output.parent.glob(f".{output.name}.{kind}-*"):
        pid = path.name[len(f".{output.name}.{kind}-"):].split("-", 1)[0]
        if pid.isdigit() and (int(pid) == os.getpid() or not pid_alive(int(pid))):
            found.append(path)
    return found


def _recover(output: Path) -> None:
    """Undo what a killed run left: put a set-aside previous output back when ``output`` is missing,
    and remove staging folders and set-aside folders that are no longer needed."""
    for previous in sorted(_leftovers(output, PREVIOUS)):
        if not output.exists():
            os.rename(previous, output)
        else:
            shutil.rmtree(previous, ignore_errors=True)
    for partial in _leftovers(output, PARTIAL):
        shutil.rmtree(partial, ignore_errors=True)


def check_replaceable(output: Path) -> None:
    """Raises OutputFolderError unless ``output`` is missing, empty, or a converter's output folder."""
    if not output.exists():
        return
    if not output.is_dir():
        raise OutputFolderError(f"output path {output} exists and is not a folder")
    entries = sorted(entry.name for entry in output.iterdir())
    if not entries:
        return
    if "meta.json" not in entries:
        raise OutputFolderError(f"output path {output} is not empty and holds no meta.json, so it is not a "
                                "converter's output; choose a new or empty folder (it is replaced whole)")
    foreign = [name for name in entries if name not in OUTPUT_ENTRIES]
    if foreign:
        raise OutputFolderError(f"output path {output} holds entries a converter does not write: "
                                f"{', '.join(foreign)}; move them away first (the folder is replaced whole)")


def _exchange(a: Path, b: Path) -> bool:
    """Atomically swap two paths (Linux renameat2); False where the call does not exist."""
    try:
        renameat2 = ctypes.CDLL(None, use_errno=True).renameat2
    except (AttributeError, OSError):
        return False
    at_fdcwd = -100
    if renameat2(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), _RENAME_EXCHANGE) == 0:
        return True
    code = ctypes.get_errno()
    if code in (errno.ENOSYS, errno.EINVAL):  # old kernel or a filesystem without exchange
        return False
    raise OSError(code, os.strerror(code), str(a), None, str(b))


def _swap_in(staging: Path, output: Path, token: str) -> Optional[Path]:
    """Move the complete ``staging`` folder to ``output``; returns the folder now holding the previous
    output (to remove), or None when there was none."""
    if not output.exists():
        os.rename(staging, output)
        return None
    if _exchange(staging, output):
        return staging
    previous = output.parent / f".{output.name}.{PREVIOUS}-{os.getpid()}-{token}"
    os.rename(output, previous)
    try:
        os.rename(staging, output)
    except OSError:
        os.rename(previous, output)
        raise
    return previous


@contextmanager
def replace_folder(output: Path) -> Iterator[Path]:
    """Yields an empty staging folder beside ``output``; on a normal exit it replaces ``output``
    (see the module docstring), on an exception it is removed and ``output`` is untouched.

    Args:
        output: the converter's ``--output_path`` (created with its parents when missing).

    Raises:
        OutputFolderError: ``output`` holds things a converter did not write, or the swap failed
            (the message then says where the complete new output was left).

    Example:
        >>> with replace_folder(Path("/data/criteo")) as staging:  # doctest: +SKIP
        ...     (staging / "meta.json").write_text("{}")
    """
    output = Path(os.path.realpath(output))  # a symlinked folder: swap its target, beside it
    output.parent.mkdir(parents=True, exist_ok=True)
    _recover(output)
    check_replaceable(output)
    token = secrets.token_hex(4)
    staging = output.parent / f".{output.name}.{PARTIAL}-{os.getpid()}-{token}"
    staging.mkdir()
    try:
        yield staging
        check_replaceable(output)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    try:
        replaced = _swap_in(staging, output, token)
    except OSError as err:
        raise OutputFolderError(f"could not move the new output into {output} ({err}); it is complete in "
                                f"{staging}, and {output} is as it was") from None
    if replaced is not None:
        shutil.rmtree(replaced, ignore_errors=True)
