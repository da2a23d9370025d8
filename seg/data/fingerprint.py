"""Dataset fingerprint: per-case analysis (one pass over the raw files) and its summary in `fingerprint.json`.

The summary fixes what preprocessing does to every case, at training and at inference: target spacing (default
the median), normalisation per channel and its parameters, colour handling, crop and interpolation order.
"""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np

from seg.config import DataConfig
from seg.data.cache import Fingerprint, PreprocessingPlan
from seg.data.geometry import canonical_affine, spacing_from_affine
from seg.data.layout import Case, Dataset
from seg.data.normalize import ct_parameters, scheme_for_modality
from seg.data.validate import Expectations, read_case
from seg.files import stable_hash

FINGERPRINT_VERSION = 1
SAMPLES_PER_CASE = 10_000  # foreground voxels kept per case for dataset-wide percentiles (as nnU-Net)


def file_signature(paths: list[Path | None]) -> list[Any]:
    """Path, size and modification time: a changed input file invalidates its cached case."""
    out = []
    for p in paths:
        if p is None:
            out.append(None)
            continue
        try:
            st = Path(p).stat()
            out.append([str(Path(p).resolve()), st.st_size, st.st_mtime_ns])
        except OSError:
            out.append([str(p), None, None])
    return out


def analyze_case(
    case: Case, exp: Expectations, binary_255: bool, problems: list[str]
) -> tuple[dict[str, Any], np.ndarray]:
    """Validate one case and measure it: (summary dict, foreground intensity samples (C, n) float32)."""
    if problems:
        return {"case_id": case.case_id, "problems": list(problems)}, np.zeros((0, 0), np.float32)
    data = read_case(case.images, case.label, exp, binary_255)
    if data.problems:
        return {"case_id": case.case_id, "problems": data.problems}, np.zeros((0, 0), np.float32)
    image, label, r = data.image, data.label, data.reorientation
    spatial = image.shape[1:]
    aff = canonical_affine(data.geometry.affine_array(), r, data.geometry.spatial_shape)
    mask = label[0] > 0 if label is not None and label.any() else np.any(image != 0, axis=0)
    fg = image[:, mask]  # (C, n) foreground voxels
    rng = np.random.default_rng(int(stable_hash(case.case_id), 16) % 2**32)
    if fg.shape[1] > SAMPLES_PER_CASE:
        fg = fg[:, rng.choice(fg.shape[1], SAMPLES_PER_CASE, replace=False)]
    summary = {
        "case_id": case.case_id,
        "problems": [],
        "shape": list(spatial),
        "spacing": list(spacing_from_affine(aff)),
        "num_channels": int(image.shape[0]),
        "label_values": sorted(int(v) for v in np.unique(label)) if label is not None else [],
        "intensity": [
            {"mean": float(c.mean()), "std": float(c.std()), "min": float(c.min()), "max": float(c.max())}
            for c in image
        ],
    }
    return summary, fg.astype(np.float32)


def expectations_for(dataset: Dataset, cfg: DataConfig, spatial_dims: int | None) -> Expectations:
    channels = 3 if cfg.color == "rgb" and dataset.layout == "2d" else len(dataset.modality)
    declared = frozenset(int(k) for k in dataset.labels) if dataset.labels else None
    return Expectations(spatial_dims, channels, declared, cfg.color, cfg.allow_empty_labels)


def declared_spatial_dims(dataset: Dataset, cfg: DataConfig) -> int | None:
    if cfg.spatial_dims is not None:
        return cfg.spatial_dims
    return {"2D": 2, "3D": 3, "4D": 3}.get(str(dataset.tensor_image_size).upper())


def uses_binary_255(dataset: Dataset) -> bool:
    """2D masks stored as 0/255 mean background/foreground unless dataset.json declares a class 255."""
    return dataset.layout == "2d" and not (dataset.labels and "255" in dataset.labels)


def build_fingerprint(
    dataset: Dataset, cfg: DataConfig, exp: Expectations, analyses: list[dict[str, Any]], samples: list[np.ndarray]
) -> Fingerprint:
    """The fingerprint of the valid cases; its plan is what `preprocess_image` needs at inference."""
    valid = [a for a in analyses if not a["problems"]]
    shapes = np.array([a["shape"] for a in valid])
    spacings = _spread(np.array([a["spacing"] for a in valid]))
    spatial_dims, num_channels = int(shapes.shape[1]), valid[0]["num_channels"]
    names = [dataset.modality.get(str(c), "unknown") for c in range(num_channels)]
    intensity, normalization = _channel_intensities(valid, samples, names, cfg)
    label_values = sorted({v for a in valid for v in a["label_values"]})
    labels = _label_names(dataset, label_values)
    target = cfg.target_spacing if cfg.target_spacing is not None else spacings["median"]
    return Fingerprint(
        version=FINGERPRINT_VERSION,
        dataset=dataset.name,
        root=str(dataset.root),
        layout=dataset.layout,
        spatial_dims=spatial_dims,
        num_channels=num_channels,
        channel_names=tuple(names),
        modality=dict(dataset.modality),
        labels=labels,
        class_names=tuple(labels[k] for k in sorted(labels, key=int)),
        label_values=tuple(label_values),
        num_cases=len(analyses),
        num_valid=len(valid),
        shapes=_spread(shapes),
        spacings=spacings,
        intensity=tuple(intensity),
        cases={a["case_id"]: {"shape": a["shape"], "spacing": a["spacing"]} for a in valid},
        preprocessing=PreprocessingPlan(
            spatial_dims=spatial_dims,
            num_channels=num_channels,
            target_spacing=tuple(float(v) for v in target),
            normalization=tuple(normalization),
            color=exp.color,
            crop_nonzero=cfg.crop_nonzero,
            image_order=cfg.image_order,
            label_order=0,
            binary_255=uses_binary_255(dataset),
        ),
        expectations={k: sorted(v) if isinstance(v, frozenset) else v for k, v in asdict(exp).items()},
    )


def _spread(values: np.ndarray) -> dict[str, list]:
    """Min, median and max over cases, per axis (shapes or spacings)."""
    median = [float(v) for v in np.median(values, 0)]
    return {"min": values.min(0).tolist(), "median": median, "max": values.max(0).tolist()}


def _channel_intensities(
    valid: list[dict[str, Any]], samples: list[np.ndarray], names: list[str], cfg: DataConfig
) -> tuple[list[dict[str, float]], list[dict[str, Any]]]:
    """Per channel: statistics of the foreground samples pooled over cases, and the normalisation they fix."""
    lo, hi = cfg.ct_percentiles
    intensity, normalization = [], []
    for c, name in enumerate(names):
        values = np.concatenate([s[c] for s in samples if s.size], axis=0)
        intensity.append(
            {
                "mean": float(values.mean()),
                "std": float(values.std()),
                "min": float(min(a["intensity"][c]["min"] for a in valid)),
                "max": float(max(a["intensity"][c]["max"] for a in valid)),
                "median": float(np.median(values)),
                f"percentile_{lo:g}": float(np.percentile(values, lo)),
                f"percentile_{hi:g}": float(np.percentile(values, hi)),
            }
        )
        scheme = scheme_for_modality(name, cfg.normalization)
        normalization.append(ct_parameters(values, (lo, hi)) if scheme == "ct" else {"scheme": scheme})
    return intensity, normalization


def _label_names(dataset: Dataset, label_values: list[int]) -> dict[str, str]:
    """{label value: class name}: as dataset.json declares them, else background / foreground / label_<v>."""
    return dataset.labels or {
        str(v): ("background" if v == 0 else "foreground" if label_values == [0, 1] else f"label_{v}")
        for v in label_values
    }
