"""Progress as a person reads it: status lines when stdout is not a terminal, count and ETA per case."""

from __future__ import annotations

import io
from types import SimpleNamespace

import torch
from lightning.pytorch.callbacks import Timer

from seg.case_progress import CaseProgress, clock
from seg.train.progress import BudgetBar, StatusLines, progress_callbacks, time_left


def _trainer(**kw):
    base = dict(
        current_epoch=2,
        max_epochs=10,
        global_step=37,
        global_rank=0,
        sanity_checking=False,
        callbacks=[],
        callback_metrics={"train/loss": torch.tensor(0.4123), "val/dice_mean": torch.tensor(0.8125)},
    )
    return SimpleNamespace(**{**base, **kw})


def test_status_lines_say_epoch_step_loss_dice_best_and_what_is_left():
    out = io.StringIO()
    status = StatusLines(every_s=60.0, stream=out)
    trainer = _trainer()
    status.on_train_start(trainer, None)
    status.on_train_batch_end(trainer, None, None, None, 0)
    assert out.getvalue() == ""  # less than a minute since the start: nothing yet
    status.on_validation_end(trainer, None)
    trainer.callback_metrics["val/dice_mean"] = torch.tensor(0.5)
    status.on_validation_end(trainer, None)
    first, second = out.getvalue().splitlines()
    assert first.startswith("seg train: epoch 3/10, step 37, loss 0.412, val dice 0.812 (best 0.812), 0:00 elapsed")
    assert first.endswith("8 epochs left")
    assert "val dice 0.500 (best 0.812)" in second
    status._last -= 61  # a minute later, during training
    status.on_train_batch_end(trainer, None, None, None, 0)
    assert len(out.getvalue().splitlines()) == 3


def test_time_left_reads_the_time_budget_before_the_epochs():
    timer = Timer(duration={"minutes": 10})
    timer.time_remaining = lambda stage="train": 451.0
    assert time_left(_trainer(callbacks=[timer])) == "7:31 left"
    assert time_left(_trainer()) == "8 epochs left"
    assert clock(3725) == "1:02:05" and clock(59.6) == "1:00"


def test_a_log_file_gets_status_lines_and_a_terminal_gets_the_bar(monkeypatch):
    monkeypatch.setattr("sys.stdout", io.StringIO())
    callbacks, bar = progress_callbacks()
    assert not bar and isinstance(callbacks[0], StatusLines)

    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    monkeypatch.setattr("sys.stdout", Terminal())
    monkeypatch.setenv("SEG_PROGRESS", "1")
    callbacks, bar = progress_callbacks()
    assert bar and isinstance(callbacks[0], BudgetBar)
    monkeypatch.setenv("SEG_PROGRESS", "0")
    assert not progress_callbacks()[1]


def test_case_lines_end_with_count_and_eta_when_there_is_no_bar():
    out = io.StringIO()
    progress = CaseProgress(3, "seg infer", stream=out)
    progress.started -= 6.0  # as if the first case took 6 s
    progress.done("    ok  case_a  6.0 s")
    progress.done("failed: b.nii.gz: file is empty", tag=False)
    lines = out.getvalue().splitlines()
    assert lines[0] == "    ok  case_a  6.0 s  [1/3, ETA 0:12]" and lines[1] == "failed: b.nii.gz: file is empty"
