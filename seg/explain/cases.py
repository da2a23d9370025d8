"""The cases an analysis reads: preprocessed image (C, *S), reference label on that same grid, and the properties
that restore maps to the original file's geometry.

Two sources: the pipeline's cache (evaluation cases = the validation fold, and training-fold cases to choose
thresholds, which need no original files), or image files (`--cases`, with `--labels`), preprocessed exactly as the
model's training data (`preprocess_image`); their labels are brought onto the preprocessed grid by the same
reorientation, crop and (nearest-neighbour) resampling.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from seg.data.cache import Cache
from seg.data.errors import DataError
from seg.data.geometry import grid_mismatch, to_canonical
from seg.data.io import read_image
from seg.data.preprocess import preprocess_image
from seg.data.properties import CaseProperties
from seg.data.resample import resample
from seg.infer.cases import (
    FLOAT_FORMATS,
    FLOAT_SUFFIX_FOR_2D_FORMATS,
    SELF_CONTAINED,
    InferCase,
    attach_labels,
    find_cases,
)
from seg.model_folder import ModelBundle


@dataclass
class AnalysisCase:
    case_id: str
    image: np.ndarray  # (C, *S) preprocessed float32
    label: np.ndarray | None  # (*S) uint8 class ids on the preprocessed grid; None: no reference
    props: CaseProperties | None  # restores maps to the original grid; None: measured only (threshold choice)

    @property
    def float_suffix(self) -> str:
        """Extension of float maps: the input's format, or NRRD for formats that cannot hold floats (PNG, ...)."""
        suffix = InferCase(self.case_id, tuple(self.props.image_files)).suffix if self.props else ".nii.gz"
        suffix = SELF_CONTAINED.get(suffix, suffix)
        return suffix if suffix in FLOAT_FORMATS else FLOAT_SUFFIX_FOR_2D_FORMATS


def pipeline_cases(cache_dir: str | Path, fold: int | str, max_cases: int, select_cases: int) -> tuple[list, list]:
    """(evaluation cases: the first `max_cases` of the validation fold, with properties;
    selection cases: the first `select_cases` of the training fold, arrays only)."""
    cache = Cache(cache_dir)
    split = cache.split(fold)
    evaluated = [cache_case(cache, c, with_props=True) for c in sorted(cache.evaluation_ids(fold))[:max_cases]]
    selection = [cache_case(cache, c, with_props=False) for c in sorted(split.train)[:select_cases]]
    return evaluated, selection


def cache_case(cache: Cache, case_id: str, with_props: bool) -> AnalysisCase:
    case = cache.case(case_id, max_foreground=0)
    return AnalysisCase(case_id, case.image, case.label[0], cache.properties(case_id) if with_props else None)


def file_cases(spec: str, labels: str | None, model: ModelBundle, max_cases: int) -> list[AnalysisCase]:
    """The first `max_cases` images of a folder, file or glob, preprocessed like the model's training data."""
    out = []
    binary_255 = model.fingerprint.preprocessing.binary_255
    for case in attach_labels(find_cases(spec, model.config.model.in_channels), labels)[:max_cases]:
        image, props = preprocess_image(list(case.images), model.fingerprint)
        label = label_on_grid(case.label, props, binary_255) if case.label else None
        out.append(AnalysisCase(case.case_id, image, label, props))
    return out


def label_on_grid(path: str | Path, props: CaseProperties, binary_255: bool = False) -> np.ndarray:
    """A label file (original grid) -> (*S) uint8 on the preprocessed grid: reorient, crop, nearest resampling."""
    array, geometry = read_image(path)
    mismatch = grid_mismatch(path, geometry, props.geometry)
    if mismatch:
        raise DataError(mismatch)
    label = (array > 0) if binary_255 else np.rint(array)  # 0/255 masks mean 0/1
    canonical = to_canonical(label.astype(np.uint8)[None], props.reorientation, channel_first=True)
    cropped = canonical[(slice(None), *(slice(a, b) for a, b in props.bbox))]
    return resample(cropped, props.resampled_shape, 0)[0]
