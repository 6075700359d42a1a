"""Wide&Deep settings: the architecture (``WideDeepConfig``) and its default training settings (``TRAIN``)."""
from dataclasses import dataclass
from typing import Tuple

from models.common.config import OPTIMIZERS, TrainConfig


@dataclass(frozen=True)
class WideDeepConfig:
    """Wide&Deep (Cheng et al., 2016) on Criteo-shaped data.

    Attributes:
        emb_dim: width of the deep embeddings.
        deep_mlp: ReLU layers over [deep embeddings of the 26 fields, 13 dense features].
        wide_optimizer / wide_lr: the wide table's hash optimizer (FTRL, as in the paper).
    """

    emb_dim: int = 16
    deep_mlp: Tuple[int, ...] = (256, 128, 64)
    wide_optimizer: str = "ftrl"
    wide_lr: float = 0.05

    def __post_init__(self) -> None:
        if self.wide_optimizer not in OPTIMIZERS:
            raise ValueError(f"wide_optimizer must be one of {OPTIMIZERS}, got {self.wide_optimizer!r}")
        if not self.deep_mlp:
            raise ValueError("deep_mlp needs at least one layer")


TRAIN = TrainConfig(batch_size=1024, epochs=1.0, dense_lr=0.001, sparse_lr=0.01, log_every=100)
