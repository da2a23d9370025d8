"""The pipeline's evaluation cases: the validation fold of the preprocessed cache, as their original files
(images and labels), so the infer and analyze stages score exactly what training held out."""

from __future__ import annotations

from pathlib import Path

from seg.data.cache import Cache
from seg.infer.cases import InferCase


def evaluation_cases(cache_dir: str | Path, fold: int | str) -> list[InferCase]:
    """Fold `fold`'s validation cases (for "all": the test part), sorted by id, with their original image and
    label files."""
    cache = Cache(cache_dir)
    cases = []
    for case_id in sorted(cache.evaluation_ids(fold)):
        props = cache.properties(case_id)
        cases.append(InferCase(case_id, tuple(props.image_files), props.label_file))
    return cases
