"""The pipeline's evaluation cases: the validation fold of the preprocessed cache, as their original files
(images and labels), so the infer and analyze stages score exactly what training held out."""

from __future__ import annotations

from pathlib import Path

from seg.data.properties import CaseProperties
from seg.infer.cases import InferCase
from seg.train.cache import load_split


def evaluation_cases(cache_dir: str | Path, fold: int) -> list[InferCase]:
    """Cases of fold `fold`'s validation split, sorted by id, with their original image and label files."""
    _, val_ids = load_split(cache_dir, fold)
    cases = []
    for case_id in sorted(val_ids):
        props = CaseProperties.load(Path(cache_dir) / "cases" / f"{case_id}.json")
        cases.append(InferCase(case_id, tuple(props.image_files), props.label_file))
    return cases
