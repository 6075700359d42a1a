"""Reading raw text datasets for the converters: plain or gzip files, line numbers, a progress bar,
and malformed lines that are either a clear error or, when asked, skipped and counted.

    lines = MalformedLines(skip=args.skip_malformed)
    for where, text in read_lines(paths, "train"):
        try:
            row = parse(text)                       # raise ValueError("what is wrong") on a bad line
        except ValueError as err:
            lines.bad(where, err)                   # raises MalformedLineError unless skipping
    print(lines.summary())
"""
import gzip
import math
import os
import zlib
from dataclasses import dataclass, field
from typing import IO, Iterator, List, Optional, Sequence, Tuple

from tqdm import tqdm

GZIP_MAGIC = b"\x1f\x8b"


@dataclass(frozen=True)
class Where:
    """A line of an input file: path and 1-based line number."""

    path: str
    line: int

    def __str__(self) -> str:
        return f"{self.path}:{self.line}"


class InputError(ValueError):
    """An input file that cannot be converted; the message names the file (and the line)."""


class MalformedLineError(InputError):
    """A line that cannot be converted; the message starts with ``file:line:``."""


class DamagedFileError(InputError):
    """A gzip file that ends early or does not decompress; the message names the file and the last
    line read whole (``--skip_malformed`` does not skip it: the rest of the file is unknown)."""


_GZIP_ERRORS = (EOFError, zlib.error, gzip.BadGzipFile)


def parse_finite(raw: str, column: str) -> float:
    """A text field as a finite float; ValueError naming ``column`` otherwise."""
    try:
        value = float(raw)
    except ValueError:
        raise ValueError(f"{column} is not a number: {raw!r}") from None
    if not math.isfinite(value):
        raise ValueError(f"{column} is not a finite number: {raw!r}")
    return value


def open_text(path: str) -> IO[str]:
    """``path`` as UTF-8 text (stray bytes kept as surrogates); gzip is recognised by its magic bytes."""
    with open(path, "rb") as probe:
        is_gzip = probe.read(2) == GZIP_MAGIC
    if is_gzip:
        return gzip.open(path, "rt", encoding="utf-8", errors="surrogateescape")
    return open(path, "r", encoding="utf-8", errors="surrogateescape")


def _damaged(path: str, last_line: int, err: Exception) -> DamagedFileError:
    what = "ends before its end-of-stream marker (truncated?)" if isinstance(err, EOFError) else f"is damaged ({err})"
    last = f"line {last_line}" if last_line else "no line"
    return DamagedFileError(f"{path}: the gzip stream {what}; the last line read whole is {last}")


def _whole_lines(path: str, handle: IO[str]) -> Iterator[str]:
    """The lines of an open file; a gzip stream cut short raises DamagedFileError naming the last
    whole line instead of handing on a partial one (a last line without a line break must be
    followed by the stream's proper end)."""
    number = 0
    lines = iter(handle)
    while True:
        try:
            text = next(lines)
            if not text.endswith("\n"):
                next(lines, None)  # the end of the file, unless the stream was cut inside this line
        except StopIteration:
            return
        except _GZIP_ERRORS as err:
            raise _damaged(path, number, err) from None
        number += 1
        yield text


def read_lines(paths: Sequence[str], label: str) -> Iterator[Tuple[Where, str]]:
    """Every line of ``paths`` in order, without its line break, with a progress bar over the bytes
    of the files on disk (a gzip file advances by its compressed position).

    Raises:
        DamagedFileError: a gzip file is truncated or damaged (naming it and its last whole line).
    """
    total = sum(os.path.getsize(p) for p in paths)
    with tqdm(total=total, unit="B", unit_scale=True, desc=label, mininterval=0.5, leave=False) as bar:
        for path in paths:
            size, done, pending = os.path.getsize(path), 0, 0
            with open_text(path) as handle:
                compressed = getattr(getattr(handle, "buffer", None), "fileobj", None)  # gzip's raw file
                for number, text in enumerate(_whole_lines(path, handle), start=1):
                    yield Where(path, number), text.rstrip("\r\n")
                    pending += len(text)
                    if number % 4096 == 0:
                        position = compressed.tell() if compressed is not None else min(size, done + pending)
                        bar.update(position - done)
                        done, pending = position, 0
            bar.update(size - done)


@dataclass
class MalformedLines:
    """Policy for malformed lines: raise (default) or skip and count them.

    Attributes:
        skip: count and go on instead of raising.
        count: lines skipped so far. examples: the first few messages.
        blank: empty lines seen (no sample, never an error; reported in the summary).
    """

    skip: bool = False
    count: int = 0
    examples: List[str] = field(default_factory=list)
    blank: int = 0

    def bad(self, where: Where, reason: Exception) -> None:
        """Report line ``where``; raises :class:`MalformedLineError` unless skipping."""
        message = f"{where}: {reason}"
        if not self.skip:
            raise MalformedLineError(message + " (pass --skip_malformed to skip and count such lines)")
        self.count += 1
        if len(self.examples) < 3:
            self.examples.append(message)

    def summary(self) -> str:
        """``malformed lines skipped: N (first: ...); blank lines: M``."""
        text = f"malformed lines skipped: {self.count}"
        text += f" (first: {'; '.join(self.examples)})" if self.examples else ""
        return text + f"; blank lines: {self.blank}"


def require_files(parser, paths: Sequence[Optional[str]]) -> None:
    """``parser.error`` naming the first given path that is not a file (None entries are skipped)."""
    for path in paths:
        if path and not os.path.isfile(path):
            parser.error(f"input file not found: {path}")
