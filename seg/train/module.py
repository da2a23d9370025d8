"""The LightningModule: it receives the network from outside, so the network never depends on Lightning, and its
objective (`seg.train.objectives.Objective`: full supervision, or SEAM on presence labels), which it calls without
knowing which one it is."""

from __future__ import annotations

import math
from collections.abc import Sequence

import lightning as L
import torch
from torch import nn

from seg.config import TrainConfig
from seg.models import layers
from seg.models.gates import anneal_gates
from seg.models.predict import sliding_window_logits
from seg.train.objectives import FullSupervision, Objective


class SegmentationModule(L.LightningModule):
    nonfinite_limit = 20  # consecutive skipped steps before training stops with an error

    def __init__(
        self,
        net: nn.Module,
        cfg: TrainConfig,
        class_names: Sequence[str],
        patch_size: Sequence[int],
        slice_axis: int | None = None,
        objective: Objective | None = None,
    ):
        super().__init__()
        self.net, self.cfg = net, cfg
        self.class_names = list(class_names)
        self.patch_size = tuple(patch_size)
        self.slice_axis = slice_axis
        self.objective = objective or FullSupervision(cfg)
        self.val_dice: list[torch.Tensor] = []  # per validation case, what the objective's `validate` scores
        self.val_callbacks: list = []  # called with (module, case batch, prediction) on the first val case
        self.export: dict | None = None  # config, fingerprint, meta: makes checkpoints loadable by `seg infer`
        self.skipped_steps = 0  # steps whose gradients were not finite (not applied)
        self._consecutive_skips = 0

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        if self.export is not None:
            checkpoint["seg"] = self.export

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)

    def _layout(self) -> torch.memory_format:
        channels_last = self.cfg.channels_last in (True, "auto")  # `seg train` passes the resolved value
        return layers.channels_last(self.net.spatial_dims) if channels_last else torch.contiguous_format

    def setup(self, stage: str) -> None:
        """Channels-last weights while training, set before the optimizer is built. Most of what the layout gains
        on CPU comes from the full-resolution head, which runs channels-last in any layout (`FullResHead`); the
        rest of the U runs about as fast either way, so `auto` times the two rather than assuming."""
        if stage == "fit":
            self.net.to(memory_format=self._layout())

    def on_fit_end(self) -> None:
        self.net.to(memory_format=torch.contiguous_format)  # what export, inference and analysis expect

    def training_step(self, batch: dict, batch_idx: int) -> torch.Tensor:
        image = batch["image"].contiguous(memory_format=self._layout())
        anneal_gates(self.net, self.progress(self.global_step))
        loss, terms = self.objective.loss(self.net, image, batch, self.progress(self.global_step))
        if torch.isfinite(loss):  # a skipped step (see configure_gradient_clipping) would turn the epoch mean NaN
            size = batch["image"].shape[0]
            self.log("train/loss", loss, on_step=False, on_epoch=True, prog_bar=True, batch_size=size, sync_dist=True)
            for key, value in terms.items():
                self.log(key, value, on_step=False, on_epoch=True, batch_size=size, sync_dist=True)
        return loss

    def configure_gradient_clipping(self, optimizer, gradient_clip_val=None, gradient_clip_algorithm=None) -> None:
        """Skip a step whose gradients are not finite (a NaN or inf loss, a bf16 overflow) instead of writing NaN
        into every weight, which would silently ruin the rest of the run; stop with an error when it keeps
        happening. With DDP the gradients are already averaged, so every rank makes the same choice."""
        params = [p for p in self.net.parameters() if p.grad is not None]
        if not params:
            return
        norm = torch.nn.utils.get_total_norm([p.grad for p in params])  # NaN or inf when any gradient is
        if not bool(torch.isfinite(norm)):
            optimizer.zero_grad(set_to_none=True)  # AdamW and SGD leave parameters without a gradient unchanged
            self.skipped_steps += 1
            self._consecutive_skips += 1
            self.log("train/skipped_steps", float(self.skipped_steps), on_step=False, on_epoch=True, reduce_fx="max")
            if self._consecutive_skips >= self.nonfinite_limit:
                raise FloatingPointError(
                    f"{self._consecutive_skips} consecutive training steps had non-finite gradients (NaN or inf), "
                    f"the last at step {self.global_step}; the weights were left at their last finite values. "
                    f"Lower train.lr, set train.precision: '32', or check the data for NaN/inf values."
                )
            return
        self._consecutive_skips = 0
        if gradient_clip_val and gradient_clip_algorithm in (None, "norm"):
            torch.nn.utils.clip_grads_with_norm_(params, gradient_clip_val, norm)  # reuses the norm just computed
        elif gradient_clip_val:
            self.clip_gradients(optimizer, gradient_clip_val, gradient_clip_algorithm)

    def predict_logits(self, image: torch.Tensor) -> torch.Tensor:
        return sliding_window_logits(
            self.net,
            image,
            self.patch_size,
            overlap=self.cfg.val_overlap,
            sw_batch_size=self.cfg.batch_size,
            slice_axis=self.slice_axis if self.slice_axis is not None else 2,
        )

    def validation_step(self, batch: dict, batch_idx: int) -> None:
        dice = self.objective.validate(self.predict_logits, self.net, batch, len(self.class_names))
        self.val_dice.append(dice.detach())
        if batch_idx == 0:
            for callback in self.val_callbacks:
                callback(self, batch)

    def on_validation_epoch_start(self) -> None:
        self.val_dice = []

    def on_validation_epoch_end(self) -> None:
        """The objective's score of this validation from every rank's cases (full supervision: per class, the mean
        Dice over the cases that define it; SEAM: per class, the background score with the best mean Dice)."""
        if not self.val_dice:
            return
        dice = torch.stack(self.val_dice)  # (cases, K - 1), or SEAM's (cases, backgrounds, K - 1)
        if self.trainer.world_size > 1:
            dice = self.all_gather(dice).flatten(0, 1)
        best, extra = self.objective.score_validation(dice, self.class_names)
        self._log_dice(best, batch_size=len(dice))
        for key, value in extra.items():
            self.log(key, value)

    def _log_dice(self, dice: torch.Tensor, batch_size: int) -> None:
        """Per class and their mean (classes no case defines left out); values already gathered over ranks."""
        for name, d in zip(self.class_names[1:], dice, strict=True):
            self.log(f"val/dice_{name}", d, on_epoch=True, batch_size=batch_size)
        self.log("val/dice_mean", torch.nanmean(dice), on_epoch=True, prog_bar=True, batch_size=batch_size)

    def configure_optimizers(self):
        c = self.cfg
        if c.optimizer == "sgd":
            opt = torch.optim.SGD(
                self.net.parameters(), lr=c.lr, momentum=c.momentum, nesterov=True, weight_decay=c.weight_decay
            )
        else:
            # fused: one kernel for all parameters, 4x faster than foreach on CPU (3.3 -> 0.8 ms a step here)
            fused = all(p.device.type in ("cpu", "cuda") for p in self.net.parameters())
            opt = torch.optim.AdamW(self.net.parameters(), lr=c.lr, weight_decay=c.weight_decay, fused=fused)
        warmup = c.warmup_epochs * c.steps_per_epoch

        def factor(step: int) -> float:
            if step < warmup:
                return (step + 1) / (warmup + 1)
            t = min(self.progress(step), 1.0)
            if c.schedule == "poly":
                return (1 - t) ** 0.9
            if c.schedule == "cosine":
                return 0.5 * (1 + math.cos(math.pi * t))
            return 1.0

        sched = torch.optim.lr_scheduler.LambdaLR(opt, factor)
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}

    @property
    def total_steps(self) -> int | None:
        """Steps of the whole run by its epoch limit; None when only the time budget ends it."""
        epochs = self.cfg.epoch_limit()
        return None if epochs is None else max(epochs * self.cfg.steps_per_epoch, 1)

    def progress(self, step: int) -> float:
        """Share of the run done: by steps, or by the wall-clock budget when that comes first, so the schedule
        decays fully within whichever limit ends the run (the Timer callback keeps elapsed time across resumes)."""
        done = 0.0 if self.total_steps is None else step / self.total_steps
        if self.cfg.max_time_minutes and self._trainer is not None:
            from seg.train.clock import training_seconds

            seconds = training_seconds(self.trainer)  # the run's one clock: rank 0's on every rank
            if seconds is not None:
                done = max(done, seconds / (60 * self.cfg.max_time_minutes))
        return done
