"""Tiny preprocessed caches and fingerprints for tests of training, inference and analysis on their own, made
by the real writers (`seg.data.preprocess`, `seg.data.cache`)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from seg.config import DataConfig
from seg.data.cache import Fingerprint, PreprocessingPlan

LABELS = {"0": "background", "1": "bright", "2": "dim"}


def write_tiny_cache(root: Path, spatial_dims: int = 3, n_cases: int = 6, size: int = 20, seed: int = 0) -> Path:
    """Cases with a bright blob (label 1) next to a dimmer one (label 2) on noise; easy to learn. Written as an
    MSD dataset beside `root` and preprocessed into `root` by `seg preprocess`'s own code (3 folds)."""
    import nibabel as nib

    from seg.data.preprocess import preprocess_dataset

    rng = np.random.default_rng(seed)
    raw = root.with_name(root.name + "_raw")
    for sub in ("imagesTr", "labelsTr"):
        (raw / sub).mkdir(parents=True, exist_ok=True)
    grid = np.stack(np.meshgrid(*[np.arange(size)] * spatial_dims, indexing="ij"))
    ids = []
    for i in range(n_cases):
        centre = rng.integers(6, size - 6, spatial_dims)
        d1 = np.sqrt(((grid - centre.reshape(-1, *[1] * spatial_dims)) ** 2).sum(0))
        shifted = centre.copy()
        shifted[0] = min(centre[0] + 4, size - 3)
        d2 = np.sqrt(((grid - shifted.reshape(-1, *[1] * spatial_dims)) ** 2).sum(0))
        label = np.zeros([size] * spatial_dims, np.uint8)
        label[d2 < 3] = 2
        label[d1 < 3] = 1
        image = rng.normal(0, 0.3, label.shape) + 2.0 * (label == 1) + 1.0 * (label == 2)
        cid = f"case_{i:03d}"
        for sub, array in (("imagesTr", image.astype(np.float32)), ("labelsTr", label)):
            nib.save(nib.Nifti1Image(array, np.eye(4)), str(raw / sub / f"{cid}.nii.gz"))
        ids.append(cid)
    meta = {
        "name": "Tiny",
        "tensorImageSize": f"{spatial_dims}D",
        "modality": {"0": "MRI"},
        "labels": LABELS,
        "training": [{"image": f"./imagesTr/{c}.nii.gz", "label": f"./labelsTr/{c}.nii.gz"} for c in ids],
    }
    (raw / "dataset.json").write_text(json.dumps(meta))
    data = DataConfig(root=str(raw), cache_dir=str(root), num_workers=0, folds=3, spatial_dims=spatial_dims)
    preprocess_dataset(data, progress=False)
    return root


def tiny_fingerprint(
    spatial_dims: int = 3, num_channels: int = 1, class_names=("background", "a", "b"), **plan
) -> Fingerprint:
    """A fingerprint for a model built in a test (no dataset behind it): z-score, unit spacing, no crop."""
    defaults = {
        "target_spacing": (1.0,) * spatial_dims,
        "normalization": ({"scheme": "zscore"},) * num_channels,
        "color": "grey",
        "crop_nonzero": False,
        "image_order": 1,
    }
    preprocessing = PreprocessingPlan(spatial_dims, num_channels, **{**defaults, **plan})
    labels = {str(k): name for k, name in enumerate(class_names)}
    return Fingerprint("test", spatial_dims, num_channels, labels, tuple(class_names), preprocessing)
