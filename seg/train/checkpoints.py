"""Training checkpoints that a kill or a full disk cannot leave half-written, and the choice of the one to resume.

A checkpoint is written to a temporary file beside it, flushed to disk, then renamed over the old one: a reader
sees the previous checkpoint or the new one, never a part. A file damaged anyway (copied in part, a disk fault)
is named in one line, and training resumes from the newest checkpoint that is whole.
"""

from __future__ import annotations

import json
import os
import sys
import zipfile
from pathlib import Path
from typing import Any

from lightning.fabric.plugins.io.torch_io import TorchCheckpointIO

from seg.errors import MissingInputError

STATE_FILE = "run.json"  # beside the checkpoints: the MLflow run a resume continues, the validation plan


class DurableCheckpointIO(TorchCheckpointIO):
    """Lightning's checkpoint writer with the file flushed and renamed into place (local paths)."""

    def save_checkpoint(self, checkpoint: dict[str, Any], path, storage_options: Any | None = None) -> None:
        import torch

        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        try:
            with open(tmp, "wb") as f:
                torch.save(checkpoint, f)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)
        finally:
            tmp.unlink(missing_ok=True)


def damage(path: Path) -> str | None:
    """Why `path` is not a whole checkpoint (torch's zip format: every member read and checked), or None."""
    try:
        with zipfile.ZipFile(path) as archive:
            bad = archive.testzip()
    except (zipfile.BadZipFile, OSError, EOFError) as e:
        return f"not a complete checkpoint ({e})"
    return f"member {bad} fails its checksum" if bad else None


def resume_checkpoint(ckpt_dir: Path, last: str = "last.ckpt") -> Path:
    """The newest whole checkpoint in `ckpt_dir` (`last` first on equal times); each damaged one newer than it is
    named on stderr. None whole: a one-line error with the fix."""
    found = sorted(ckpt_dir.glob("*.ckpt"), key=lambda p: (p.stat().st_mtime_ns, p.name == last), reverse=True)
    if not found:
        raise MissingInputError(
            f"{ckpt_dir / last}: no checkpoint to resume from. Run `seg train` without --resume first."
        )
    problems = []
    for path in found:
        why = damage(path)
        if why is None:
            for line in problems:
                print(
                    f"seg train: {line}; resuming from {path.name}, the newest checkpoint that loads",
                    file=sys.stderr,
                    flush=True,
                )
            return path
        problems.append(f"{path} is damaged: {why}")
    raise MissingInputError(
        f"{problems[0]}, and no other checkpoint in {ckpt_dir} loads. Run `seg train` without --resume to start over."
    )


def checkpoint_to_resume(out_dir: Path) -> tuple[str, str, str]:
    """(MLflow run id, tracking URI, checkpoint path) of the run `seg train --resume` continues: the newest
    checkpoint that is whole (a damaged one is named in one line)."""
    state_path = out_dir / STATE_FILE
    if not state_path.is_file():
        raise MissingInputError(f"{state_path}: no run to resume. Run `seg train` without --resume first.")
    checkpoint = resume_checkpoint(out_dir / "checkpoints")
    state = json.loads(state_path.read_text())
    return state["run_id"], state["tracking_uri"], str(checkpoint)
