"""SEAM's pseudo masks for the training cases of a fold, written as a cache the normal segmentation training reads.

For each training case: the SEAM model's scores with the case's image-level labels (its labels-file entry, else the
classes its mask holds) and the background scores chosen on validation cases; the argmax is the pseudo mask. The
new cache is the source cache with those labels in place of the training cases' masks; validation and test cases
keep their masks, which the second stage reads only to validate and score. The masks of the training cases are
read for presence (unless a labels file gives it) and to score the pseudo masks, never copied into the new cache.
"""

from __future__ import annotations

import shutil
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from seg.data.cache import CASES, Cache
from seg.files import atomic_folder, read_json, write_json, write_npz
from seg.metrics import dice_per_class
from seg.model_folder import ModelBundle
from seg.models.errors import ModelLoadError
from seg.seam.calibration import calibration_record
from seg.seam.presence import presence_of, read_labels_file

RECORD = "pseudo.json"  # <pseudo cache>/pseudo.json: the model, the background, per-case presence and Dice


@dataclass(frozen=True)
class PseudoResult:
    cache: Path
    cases: int
    dice: dict[str, float]  # per class mean Dice of the pseudo masks against the training masks (scoring only)
    background: dict[str, float]  # {class: background score}
    seconds: float


@torch.no_grad()
def pseudo_mask(model: ModelBundle, image: np.ndarray, presence: torch.Tensor) -> np.ndarray:
    """(1, *S) uint8 label map from a preprocessed image (C, *S) and its presence (K - 1,)."""
    scores = model.net.scores(torch.from_numpy(image)[None].float(), presence[None])  # (1, K, *S)
    return scores.argmax(1).to(torch.uint8).numpy()


def write_pseudo_cache(
    model: ModelBundle, source: str | Path, out: str | Path, fold: int | str, labels_file: str | None = None, log=print
) -> PseudoResult:
    if not hasattr(model.net, "scores"):
        raise ModelLoadError(f"{model.source}: not a SEAM model (train it with train.supervision: seam).")
    start = time.perf_counter()
    cache = Cache(source)
    names = list(cache.fingerprint.class_names)
    train_ids = list(cache.split(fold).train)
    given = read_labels_file(labels_file, names, train_ids) if labels_file else None
    model.net.eval()
    records, dice = {}, []
    with atomic_folder(out) as tmp:
        shutil.copytree(cache.root, tmp, dirs_exist_ok=True)
        for i, case_id in enumerate(train_ids):
            case = cache.case(case_id)
            presence = given[case_id] if given else presence_of(case.label, len(names))
            pseudo = pseudo_mask(model, case.image, presence)
            write_npz(tmp / CASES / f"{case_id}.npz", image=case.image, label=pseudo)
            d = dice_per_class(
                torch.from_numpy(pseudo[None]).long(), torch.from_numpy(case.label[None]).long(), len(names)
            )
            dice.append(d)
            records[case_id] = {
                "presence": [names[k + 1] for k in range(len(names) - 1) if presence[k]],
                "dice": {n: round(float(v), 4) for n, v in zip(names[1:], d, strict=True)},
            }
            log(
                f"pseudo mask {case_id} [{i + 1}/{len(train_ids)}]: "
                + ", ".join(f"{n} {v:.3f}" for n, v in records[case_id]["dice"].items())
            )
        mean = torch.nanmean(torch.stack(dice).double(), 0) if dice else torch.zeros(len(names) - 1)
        summary = {n: round(float(v), 4) for n, v in zip(names[1:], mean, strict=True)}
        placement = calibration_record(model.net, names)
        background = placement["background"]
        write_json(
            tmp / RECORD,
            {
                "model": model.source,
                "source_cache": str(cache.root),
                "fold": fold,
                **placement,
                "presence_from": labels_file or "the masks",
                "dice_mean": summary,
                "cases": records,
            },
        )
    return PseudoResult(Path(out), len(train_ids), summary, background, time.perf_counter() - start)


def pseudo_record(cache: str | Path) -> dict:
    return read_json(Path(cache) / RECORD)
