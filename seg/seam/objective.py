"""SEAM as a training objective (`train.supervision: seam`; the interface is `seg.train.objectives.Objective`):
SEAM's loss on presence labels; validation: Dice of the pseudo masks (scores with the case's own presence labels) at
each background score of `BACKGROUNDS`, the best one per class chosen on these validation cases; after training, the
maps' calibration on the validation cases (`seg.seam.calibration`)."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence

import numpy as np
import torch

from seg.config import Config, ModelConfig, SeamConfig
from seg.runtime.tune_cache import model_key
from seg.seam.calibration import calibrate_network
from seg.seam.images import cam_images
from seg.seam.loss import SeamLoss
from seg.seam.presence import PresenceSampling, describe_presence, presence_of
from seg.seam.sweep import choose_background, sweep_backgrounds


class SeamSupervision:
    def __init__(self, seam: SeamConfig):
        self.loss_fn = SeamLoss(seam)
        self.seam = seam
        self.sampling = PresenceSampling(seam)

    def training_config(self, cfg: Config) -> Config:
        """The augmentation SEAM trains with (`SeamConfig.training_augment`): what the model folder and MLflow
        record."""
        return dataclasses.replace(
            cfg, train=dataclasses.replace(cfg.train, augment=cfg.seam.training_augment(cfg.train.augment))
        )

    def timing_key(self, model: ModelConfig) -> str:
        return model_key(model) + " seam"

    def describe_data(self, dm, seed: int) -> str | None:
        return describe_presence(dm, seed)

    def loss(
        self, net, image: torch.Tensor, batch: dict, progress: float = 1.0
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        terms = self.loss_fn(net, image, batch["presence"], progress)
        return terms.total, terms.logged()

    def presence(self, batch: dict, num_classes: int) -> torch.Tensor:
        """(1, K - 1) image-level labels of a validation case: its labels-file entry, else the classes in its mask."""
        labels = self.sampling.case_labels
        if labels is not None and batch["case_id"] in labels:
            return labels[batch["case_id"]][None]
        return presence_of(batch["label"], num_classes)[None]

    def validate(self, predict_logits: Callable, net, batch: dict, num_classes: int) -> torch.Tensor:
        """(len(BACKGROUNDS), K - 1) Dice of this case's pseudo mask at each background score."""
        scores = net.scores(batch["image"], self.presence(batch, num_classes).to(batch["image"].device))
        return sweep_backgrounds(scores[:, 1:], batch["label"], num_classes)

    def score_validation(self, dice: torch.Tensor, class_names: Sequence[str]) -> tuple[torch.Tensor, dict[str, float]]:
        """Per class, the background score with the best mean Dice over the cases (cases, backgrounds, K - 1), the
        Dice there, and the scores as `val/background_<class>`."""
        background, best = choose_background(dice)
        return best, {f"val/background_{name}": value for name, value in zip(class_names[1:], background, strict=True)}

    def logs_images(self, net) -> bool:
        return True

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
        """Per class the classifier's CAM and its PCM refinement, `cam_<class>`."""
        presence = self.presence({"label": label, "case_id": case_id}, len(class_names))
        return cam_images(net, image, label, presence, max_size, title, class_names[1:])

    def after_fit(self, net, dm, class_names: Sequence[str]) -> tuple[dict, str | None]:
        """The maps' calibration on the validation cases, recorded under `seam` and described in one line."""
        chosen = calibrate_network(net, self, dm, class_names, self.seam)
        classes = "; ".join(
            f"{n}: background score {v:g}, scales {chosen['scales'][n]}, "
            f"{'PCM-refined' if chosen['refine'][n] else 'the classifier CAM'}, shifted by "
            f"{chosen['shift'][n]} voxels"
            for n, v in chosen["background"].items()
        )
        return {"seam": chosen}, f"SEAM maps per class {classes} ({chosen['chosen_by']})"
