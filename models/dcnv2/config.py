"""DCNv2 settings: the architecture (``DCNv2Config``) and its default training settings (``TRAIN``)."""
from dataclasses import dataclass
from typing import Tuple

from models.common.config import TrainConfig

STRUCTURES = ("parallel", "stacked")


@dataclass(frozen=True)
class DCNv2Config:
    """DCN-V2 (Wang et al., 2021) on Criteo-shaped data.

    Attributes:
        emb_dim: embedding width; x0 = [e_1, ..., e_26, dense] has 26 * emb_dim + 13 values.
        cross_layers: number of cross layers x_{l+1} = x0 * (W_l x_l + b_l) + x_l.
        cross_rank: 0 for full-rank W_l; r > 0 for the low-rank form W_l = U_l V_l^T (rank r).
        deep_mlp: ReLU layers of the deep network.
        structure: "parallel" (cross and deep side by side on x0) or "stacked" (deep on the cross output).
    """

    emb_dim: int = 16
    cross_layers: int = 3
    cross_rank: int = 0
    deep_mlp: Tuple[int, ...] = (256, 128)
    structure: str = "parallel"

    def __post_init__(self) -> None:
        if self.structure not in STRUCTURES:
            raise ValueError(f"structure must be one of {STRUCTURES}, got {self.structure!r}")
        if self.cross_layers < 1 or self.cross_rank < 0:
            raise ValueError(f"need cross_layers >= 1 and cross_rank >= 0, got {self.cross_layers}, "
                             f"{self.cross_rank}")


TRAIN = TrainConfig(batch_size=1024, epochs=1.0, dense_lr=0.001, sparse_lr=0.01, log_every=100)
