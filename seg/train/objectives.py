"""What training optimises, as one interface that `seg train` and the LightningModule call without knowing which
objective it is: `Objective`. Each `train.supervision` names one (`OBJECTIVES`):

- full: `FullSupervision`, Dice + CE with deep supervision on masks; validation: sliding-window Dice per class.
- seam: `seg.seam.objective.SeamSupervision`, SEAM's loss on presence labels (the `seg.seam` package).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Protocol

import numpy as np
import torch

from seg.config import Config, ModelConfig, TrainConfig
from seg.metrics import dice_per_class
from seg.runtime.tune_cache import model_key
from seg.seam.objective import SeamSupervision
from seg.train.loss import DeepSupervisionLoss


class Objective(Protocol):
    """What a training objective decides; `seg.train.run.train` and `SegmentationModule` call only this."""

    sampling: Any  # how the data module samples (`SegDataModule(sampling=...)`; None: patches with their masks)

    def training_config(self, cfg: Config) -> Config:
        """The config training runs with: what the model folder, train.json and MLflow record."""

    def timing_key(self, model: ModelConfig) -> str:
        """The identity of the network timed for the training settings (another network: its own timing)."""

    def describe_data(self, dm, seed: int) -> str | None:
        """One line on the training data, printed at the start; None: nothing to say."""

    def loss(
        self, net, image: torch.Tensor, batch: dict, progress: float = 1.0
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """The loss of a batch and its terms to log (MLflow key: value); `progress` the share of the run done."""

    def validate(self, predict_logits: Callable, net, batch: dict, num_classes: int) -> torch.Tensor:
        """What a validation case scores; `score_validation` gets every case's, stacked."""

    def score_validation(self, dice: torch.Tensor, class_names: Sequence[str]) -> tuple[torch.Tensor, dict[str, float]]:
        """From every case's `validate` (stacked): (K - 1,) Dice to log, and other values to log."""

    def logs_images(self, net) -> bool:
        """Whether a validation logs the objective's own images of its first case (with `train.gate_images`; the
        network's attention maps are logged whatever the objective)."""

    def validation_images(
        self,
        net,
        image: torch.Tensor,
        label: torch.Tensor,
        case_id: str,
        class_names: Sequence[str],
        max_size,
        title: str,
    ) -> dict[str, np.ndarray]:
        """{MLflow image key: RGB image} of one validation case, beside the network's maps."""

    def after_fit(self, net, dm, class_names: Sequence[str]) -> tuple[dict, str | None]:
        """Work on the trained network before it is saved: what train.json and model.json add, and a line to print."""


def objective_for(cfg: Config) -> Objective:
    """The objective `train.supervision` names."""
    return OBJECTIVES[cfg.train.supervision](cfg)


class FullSupervision:
    sampling = None

    def __init__(self, cfg: TrainConfig):
        self.loss_fn = DeepSupervisionLoss(cfg.dice_weight, cfg.ce_weight)

    def training_config(self, cfg: Config) -> Config:
        return cfg

    def timing_key(self, model: ModelConfig) -> str:
        return model_key(model)

    def describe_data(self, dm, seed: int) -> str | None:
        return None

    def loss(
        self, net, image: torch.Tensor, batch: dict, progress: float = 1.0
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        out = net.outputs(image, gates=False, deep_supervision=True)
        return self.loss_fn(out.logits, out.deep_supervision, batch["label"]), {}

    def validate(self, predict_logits: Callable, net, batch: dict, num_classes: int) -> torch.Tensor:
        """(K - 1,) Dice of this case."""
        pred = predict_logits(batch["image"]).argmax(dim=1, keepdim=True)
        return dice_per_class(pred, batch["label"], num_classes)

    def score_validation(self, dice: torch.Tensor, class_names: Sequence[str]) -> tuple[torch.Tensor, dict[str, float]]:
        """Per class, the mean over the cases that define its Dice (a class in neither map defines none)."""
        return torch.nanmean(dice.float(), 0), {}

    def logs_images(self, net) -> bool:
        return False  # the network's maps are all it has to show

    def validation_images(
        self,
        net,
        image: torch.Tensor,
        label: torch.Tensor,
        case_id: str,
        class_names: Sequence[str],
        max_size,
        title: str,
    ) -> dict[str, np.ndarray]:
        """None of its own: the network's maps (`seg.train.map_images`) are logged for every objective."""
        return {}

    def after_fit(self, net, dm, class_names: Sequence[str]) -> tuple[dict, str | None]:
        return {}, None


OBJECTIVES: dict[str, Callable[[Config], Objective]] = {
    "full": lambda cfg: FullSupervision(cfg.train),
    "seam": lambda cfg: SeamSupervision(cfg.seam),
}
