"""The images of a validation case in the MLflow run, for review while training runs: the network's attention maps
(`seg.train.map_images`) and the objective's own pictures (SEAM: CAM and PCM)."""

from __future__ import annotations

import numpy as np

from seg.tracking.images import card_shaped
from seg.train.history import HistoryCallback
from seg.train.map_images import MapReview, input_spacing, review_maps
from seg.train.objectives import Objective


def validation_image_logger(logger, dm, history: HistoryCallback, objective: Objective):
    """At every validation, of its first case: one picture per map the network computes (named by its map key), the
    attention distance of every self-attention head (`attention_distance/<block>/h<head>`, mm, at the training
    step, like the validation Dice) and the objective's pictures. The images' MLflow step is the validation's index
    (0, 1, ...), not the epoch: MLflow's image card starts its slider at step 0 and shows nothing for a run whose
    first images are at epoch 18 (validation by wall clock); the epoch is in the picture's title. A resumed run
    continues from the validations its (checkpointed) history holds. `dm` gives the slice axis of a 2D network on
    3D data, the patch size (pictures cover at most twice it) and the target spacing (distances in mm)."""
    logged: list[int] = []  # steps used so far in this process
    max_size = tuple(2 * p for p in dm.patch_size)
    spacing = input_spacing(dm.fingerprint.preprocessing.target_spacing, dm.slice_axis)

    def log(module, batch) -> None:
        if module.global_rank != 0 or module.trainer.sanity_checking:
            return
        image, label = batch["image"], batch["label"]
        if dm.slice_axis is not None:  # 2D network on a 3D case: the slice through the structure
            fg = np.argwhere(label[0, 0].cpu().numpy() > 0)
            idx = int(fg[:, dm.slice_axis].mean()) if len(fg) else label.shape[2 + dm.slice_axis] // 2
            image, label = image.select(2 + dm.slice_axis, idx), label.select(2 + dm.slice_axis, idx)
        image = image.to(module.device)
        title = f"{batch['case_id']} epoch {module.current_epoch}"
        review = (
            review_maps(module.net, image, label, spacing, max_size, title) if module.net.map_ids() else MapReview()
        )
        if objective.logs_images(module.net):
            review.pictures.update(
                objective.validation_images(
                    module.net, image, label, batch["case_id"], module.class_names, max_size, title
                )
            )
        step = logged[-1] + 1 if logged else history.validations()  # two validations may share an epoch's row
        logged.append(step)
        for key, rgb in review.pictures.items():
            logger.experiment.log_image(logger.run_id, card_shaped(rgb), key=key, step=step)
        for key, value in review.metrics.items():
            logger.experiment.log_metric(logger.run_id, key, value, step=module.global_step)

    return log
