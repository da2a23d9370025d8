"""When training validates: by epochs, by wall clock, and as measured."""

from __future__ import annotations

import pytest
import torch


def test_time_based_validation_also_scores_the_weights_the_budget_ends_with():
    import time

    import lightning as L

    from seg.config import TrainConfig
    from seg.train.schedule import plan_validation

    def validation_schedule(tc):
        unused = lambda: pytest.fail("a given schedule is not measured")  # noqa: E731
        return plan_validation(tc, unused, unused).trainer_args()

    class Tiny(L.LightningModule):
        def __init__(self):
            super().__init__()
            self.lin, self.validated_at = torch.nn.Linear(2, 1), []

        def training_step(self, batch, batch_idx):
            time.sleep(0.02)
            return self.lin(batch).sum()

        def validation_step(self, batch, batch_idx):
            self.validated_at.append(self.global_step)

        def configure_optimizers(self):
            return torch.optim.SGD(self.parameters(), lr=0.01)

    assert validation_schedule(TrainConfig(val_every=3)) == {"check_val_every_n_epoch": 3}
    data = torch.utils.data.DataLoader(torch.randn(10_000, 2), batch_size=1)
    module = Tiny()
    trainer = L.Trainer(
        max_time={"seconds": 2},
        max_epochs=1,
        accelerator="cpu",
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        num_sanity_val_steps=0,
        limit_val_batches=1,
        **validation_schedule(TrainConfig(val_every_minutes=0.01)),
    )  # every 0.6 s
    trainer.fit(module, data, data)
    assert len(module.validated_at) >= 2 and module.validated_at[-1] == module.global_step < 10_000


def test_auto_validation_keeps_every_epoch_while_it_fits_the_share_and_thins_out_past_it():
    from seg.config import TrainConfig
    from seg.train.schedule import plan_validation

    cheap = plan_validation(TrainConfig(steps_per_epoch=20), lambda: 0.1, lambda: 0.1)  # 0.1 s against 2 s
    assert cheap.trainer_args() == {"check_val_every_n_epoch": 1}
    # Task04-like: one validation (7 s) costs about one 50-step epoch: every epoch would be half the time
    costly = plan_validation(TrainConfig(steps_per_epoch=50), lambda: 7.0, lambda: 0.14)
    n = costly.trainer_args()["check_val_every_n_epoch"]
    assert n == 9 and 7.0 / (n * 50 * 0.14 + 7.0) <= 0.1 < 7.0 / ((n - 1) * 50 * 0.14 + 7.0)
    budget = plan_validation(TrainConfig(steps_per_epoch=50, max_time_minutes=10), lambda: 7.0, lambda: 0.14)
    assert budget.trainer_args()["check_val_every_n_epoch"] is None
    assert budget.every_minutes == pytest.approx(7.0 * 9 / 60, abs=1e-3)  # 63 s of training per 7 s validation
    assert "one validation 7.0 s" in budget.describe()


def test_measured_validation_time_scales_one_timed_case_to_all_and_shares_it_over_processes():
    import time as clock

    from seg.train.schedule import time_validation

    calls = []

    def predict(x):
        calls.append(x.shape)
        clock.sleep(0.02 * x.numel() / 1000)

    images = [torch.zeros(1, 1, 10, 10, 10), torch.zeros(1, 1, 10, 10, 5)]
    seconds = time_validation(predict, images, processes=1)
    assert calls == [(1, 1, 10, 10, 10)] * 2  # the largest case, once untimed and once timed
    assert 0.028 <= seconds <= 0.045  # 0.02 s for 1000 voxels, scaled to 1500
    assert time_validation(predict, images, processes=2) == pytest.approx(seconds / 2, rel=0.5)
    assert time_validation(predict, [], processes=1) == 0.0
