"""The Lightning Trainer of a run: its limits, hardware (devices per machine, machines), precision, validation
schedule and checkpoint writer."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from seg.config import TrainConfig
from seg.train.schedule import ValidationPlan


def build_trainer(tc: TrainConfig, precision: str, plan: ValidationPlan, logger, callbacks: list, progress_bar: bool):
    """`tc` as resolved (`precision` is the one tuned); `plan` when to validate."""
    import lightning as L

    from seg.train.checkpoints import DurableCheckpointIO

    return L.Trainer(
        max_epochs=tc.epoch_limit() or -1,  # -1: no epoch limit (Lightning would otherwise stop at 1000)
        max_time=timedelta(minutes=tc.max_time_minutes) if tc.max_time_minutes else None,
        accelerator=tc.accelerator,
        devices=tc.devices,
        num_nodes=tc.num_nodes,  # global rank = node rank * devices + local rank
        strategy=tc.strategy,
        precision=precision,
        logger=logger,
        callbacks=callbacks,
        gradient_clip_val=tc.grad_clip or None,
        num_sanity_val_steps=0,
        **plan.trainer_args(),
        log_every_n_steps=max(tc.steps_per_epoch // 2, 1),
        enable_progress_bar=progress_bar,
        enable_model_summary=False,
        default_root_dir=str(Path(tc.output_dir)),
        use_distributed_sampler=True,
        plugins=[DurableCheckpointIO()],  # a kill during a checkpoint write leaves the previous one whole
    )
