"""Read the preprocessed cache (written by `seg preprocess`) into memory: arrays, splits and fingerprint."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np


@dataclass
class Case:
    case_id: str
    image: np.ndarray  # (C, *spatial) float32, normalised
    label: np.ndarray  # (1, *spatial) uint8
    foreground: np.ndarray  # (N, ndim) voxel coordinates of foreground, subsampled


class CacheError(FileNotFoundError):
    """The preprocessed cache is missing or incomplete."""


def _read_json(path: Path) -> dict | list:
    if not path.is_file():
        raise CacheError(f"{path}: not found. Run `seg preprocess` (or `dvc repro preprocess`) first.")
    return json.loads(path.read_text())


def load_fingerprint(cache_dir: str | Path) -> dict:
    return _read_json(Path(cache_dir) / "fingerprint.json")  # type: ignore[return-value]


def load_split(cache_dir: str | Path, fold: int) -> tuple[list[str], list[str]]:
    splits = _read_json(Path(cache_dir) / "splits.json")
    if not 0 <= fold < len(splits):
        raise CacheError(f"{cache_dir}/splits.json has {len(splits)} folds, got fold={fold}. Pick 0..{len(splits) - 1}.")
    return list(splits[fold]["train"]), list(splits[fold]["val"])


def load_case(cache_dir: str | Path, case_id: str, max_foreground: int = 20000, seed: int = 0) -> Case:
    path = Path(cache_dir) / "cases" / f"{case_id}.npz"
    if not path.is_file():
        raise CacheError(f"{path}: case listed in splits.json is missing. Rerun `seg preprocess`.")
    with np.load(path) as z:
        image = z["image"].astype(np.float32, copy=False)
        if "label" not in z:
            raise CacheError(f"{path}: no 'label' array; training needs labelled cases.")
        label = z["label"].astype(np.uint8, copy=False)
    fg = np.argwhere(label[0] > 0)
    if len(fg) > max_foreground:
        fg = fg[np.random.default_rng(seed).choice(len(fg), max_foreground, replace=False)]
    return Case(case_id, image, label, fg)
