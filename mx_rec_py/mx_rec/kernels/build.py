"""Compile ``cc/*.cc`` into one TF op library, once per sources / compiler / TensorFlow.

``python -m mx_rec.kernels.build`` prints the library's path (building it when the cache lacks it).
The cache is ``${MXREC_KERNEL_CACHE:-~/.cache/mx_rec/kernels}/<key>/libmx_rec_kernels.so``; the key
hashes the sources, the flags, the compiler's version and TensorFlow's version and include path,
so a new TensorFlow or an edited source builds anew and clones on one machine share a build.
The library is written under a temporary name and renamed into place: a failed or interrupted
build leaves nothing a loader could pick up.

Example:
    >>> from mx_rec.kernels.build import build
    >>> path = build()   # ~15 s the first time, then instant
"""
import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import List

SOURCES_DIR = Path(__file__).resolve().parent / "cc"
LIBRARY_NAME = "libmx_rec_kernels.so"
# -ffp-contract=off: no fused multiply-adds, so the kernels round exactly as TF's separate ops do
FLAGS = ["-shared", "-fPIC", "-O3", "-ffp-contract=off", "-fno-math-errno", "-DEIGEN_USE_THREADS"]


class KernelBuildError(RuntimeError):
    """The compiler failed; the message holds its command and the end of its output."""


def _compiler() -> str:
    return os.environ.get("CXX") or shutil.which("g++") or shutil.which("c++") or "g++"


def _tf_flags() -> List[str]:
    import tensorflow as tf

    return list(tf.sysconfig.get_compile_flags()) + list(tf.sysconfig.get_link_flags())


def sources() -> List[Path]:
    """The C++ sources, sorted."""
    return sorted(SOURCES_DIR.glob("*.cc"))


def cache_key() -> str:
    """16 hex digits over the sources, flags, compiler version and TensorFlow version/path."""
    import tensorflow as tf

    digest = hashlib.sha256()
    for path in sources():
        digest.update(path.name.encode() + b"\0" + path.read_bytes())
    try:
        version = subprocess.run([_compiler(), "--version"], capture_output=True, text=True, check=False).stdout
    except OSError:
        version = "no compiler"
    for part in [*FLAGS, *_tf_flags(), version, tf.__version__]:
        digest.update(part.encode() + b"\0")
    return digest.hexdigest()[:16]


def library_path() -> Path:
    """Where this checkout's library is (or would be) in the cache."""
    cache = Path(os.environ.get("MXREC_KERNEL_CACHE") or Path.home() / ".cache" / "mx_rec" / "kernels")
    return cache / cache_key() / LIBRARY_NAME


def build(force: bool = False) -> Path:
    """The library's path, compiling it first when the cache lacks it (or ``force``).

    Raises:
        KernelBuildError: the compiler failed (its command and output are in the message).
    """
    target = library_path()
    if target.exists() and not force:
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".build-", suffix=".so", dir=target.parent)
    os.close(fd)
    command = [_compiler(), *FLAGS, *map(str, sources()), "-o", tmp, *_tf_flags()]
    try:
        proc = subprocess.run(command, capture_output=True, text=True, check=False)
        if proc.returncode != 0:
            raise KernelBuildError(f"building {LIBRARY_NAME} failed ({proc.returncode}): {' '.join(command)}\n"
                                   f"{(proc.stdout + proc.stderr)[-3000:]}")
        os.replace(tmp, target)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return target


def main() -> int:
    try:
        print(build(force="--force" in sys.argv[1:]))
    except KernelBuildError as err:
        print(err, file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
