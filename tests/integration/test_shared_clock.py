"""Two DDP ranks (gloo over loopback) of a real Lightning run whose rank 1 has a clock running 50x fast and, with
`SharedClock`, a validation schedule of its own (as `torchrun` processes that each measured theirs): with it both
validate after the same steps and step with the same learning rates; without it (Lightning's own clocks) they do
not, which is what would make a distributed run's collectives pair wrongly."""

from __future__ import annotations

import json
import multiprocessing
import os
import time
from pathlib import Path

import pytest
from train_helpers import free_port

pytestmark = pytest.mark.slow

STEPS, STEP_SECONDS, EVERY_SECONDS = 40, 0.02, 0.2


def _fast_clock(speed: float) -> None:
    real, start = time.monotonic, time.monotonic()
    time.monotonic = lambda: start + (real() - start) * speed


def _rank(rank: int, port: int, shared: bool, out: Path) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), WORLD_SIZE="2", NODE_RANK=str(rank))
    os.environ.update(LOCAL_RANK="0")
    import lightning as L
    import torch

    from seg.train.clock import SharedClock, training_seconds
    from seg.train.schedule import ValidationPlan

    torch.set_num_threads(1)
    plan = ValidationPlan(None, EVERY_SECONDS / 60, None, None, "every 0.2 s")
    if rank == 1:
        _fast_clock(50.0)
        plan = ValidationPlan(1, None, None, None, "every epoch") if shared else plan

    class Tiny(L.LightningModule):
        def __init__(self):
            super().__init__()
            self.lin, self.validated_after, self.lrs = torch.nn.Linear(2, 1), [], []

        def training_step(self, batch, batch_idx):
            time.sleep(STEP_SECONDS)
            return self.lin(batch).pow(2).mean()

        def on_train_batch_end(self, outputs, batch, batch_idx):
            self.lrs.append(self.optimizers().param_groups[0]["lr"])

        def validation_step(self, batch, batch_idx):
            if batch_idx == 0:
                self.validated_after.append(self.global_step)

        def configure_optimizers(self):
            opt = torch.optim.SGD(self.parameters(), lr=1.0)
            left = lambda step: 1 - (training_seconds(self.trainer) or 0.0) / 600  # noqa: E731
            return {
                "optimizer": opt,
                "lr_scheduler": {"scheduler": torch.optim.lr_scheduler.LambdaLR(opt, left), "interval": "step"},
            }

    data = torch.utils.data.DataLoader(torch.randn(8 * STEPS, 2), batch_size=4)
    trainer = L.Trainer(
        accelerator="cpu",
        devices=1,
        num_nodes=2,
        strategy="ddp",
        max_steps=STEPS,
        max_time={"minutes": 10},
        **plan.trainer_args(),
        num_sanity_val_steps=0,
        callbacks=[SharedClock(plan)] if shared else [],
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    model = Tiny()
    trainer.fit(model, data, torch.utils.data.DataLoader(torch.randn(4, 2), batch_size=4))
    (out / f"rank{rank}.json").write_text(json.dumps({"validated": model.validated_after, "lrs": model.lrs}))


def _run(tmp_path: Path, shared: bool) -> list[dict]:
    port, spawn = free_port(), multiprocessing.get_context("spawn")
    procs = [spawn.Process(target=_rank, args=(rank, port, shared, tmp_path)) for rank in (0, 1)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(timeout=180)
    for p in procs:
        if p.is_alive():
            p.kill()
    assert [p.exitcode for p in procs] == [0, 0]
    return [json.loads((tmp_path / f"rank{rank}.json").read_text()) for rank in (0, 1)]


def test_ranks_take_rank_zeros_schedule_validate_after_the_same_steps_and_share_the_learning_rate(tmp_path):
    first, second = _run(tmp_path, shared=True)
    assert 2 <= len(first["validated"]) < STEPS // 2  # every 0.2 s of 40 steps of >= 20 ms, and at the end
    assert first["validated"] == second["validated"]
    assert first["lrs"] == second["lrs"] and first["lrs"][-1] < 1.0


def test_without_the_shared_clock_lightning_ranks_follow_their_own_clocks(tmp_path):
    first, second = _run(tmp_path, shared=False)
    assert len(second["validated"]) > 2 * len(first["validated"])  # the fast clock validates far more often
    assert first["lrs"] != second["lrs"]
