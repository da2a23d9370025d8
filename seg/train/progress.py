"""Progress of a training run, as a person follows it: on a terminal Lightning's bar (epoch, steps, loss,
validation Dice) with the time left in the budget; elsewhere (a DVC stage, CI, nohup, a log file) one status line
at least once a minute and after every validation, since a bar's carriage returns make an unreadable log."""

from __future__ import annotations

import sys
import time

from lightning.pytorch.callbacks import Callback, Timer, TQDMProgressBar

from seg.case_progress import clock, wants_bar

STATUS_EVERY_S = 60.0


def time_left(trainer) -> str:
    """What is left of the budget: of the time budget (`train.max_time_minutes`, which Lightning keeps in a
    `Timer` callback; a resumed run counts its earlier time), else of the epochs."""
    for callback in trainer.callbacks:
        if isinstance(callback, Timer):
            remaining = callback.time_remaining("train")
            if remaining is not None:
                return f"{clock(remaining)} left"
    if trainer.max_epochs and trainer.max_epochs > 0:
        return f"{trainer.max_epochs - trainer.current_epoch} epochs left"
    return ""


class BudgetBar(TQDMProgressBar):
    """Lightning's bar (loss and validation Dice are logged with `prog_bar=True`) plus the time left."""

    def get_metrics(self, trainer, pl_module) -> dict:
        metrics = super().get_metrics(trainer, pl_module)
        metrics.pop("v_num", None)
        left = time_left(trainer)
        if left:
            metrics["budget"] = left
        return metrics


class StatusLines(Callback):
    """One line at least every `every_s` seconds of training and after each validation, on rank 0:
    `seg train: epoch 3/100 step 120 loss 0.412 val dice 0.812 (best 0.830) 7:31 left`."""

    def __init__(self, every_s: float = STATUS_EVERY_S, stream=None):
        self.every_s, self.stream = every_s, stream
        self._started = self._last = 0.0
        self._best: float | None = None

    def on_train_start(self, trainer, pl_module) -> None:
        self._started = self._last = time.monotonic()

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if time.monotonic() - self._last >= self.every_s:
            self._print(trainer, outputs)

    def on_validation_end(self, trainer, pl_module) -> None:
        if trainer.sanity_checking:
            return
        dice = trainer.callback_metrics.get("val/dice_mean")
        if dice is not None:
            value = float(dice)
            self._best = value if self._best is None else max(self._best, value)
        self._print(trainer, None)

    def _print(self, trainer, outputs) -> None:
        self._last = time.monotonic()
        if trainer.global_rank != 0:
            return
        parts = [
            f"epoch {trainer.current_epoch + 1}" + (f"/{trainer.max_epochs}" if trainer.max_epochs > 0 else ""),
            f"step {trainer.global_step}",
        ]
        loss = trainer.callback_metrics.get("train/loss")
        if loss is None and outputs is not None:
            loss = outputs.get("loss") if isinstance(outputs, dict) else outputs
        if loss is not None:
            parts.append(f"loss {float(loss):.3f}")
        dice = trainer.callback_metrics.get("val/dice_mean")
        if dice is not None:
            parts.append(
                f"val dice {float(dice):.3f} (best {self._best:.3f})"
                if self._best is not None
                else f"val dice {float(dice):.3f}"
            )
        parts.append(f"{clock(self._last - self._started)} elapsed")
        left = time_left(trainer)
        if left:
            parts.append(left)
        print("seg train: " + ", ".join(parts), file=self.stream or sys.stdout, flush=True)


def progress_callbacks() -> tuple[list[Callback], bool]:
    """(callbacks, whether Lightning's own bar is on): the bar on a terminal, status lines elsewhere."""
    if wants_bar():
        return [BudgetBar()], True
    return [StatusLines()], False
