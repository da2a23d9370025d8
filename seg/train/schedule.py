"""When training validates. By default (`train.val_every: auto`) every epoch while one validation costs at most
`train.val_share` of the wall clock, measured before training starts; past that, every N epochs, or with a time
budget every N minutes of wall clock, after which Lightning also validates when the budget ends, so the final
weights are scored.

On the embedded synthetic data a validation costs a fraction of an epoch and the curves stay per epoch; on
Task04_Hippocampus (42 validation cases of ~35x51x35) one validation costs about as much as a 50-step epoch, and
validating every epoch would spend half the budget on it."""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import torch

from seg.config import AUTO, TrainConfig
from seg.runtime import TrainSettings, is_rank_zero, resolve_device
from seg.runtime.tune import autocast


@dataclass(frozen=True)
class ValidationPlan:
    every_epochs: int | None  # validate every N epochs (None: by wall clock)
    every_minutes: float | None  # validate every N minutes and when the time budget ends
    validation_seconds: float | None  # measured cost of one validation (None: not measured, the schedule was given)
    epoch_seconds: float | None  # estimated training time of one epoch (batches + forward + backward: a lower bound)
    reason: str

    @property
    def validates(self) -> bool:
        return self.every_epochs is not None or self.every_minutes is not None

    def trainer_args(self) -> dict:
        if not self.validates:
            return {"limit_val_batches": 0}
        if self.every_minutes is None:
            return {"check_val_every_n_epoch": self.every_epochs}
        return {"check_val_every_n_epoch": None, "val_check_interval": timedelta(minutes=self.every_minutes)}

    def describe(self) -> str:
        if not self.validates:
            return f"no validation ({self.reason})"
        when = (
            f"every {self.every_epochs} epoch(s)"
            if self.every_minutes is None
            else f"every {self.every_minutes:.3g} min"
        )
        return f"validation {when} ({self.reason})"


def plan_validation(
    tc: TrainConfig, validation_seconds: Callable[[], float], step_seconds: Callable[[], float]
) -> ValidationPlan:
    """`validation_seconds` measures one whole validation, `step_seconds` one training step (drawing the batch, the
    loss forward and backward: `time_step`); both are called only for `val_every: auto`."""
    if tc.val_every_minutes is not None:
        return ValidationPlan(None, tc.val_every_minutes, None, None, "train.val_every_minutes")
    if tc.val_every != AUTO:
        return ValidationPlan(int(tc.val_every), None, None, None, "train.val_every")
    val = validation_seconds()
    epoch = step_seconds() * tc.steps_per_epoch
    share = tc.val_share
    # validating every n epochs spends val / (n * epoch + val) of the time on it: the smallest n within the share
    n = max(1, math.ceil(val * (1 - share) / (share * max(epoch, 1e-9)) - 1e-9))
    epochs = tc.epoch_limit()
    n = n if epochs is None else min(n, epochs)  # a run shorter than the interval still validates once, at its end
    measured = f"one validation {val:.1f} s, an epoch >= {epoch:.1f} s, share <= {share:g}"
    if n == 1:
        return ValidationPlan(1, None, val, epoch, measured)
    if tc.max_time_minutes:
        minutes = max(val * (1 - share) / share / 60, 1 / 60)
        return ValidationPlan(None, round(minutes, 3), val, epoch, measured + "; by wall clock, and at the end")
    return ValidationPlan(n, None, val, epoch, measured)


def time_step(step: Callable[[], None]) -> float:
    """Seconds of one training step as training runs it (`step` draws a batch, runs the loss forward and
    backward): the minimum of two timed calls after one untimed call. The optimizer and Lightning's own work are
    left out, so an epoch estimated from it is a lower bound."""
    step()
    times = []
    for _ in range(2):
        start = time.perf_counter()
        step()
        times.append(time.perf_counter() - start)
    return min(times)


def time_validation(
    predict: Callable[[torch.Tensor], torch.Tensor], images: list[torch.Tensor], processes: int
) -> float:
    """Seconds one validation takes: `predict` timed on the largest image after one untimed call on it, scaled
    by the images' total voxels and shared over `processes` (DDP shards the validation cases)."""
    if not images:
        return 0.0
    largest = max(images, key=lambda x: x[0].numel())
    with torch.inference_mode():
        predict(largest)
        start = time.perf_counter()
        predict(largest)
        seconds = time.perf_counter() - start
    total = sum(x[0].numel() for x in images)
    return seconds * total / largest[0].numel() / max(processes, 1)


def measure_and_plan(tc: TrainConfig, module, dm, settings: TrainSettings, state_path: Path) -> ValidationPlan:
    """The validation schedule of `seg train`, measured on its module (a `SegmentationModule`) and data module with
    the resolved `settings`; DDP ranks > 0 take rank 0's (written to the run state at `state_path` before they
    start), since every rank must validate at the same steps."""
    if not dm.val_ids:  # data.fold "all": every non-test case trains
        return ValidationPlan(None, None, None, None, "data.fold all: no validation fold")
    measured = tc.val_every == AUTO and tc.val_every_minutes is None  # a given schedule needs no one's timing
    if measured and not is_rank_zero() and state_path.is_file():
        saved = json.loads(state_path.read_text()).get("validation")
        if saved:
            return ValidationPlan(**saved)
    device = resolve_device(tc.accelerator)

    def seconds() -> float:
        dm.setup("fit")
        net = module.net.to(device).eval()
        try:
            with autocast(device, settings.precision):
                images = [torch.from_numpy(c.image)[None].to(device) for c in dm.val_cases]
                return time_validation(module.predict_logits, images, tc.world_size())
        finally:
            net.cpu().train()

    def step() -> None:  # a batch drawn and a loss step as training_step runs them, in the resolved settings
        batch = torch.utils.data.default_collate([dm.train_set[i] for i in range(tc.batch_size)])
        image = batch["image"].to(device).contiguous(memory_format=module._layout())
        with autocast(device, settings.precision):
            loss, _ = module.objective.loss(
                module.net, image, {k: v.to(device) if torch.is_tensor(v) else v for k, v in batch.items()}
            )
        loss.backward()
        module.net.zero_grad(set_to_none=True)

    def step_seconds() -> float:
        dm.setup("fit")
        net = module.net.to(device).train()
        try:
            return time_step(step) if tc.num_workers == 0 else settings.step_seconds  # workers hide the data
        finally:
            net.cpu()

    return plan_validation(tc, seconds, step_seconds)
