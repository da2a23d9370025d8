"""Deterministic k-fold splits: the same case ids, k and seed always give the same `splits.json`."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from seg.data.errors import DataError
from seg.files import write_json


def make_splits(case_ids: Sequence[str], folds: int, seed: int) -> list[dict[str, list[str]]]:
    """k folds as [{"train": [...], "val": [...]}, ...]; every case is in exactly one val list.

    Ids are sorted before shuffling, so the order in which cases were found does not matter.
    """
    ids = sorted(set(case_ids))
    if len(ids) < folds:
        raise DataError(
            f"{len(ids)} valid cases cannot fill {folds} folds. Lower data.folds to at most {len(ids)} or add cases."
        )
    order = np.random.default_rng(seed).permutation(len(ids))
    chunks = np.array_split(order, folds)
    splits = []
    for k in range(folds):
        val = sorted(ids[i] for i in chunks[k])
        val_set = set(val)
        splits.append({"train": [c for c in ids if c not in val_set], "val": val})
    return splits


def save_splits(splits: list[dict[str, list[str]]], path: str | Path) -> Path:
    return write_json(path, splits)


def load_splits(path: str | Path) -> list[dict[str, list[str]]]:
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: splits file not found. Run `seg preprocess` first.")
    return json.loads(path.read_text())
