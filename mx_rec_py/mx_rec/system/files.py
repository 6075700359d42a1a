"""Files on any filesystem TensorFlow has: local paths through ``os``, URLs (``hdfs://``, ``gs://``,
``s3://``, ``ram://``...) through ``tf.io.gfile``.

Local paths (no ``scheme://``, or ``file://``) keep the fast paths: ``os`` calls, memory maps, hard
links, ``os.rename``, which is atomic, also for a directory. Other filesystems differ in what they
guarantee, and the callers rely only on this:

- :func:`rename` of a file replaces the target (``tf.io.gfile.rename(overwrite=True)``); on object
  stores it is a copy then a delete, so not atomic.
- :func:`rename` of a directory is one atomic ``os.rename`` locally. Elsewhere the files move one by
  one, those named in ``last`` at the end (a checkpoint's manifest: a reader takes a unit only once
  its manifest is in place), and the emptied source is removed: a crash in between leaves part of
  the files on each side.
- :func:`link_or_copy` hard-links locally and copies elsewhere (or where linking fails for another
  reason than a full disk), so a checkpoint unit always keeps its own copy of TF's files.
- :func:`open_read` of a remote file reads it whole into memory (``tf.io.gfile`` files cannot seek
  while numpy and zipfile need to); :func:`write_bytes` writes a whole file, with ``fsync`` locally.
"""
import glob as _glob
import io
import os
import shutil
from typing import BinaryIO, Iterable, List, Optional

import tensorflow as tf

_gfile = tf.io.gfile


def is_local(path: str) -> bool:
    """True for a plain path or a ``file://`` URL; False for any other ``scheme://``."""
    path = os.fspath(path)
    return "://" not in path or path.startswith("file://")


def _local(path: str) -> str:
    path = os.fspath(path)
    return path[len("file://"):] if path.startswith("file://") else path


def join(path: str, *parts: str) -> str:
    """``os.path.join`` (URLs join with ``/`` too)."""
    return os.path.join(os.fspath(path), *parts)


def abspath(path: str) -> str:
    """``os.path.abspath`` of a local path; a URL unchanged."""
    return os.path.abspath(_local(path)) if is_local(path) else os.fspath(path)


def _listed(path: str) -> bool:
    """Whether ``path`` is an entry of its parent (some filesystems, ``ram://`` among them, answer ``exists``
    for any prefix of an existing name)."""
    parent, name = os.path.split(path.rstrip("/"))
    if "://" not in parent:  # an entry of the filesystem's root (``ram://name``)
        parent += "//"
    try:
        return name in _remote_listdir(parent)
    except (tf.errors.OpError, OSError):
        return True  # a root, or a parent that cannot be listed: take gfile's answer


def exists(path: str) -> bool:
    if is_local(path):
        return os.path.exists(_local(path))
    return _gfile.exists(path) and _listed(path)


def isdir(path: str) -> bool:
    if is_local(path):
        return os.path.isdir(_local(path))
    return _gfile.isdir(path) and _listed(path)


def isfile(path: str) -> bool:
    if is_local(path):
        return os.path.isfile(_local(path))
    return _gfile.exists(path) and not _gfile.isdir(path) and _listed(path)


def getsize(path: str) -> int:
    """Bytes of the file ``path``. Raises OSError (locally) or ``tf.errors.NotFoundError`` when it is missing."""
    return os.path.getsize(_local(path)) if is_local(path) else int(_gfile.stat(path).length)


def getmtime(path: str) -> float:
    """Modification time in seconds (0 where the filesystem keeps none, as ``ram://``)."""
    return os.path.getmtime(_local(path)) if is_local(path) else _gfile.stat(path).mtime_nsec / 1e9


def identity(path: str) -> Optional[int]:
    """The local file's inode (tells a replaced file from the same one); None on other filesystems."""
    return os.stat(_local(path)).st_ino if is_local(path) else None


def _remote_listdir(path: str) -> List[str]:
    # by glob: some filesystems' listdir (ram://) also lists the tails of names that extend this one
    pattern = path + "*" if path.endswith("://") else path.rstrip("/") + "/*"
    return [os.path.basename(p.rstrip("/")) for p in _gfile.glob(pattern)]


def listdir(path: str) -> List[str]:
    """Entry names of the directory ``path`` (without trailing ``/``)."""
    if is_local(path):
        return os.listdir(_local(path))
    if not _gfile.isdir(path):
        raise FileNotFoundError(f"no directory {path}")
    return _remote_listdir(path)


def glob(pattern_prefix: str, suffix_pattern: str) -> List[str]:
    """Paths ``pattern_prefix`` (taken literally) followed by the glob ``suffix_pattern``."""
    if is_local(pattern_prefix):
        return _glob.glob(_glob.escape(_local(pattern_prefix)) + suffix_pattern)
    return _gfile.glob(pattern_prefix + suffix_pattern)


def walk_files(root: str) -> List[str]:
    """Every file under the directory ``root``, sorted."""
    if is_local(root):
        return sorted(os.path.join(d, n) for d, _, names in os.walk(_local(root)) for n in names)
    out = []
    for name in _remote_listdir(root):
        path = join(root, name)
        out += walk_files(path) if _gfile.isdir(path) else [path]
    return sorted(out)


def makedirs(path: str, exist_ok: bool = True) -> None:
    if is_local(path):
        os.makedirs(_local(path), exist_ok=exist_ok)
    elif exist_ok or not _gfile.exists(path):
        _gfile.makedirs(path)
    else:
        raise FileExistsError(path)


def remove(path: str) -> None:
    if is_local(path):
        os.remove(_local(path))
    else:
        _gfile.remove(path)


def rmtree(path: str, ignore_errors: bool = True) -> None:
    """Delete the directory ``path`` and everything under it."""
    if is_local(path):
        shutil.rmtree(_local(path), ignore_errors=ignore_errors)
        return
    # file by file, then the directories deepest first: some filesystems' recursive delete (ram://) works
    # by name prefix; on object stores the directories are implicit and their removal a no-op or an error
    try:
        if not isdir(path):
            if ignore_errors:
                return
            raise FileNotFoundError(f"no directory {path}")
        for entry in _remote_listdir(path):
            child = join(path, entry)
            if _gfile.isdir(child):
                rmtree(child, ignore_errors)
            else:
                _gfile.remove(child)
        try:
            _gfile.remove(path)
        except (tf.errors.OpError, OSError):
            if isdir(path):
                _gfile.rmtree(path)
    except (tf.errors.OpError, OSError):
        if not ignore_errors:
            raise


def rename(src: str, dst: str, last: Iterable[str] = ()) -> None:
    """Move the file or directory ``src`` to ``dst`` (a file replaces ``dst``; a directory's ``dst`` must not
    exist). Atomic on a local filesystem; elsewhere see the module docstring (``last``: file names moved last)."""
    if is_local(src):
        os.rename(_local(src), _local(dst))
        return
    if not isdir(src):
        _gfile.rename(src, dst, overwrite=True)
        return
    if exists(dst):
        raise FileExistsError(f"cannot move {src} to {dst}: it exists")
    late = set(last)
    files = walk_files(src)
    for path in sorted(files, key=lambda p: os.path.basename(p) in late):
        target = join(dst, os.path.relpath(path, src))
        _gfile.makedirs(os.path.dirname(target))
        _gfile.rename(path, target, overwrite=True)
    rmtree(src)


def link_or_copy(src: str, dst: str) -> bool:
    """Hard-link ``src`` as ``dst`` where the filesystem can, else copy it; True when linked.

    Raises:
        OSError: the disk is full (ENOSPC/EDQUOT) or the copy fails.
    """
    if is_local(src):
        try:
            os.link(_local(src), _local(dst))
            return True
        except OSError as err:
            if err.errno in (28, 122):  # ENOSPC, EDQUOT
                raise
        shutil.copyfile(_local(src), _local(dst))
        return False
    if _gfile.exists(dst) and not _gfile.isdir(dst):
        _gfile.remove(dst)  # see _write_remote
    _gfile.copy(src, dst)
    return False


def open_read(path: str) -> BinaryIO:
    """A binary file object to read ``path``: the file itself locally, its whole content in memory elsewhere."""
    if is_local(path):
        return open(_local(path), "rb")
    with _gfile.GFile(path, "rb") as f:
        return io.BytesIO(f.read())


def read_bytes(path: str) -> bytes:
    with open_read(path) as f:
        return f.read()


def read_text(path: str) -> str:
    return read_bytes(path).decode("utf-8")


def write_bytes(path: str, data: bytes, sync: bool = False) -> None:
    """Write the whole file ``path`` (``sync``: ``fsync`` it, where the file is local)."""
    if is_local(path):
        with open(_local(path), "wb") as f:
            f.write(data)
            if sync:
                f.flush()
                os.fsync(f.fileno())
        return
    _write_remote(path, data)


def _write_remote(path: str, data: bytes) -> None:
    if _gfile.exists(path) and not _gfile.isdir(path):
        _gfile.remove(path)  # some filesystems (ram://) append to an existing file opened with "wb"
    with _gfile.GFile(path, "wb") as f:
        f.write(data)


def write_text(path: str, text: str, sync: bool = False) -> None:
    write_bytes(path, text.encode("utf-8"), sync)


def open_write(path: str) -> BinaryIO:
    """A binary file object to write ``path``: the file itself locally, a buffer written on ``close`` elsewhere."""
    if is_local(path):
        return open(_local(path), "wb")
    return _RemoteWriter(path)


class _RemoteWriter(io.BytesIO):
    """Collects the bytes (numpy and zipfile need ``tell``/``seek``) and writes them on close."""

    def __init__(self, path: str) -> None:
        super().__init__()
        self._path = path

    def __exit__(self, exc_type, *rest) -> None:
        if exc_type is not None:  # a failed write leaves no file behind
            super().close()
        self.close()

    def close(self) -> None:
        if not self.closed:
            _write_remote(self._path, self.getvalue())
        super().close()
