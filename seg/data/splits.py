"""Deterministic k-fold splits: the same case ids, k and seed always give the same `splits.json`."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from seg.data.errors import DataError
from seg.files import write_json


def make_splits(
    case_ids: Sequence[str], folds: int, seed: int, test_fraction: float = 0.0
) -> list[dict[str, list[str]]]:
    """k folds as [{"train": [...], "val": [...], "test": [...]}, ...]: a test part of round(test_fraction * n)
    cases is drawn first and lies in no fold (the same list in every entry); every other case is in exactly one
    val list. Ids are sorted before shuffling, so the order in which cases were found does not matter."""
    ids = sorted(set(case_ids))
    order = np.random.default_rng(seed).permutation(len(ids))
    n_test = int(round(test_fraction * len(ids)))
    test = sorted(ids[i] for i in order[:n_test])
    test_set = set(test)
    rest = [c for c in ids if c not in test_set]
    if len(rest) < folds:
        raise DataError(
            f"{len(rest)} valid cases{' outside the test part' if test else ''} cannot fill {folds} folds. Lower "
            f"data.folds to at most {len(rest)}{', lower data.test_fraction' if test else ''} or add cases."
        )
    order = np.random.default_rng(seed).permutation(len(rest)) if test else order
    chunks = np.array_split(order, folds)
    splits = []
    for k in range(folds):
        val = sorted(rest[i] for i in chunks[k])
        val_set = set(val)
        splits.append({"train": [c for c in rest if c not in val_set], "val": val, "test": test})
    return splits


def save_splits(splits: list[dict[str, list[str]]], path: str | Path) -> Path:
    return write_json(path, splits)


def load_splits(path: str | Path) -> list[dict[str, list[str]]]:
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: splits file not found. Run `seg preprocess` first.")
    return json.loads(path.read_text())
