"""Checkpoints: written whole or not at all, and resume takes the newest whole one."""

from __future__ import annotations

import os

import pytest
import torch

from seg.errors import MissingInputError, UserError
from seg.train.checkpoints import DurableCheckpointIO, damage, resume_checkpoint


def _write(io: DurableCheckpointIO, path, step: int) -> None:
    io.save_checkpoint({"global_step": step, "state_dict": {"w": torch.full((64, 64), float(step))}}, path)


def test_a_write_that_fails_midway_leaves_the_previous_checkpoint_whole(tmp_path, monkeypatch):
    io, path = DurableCheckpointIO(), tmp_path / "last.ckpt"
    _write(io, path, 1)

    def killed(obj, f, *args, **kwargs):
        f.write(b"PK\x03\x04 half a checkpoint")
        raise KeyboardInterrupt  # as a kill lands during the write

    monkeypatch.setattr(torch, "save", killed)
    with pytest.raises(KeyboardInterrupt):
        _write(io, path, 2)
    monkeypatch.undo()
    assert damage(path) is None and torch.load(path, weights_only=True)["global_step"] == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["last.ckpt"]  # no temporary file left behind


def test_resume_takes_the_newest_checkpoint_that_loads_and_names_the_damaged_one(tmp_path, capsys):
    io = DurableCheckpointIO()
    _write(io, tmp_path / "best.ckpt", 3)
    _write(io, tmp_path / "last.ckpt", 5)
    os.utime(tmp_path / "best.ckpt", ns=(1, 1))
    assert resume_checkpoint(tmp_path) == tmp_path / "last.ckpt"
    with open(tmp_path / "last.ckpt", "r+b") as f:  # as a kill or a full disk can leave a plain write
        f.truncate(1000)
    assert "not a complete checkpoint" in damage(tmp_path / "last.ckpt")
    assert resume_checkpoint(tmp_path) == tmp_path / "best.ckpt"
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "last.ckpt is damaged" in err and "resuming from best.ckpt" in err


def test_resume_without_a_whole_checkpoint_is_a_one_line_user_error(tmp_path):
    with pytest.raises(MissingInputError, match="no checkpoint to resume from"):
        resume_checkpoint(tmp_path)
    (tmp_path / "last.ckpt").write_bytes(b"\0" * 1000)
    with pytest.raises(UserError, match=r"last.ckpt is damaged.*Run `seg train` without --resume") as caught:
        resume_checkpoint(tmp_path)
    assert "\n" not in str(caught.value)
