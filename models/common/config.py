"""The zoo's flags: training settings every model shares, and command-line flags made from config
dataclasses (``parse_configs`` for the Criteo / census models, ``parse_flags`` for the little demo).

Each model's ``config.py`` holds a frozen dataclass of its architecture and a ``TrainConfig``
with its default training settings; ``parse_configs`` turns both into flags (``--batch_size 256``,
``--hidden_units 64,32``) so that ``MODEL_ARGS`` can override any of them.
"""
import argparse
import dataclasses
import os
from dataclasses import dataclass
from typing import Any, Optional, Sequence, Tuple, TypeVar

OPTIMIZERS = ("lazy_adam", "adagrad", "ftrl", "gradient_descent")
T = TypeVar("T")
M = TypeVar("M")


@dataclass(frozen=True)
class TrainConfig:
    """How a model trains and evaluates.

    Data:
        data_path: dataset folder with ``train/``, ``test/`` (and ``meta.json``); empty: ``$DATA_PATH``.
    Training:
        batch_size: samples per step on each rank. epochs: passes over the training split (the
        global batch is batch_size * ranks); steps: > 0 overrides epochs. shuffle_buffer: samples.
        dense_lr: Adam on the MLPs. sparse_lr / sparse_optimizer: hash optimizer of the tables
        that do not set their own. init_stddev: truncated-normal initial rows. seed: data order
        and initial values. lr_end: both rates fall linearly over the run to this fraction of
        their start (1: constant).
    Evaluation:
        eval_batch_size; eval_steps: > 0 caps the batches per rank (0: the whole test split).
    Tables:
        vocab_margin: device rows = keys the data can insert * margin (+ 1024).
        access_threshold: admission count when ``USE_FAAE=1``.
        ssd_data_path: folder for the SSD tier (``CACHE_MODE=SSD``), created if missing; empty: a
            temporary folder per rank, removed when the job ends.
        table_keys: > 0 sets the keys a table must hold (default: from ``meta.json``).
    Output:
        metrics_file: rank 0 writes the run's figures there as JSON (empty: nowhere).
        checkpoint_dir: every rank saves the trained model there (``model-<steps>``, dense variables
            and its table shards) for ``tools/export_local.py`` (empty: no checkpoint).
    """

    data_path: str = ""
    batch_size: int = 512
    epochs: float = 1.0
    steps: int = 0
    shuffle_buffer: int = 20_000
    dense_lr: float = 0.001
    sparse_lr: float = 0.01
    sparse_optimizer: str = "lazy_adam"
    lr_end: float = 1.0
    eval_batch_size: int = 2048
    eval_steps: int = 0
    log_every: int = 100
    seed: int = 2024
    init_stddev: float = 0.01
    vocab_margin: float = 1.25
    access_threshold: int = 2
    ssd_data_path: str = ""
    table_keys: int = 0
    metrics_file: str = ""
    checkpoint_dir: str = ""
    savedmodel_dir: str = ""  # rank 0 exports checkpoint_dir's model there as a TF SavedModel (export_savedmodel)

    def __post_init__(self) -> None:
        if self.savedmodel_dir and not self.checkpoint_dir:
            raise ValueError("--savedmodel_dir needs --checkpoint_dir (the SavedModel is exported from that checkpoint)")
        if self.sparse_optimizer not in OPTIMIZERS:
            raise ValueError(f"sparse_optimizer must be one of {OPTIMIZERS}, got {self.sparse_optimizer!r}")
        for name in ("batch_size", "eval_batch_size", "log_every"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        for name in ("steps", "eval_steps", "access_threshold", "table_keys", "shuffle_buffer"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")
        if self.epochs <= 0 and self.steps == 0:
            raise ValueError(f"epochs must be > 0 (or steps > 0), got {self.epochs}")
        if not 0.0 <= self.lr_end <= 1.0:
            raise ValueError(f"lr_end must be in [0, 1], got {self.lr_end}")
        if self.vocab_margin < 1.0:
            raise ValueError(f"vocab_margin must be >= 1, got {self.vocab_margin}")

    def resolved_data_path(self) -> str:
        """``data_path``, else ``$DATA_PATH`` (set by run.sh).

        Raises:
            SystemExit: neither is set.
        """
        path = self.data_path or os.environ.get("DATA_PATH", "")
        if not path:
            raise SystemExit("main_mxrec.py: error: no data: pass --data_path or set DATA_PATH "
                             "(run.sh sets it from its 4th argument)")
        return path


def _flag_type(default: Any):
    if isinstance(default, bool):
        return lambda text: text.lower() in ("1", "true", "yes")
    if isinstance(default, tuple):
        return lambda text: tuple(int(x) for x in text.split(",") if x.strip())
    return type(default)


def _add_flags(parser: argparse.ArgumentParser, defaults: Any, group: str,
               names: Optional[Sequence[str]] = None) -> None:
    section = parser.add_argument_group(group)
    for name in names or [f.name for f in dataclasses.fields(defaults)]:
        value = getattr(defaults, name)
        shown = ",".join(map(str, value)) if isinstance(value, tuple) else value
        section.add_argument(f"--{name}", type=_flag_type(value), default=value, help=f"default {shown}")


def parse_flags(argv: Optional[Sequence[str]], description: str, defaults: T, names: Sequence[str]) -> T:
    """Flags for the fields ``names`` of ``defaults`` (a dataclass instance holding the defaults).

    Returns:
        ``defaults`` with the flags applied; its ``__post_init__`` checks run (a bad value exits
        with the parser's usage message).

    Example:
        >>> parse_flags(["--steps", "20"], "demo", DemoConfig(), ("steps", "seed")).steps  # doctest: +SKIP
        20
    """
    parser = argparse.ArgumentParser(description=description)
    _add_flags(parser, defaults, "flags", names)
    args = vars(parser.parse_args(argv))
    try:
        return dataclasses.replace(defaults, **args)
    except ValueError as err:
        parser.error(str(err))
        raise  # unreachable: parser.error exits


def parse_configs(argv: Optional[Sequence[str]], description: str, train: T, model: M) -> Tuple[T, M]:
    """Flags for every field of ``train`` and ``model`` (dataclass instances holding the defaults).

    Returns:
        (train config, model config) with the flags applied; their ``__post_init__`` checks run.
    """
    clash = {f.name for f in dataclasses.fields(train)} & {f.name for f in dataclasses.fields(model)}
    if clash:
        raise TypeError(f"model config fields {sorted(clash)} shadow TrainConfig fields")
    parser = argparse.ArgumentParser(description=description)
    _add_flags(parser, train, "training")
    _add_flags(parser, model, "model")
    args = vars(parser.parse_args(argv))
    try:
        return (dataclasses.replace(train, **{f.name: args[f.name] for f in dataclasses.fields(train)}),
                dataclasses.replace(model, **{f.name: args[f.name] for f in dataclasses.fields(model)}))
    except ValueError as err:
        parser.error(str(err))
        raise  # unreachable: parser.error exits
