"""The training history: epochs counted, curves plotted at most once a minute and at the end."""

from __future__ import annotations

import pytest
import torch


def test_history_counts_epochs_with_and_without_validation(tmp_path):
    import math
    from types import SimpleNamespace

    import torch

    from seg.train.history import HistoryCallback

    history = HistoryCallback(tmp_path, ["a"])
    trainer = SimpleNamespace(sanity_checking=False, global_rank=0, current_epoch=0, global_step=5, callback_metrics={})
    trainer.callback_metrics = {"val/dice_mean": torch.tensor(0.5), "val/dice_a": torch.tensor(0.5)}
    history.on_validation_end(trainer, None)  # Lightning validates before the epoch's end hooks
    trainer.callback_metrics = {**trainer.callback_metrics, "train/loss": torch.tensor(1.5)}
    history.on_train_epoch_end(trainer, None)
    trainer.current_epoch, trainer.global_step, trainer.callback_metrics = 1, 10, {"train/loss": torch.tensor(0.9)}
    history.on_train_epoch_end(trainer, None)  # an epoch without validation
    assert [(r["epoch"], r["train_loss"]) for r in history.rows] == [(0, 1.5), (1, pytest.approx(0.9))]
    assert math.isnan(history.rows[1]["val_dice_mean"])
    summary = history.summary(elapsed_s=10.0, samples_per_epoch=4)
    assert summary["epochs"] == 2 and summary["best_epoch"] == 0 and summary["best_val_dice_mean"] == 0.5
    assert summary["samples_per_s"] == 0.8 and (tmp_path / "train_history.csv").is_file()


def test_history_plots_at_most_once_a_minute_and_always_at_the_end(tmp_path, monkeypatch):
    from types import SimpleNamespace

    from seg.train.history import HistoryCallback

    history, plots = HistoryCallback(tmp_path, ["a"]), []
    monkeypatch.setattr(history, "_plot", lambda: plots.append(len(history.rows)))
    trainer = SimpleNamespace(
        sanity_checking=False,
        global_rank=0,
        current_epoch=0,
        global_step=1,
        callback_metrics={"train/loss": torch.tensor(1.0)},
    )
    for epoch in range(3):
        trainer.current_epoch = epoch
        history.on_train_epoch_end(trainer, None)
    history.on_train_end(trainer, None)
    assert plots == [1, 3]  # the first epoch, then the end; the CSV has every epoch
    assert len((tmp_path / "train_history.csv").read_text().splitlines()) == 4
