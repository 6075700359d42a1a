"""Settings of the little demo: data shape, tables, model and training (one dataclass)."""
from dataclasses import dataclass, field
from typing import Dict, Tuple

from models.common.config import OPTIMIZERS

FLAGS = ("steps", "batch_size", "eval_steps", "log_every", "seed", "optimizer", "checkpoint_dir")  # command line


@dataclass(frozen=True)
class DemoConfig:
    """Everything ``main_mxrec.py`` needs; command-line flags override the ``FLAGS`` fields.

    Data (synthetic, see ``dataset.py``):
        n_users / n_items / n_tags: distinct ids of each feature.
        user_zipf / item_zipf: exponent of the Zipf-like popularity of users / items.
        tags_per_item: width of the ``item_tags`` multi-hot (padded with -1).
        dense_dim: width of ``dense_feature``.

    Tables: ``*_vocab`` is each table's ``device_vocabulary_size``; it must exceed the distinct
    keys the run can insert (the item table also holds the tag keys: multi-lookup).

    Training: ``steps`` batches of ``batch_size``; ``eval_steps`` held-out batches; a log line
    every ``log_every`` steps. Learning rates are per optimizer (sparse tables) plus ``dense_lr``.

    Output: ``checkpoint_dir`` (empty: none) receives the trained model (``model-<steps>``: dense
    variables and every table's shards), saved by ``tf.compat.v1.train.Saver``.
    """

    # data
    n_users: int = 100_000
    n_items: int = 20_000
    n_tags: int = 1_000
    user_zipf: float = 1.05
    item_zipf: float = 1.05
    tags_per_item: int = 3
    dense_dim: int = 8
    # tables
    emb_dim: int = 16
    user_vocab: int = 120_000
    item_vocab: int = 24_000
    init_stddev: float = 0.05
    # model
    hidden_units: Tuple[int, ...] = (64, 32)
    # training
    steps: int = 300
    batch_size: int = 512
    eval_steps: int = 20
    log_every: int = 50
    seed: int = 2024
    optimizer: str = "lazy_adam"
    dense_lr: float = 0.005
    sparse_lr: Dict[str, float] = field(default_factory=lambda: {
        "lazy_adam": 0.01, "adagrad": 0.1, "ftrl": 0.1, "gradient_descent": 0.5})
    prefetch: int = 4
    # output
    checkpoint_dir: str = ""

    def __post_init__(self) -> None:
        if self.optimizer not in OPTIMIZERS:
            raise ValueError(f"optimizer must be one of {OPTIMIZERS}, got {self.optimizer!r}")
        for name in ("steps", "batch_size", "eval_steps", "log_every"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.user_vocab <= self.n_users:
            raise ValueError(f"user_vocab={self.user_vocab} must exceed n_users={self.n_users}")
        if self.item_vocab <= self.n_items + self.n_tags:
            raise ValueError(f"item_vocab={self.item_vocab} must exceed n_items + n_tags="
                             f"{self.n_items + self.n_tags} (the item table also holds the tag keys)")
