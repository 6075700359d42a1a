"""DLRM settings: the architecture (``DLRMConfig``) and its default training settings (``TRAIN``)."""
from dataclasses import dataclass
from typing import Tuple

from models.common.config import TrainConfig


@dataclass(frozen=True)
class DLRMConfig:
    """DLRM (Naumov et al., 2019) on Criteo-shaped data.

    Attributes:
        emb_dim: width of every embedding; the bottom MLP's last layer has this width too.
        bottom_mlp: ReLU layers over the 13 dense features.
        top_mlp: layers over [bottom output, pairwise dot products]; the last one is the logit (1).
    """

    emb_dim: int = 16
    bottom_mlp: Tuple[int, ...] = (64, 32, 16)
    top_mlp: Tuple[int, ...] = (256, 128, 1)

    def __post_init__(self) -> None:
        if not self.bottom_mlp or self.bottom_mlp[-1] != self.emb_dim:
            raise ValueError(f"bottom_mlp must end with emb_dim={self.emb_dim} (its output joins the dot "
                             f"products), got {self.bottom_mlp}")
        if not self.top_mlp or self.top_mlp[-1] != 1:
            raise ValueError(f"top_mlp must end with 1 (the logit), got {self.top_mlp}")


# One pass with rates falling to a tenth: a second epoch over-fits (the "one-epoch" effect of CTR models).
TRAIN = TrainConfig(batch_size=1024, epochs=1.0, dense_lr=0.002, sparse_lr=0.002, lr_end=0.1, log_every=100)
