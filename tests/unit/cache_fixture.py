"""A tiny preprocessed cache in the format `seg preprocess` writes, for tests of training on their own."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np


def write_tiny_cache(root: Path, spatial_dims: int = 3, n_cases: int = 6, size: int = 20, seed: int = 0) -> Path:
    """Cases with a bright blob (label 1) next to a dimmer one (label 2) on noise; easy to learn."""
    rng = np.random.default_rng(seed)
    cases = root / "cases"
    cases.mkdir(parents=True, exist_ok=True)
    ids = []
    grid = np.stack(np.meshgrid(*[np.arange(size)] * spatial_dims, indexing="ij"))
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
        np.savez(cases / f"{cid}.npz", image=image[None].astype(np.float32), label=label[None])
        ids.append(cid)
    splits = [{"train": ids[: n_cases - 2], "val": ids[n_cases - 2 :]}, {"train": ids[2:], "val": ids[:2]}]
    (root / "splits.json").write_text(json.dumps(splits))
    fingerprint = {
        "spatial_dims": spatial_dims,
        "num_channels": 1,
        "labels": {"0": "background", "1": "bright", "2": "dim"},
        "median_shape_after_preprocessing": [size] * spatial_dims,
    }
    (root / "fingerprint.json").write_text(json.dumps(fingerprint))
    return root
