"""The objective's images of a validation case in the MLflow run, for review while training runs."""

from __future__ import annotations

import numpy as np

from seg.tracking.images import card_shaped
from seg.train.history import HistoryCallback
from seg.train.objectives import Objective


def validation_image_logger(logger, slice_axis: int | None, max_size, history: HistoryCallback, objective: Objective):
    """The objective's images of the first validation case, once per validation (gate maps per level; SEAM: CAM and
    PCM per class). Their MLflow step is the validation's index (0, 1, ...), not the epoch: MLflow's image card
    starts its slider at step 0 and shows nothing for a run whose first images are at epoch 18 (validation by wall
    clock); the epoch is in the picture's title. A resumed run continues from the validations its (checkpointed)
    history holds."""
    logged: list[int] = []  # steps used so far in this process

    def log(module, batch) -> None:
        if module.global_rank != 0 or module.trainer.sanity_checking:
            return
        image, label = batch["image"], batch["label"]
        if slice_axis is not None:  # 2D network on a 3D case: the slice through the structure
            fg = np.argwhere(label[0, 0].cpu().numpy() > 0)
            idx = int(fg[:, slice_axis].mean()) if len(fg) else label.shape[2 + slice_axis] // 2
            image, label = image.select(2 + slice_axis, idx), label.select(2 + slice_axis, idx)
        title = f"{batch['case_id']} epoch {module.current_epoch}"
        pictures = objective.validation_images(
            module.net, image.to(module.device), label, batch["case_id"], module.class_names, max_size, title
        )
        step = logged[-1] + 1 if logged else history.validations()  # two validations may share an epoch's row
        logged.append(step)
        for key, rgb in pictures.items():
            logger.experiment.log_image(logger.run_id, card_shaped(rgb), key=key, step=step)

    return log
