"""The embedded dataset: small MRI-like scans with two adjacent structures, generated in seconds, no download.

Each case is a head-like region (air outside is exactly 0, so cropping has work to do) of textured tissue, a dark
CSF-like blob as a distractor, and a bent ellipsoid split across its long axis into two touching structures
(label 1 "head", label 2 "body", a stand-in for the hippocampus), brighter than the tissue and of slightly
different intensity, so a small U-Net can learn them. Position, size, bend, orientation, voxel spacing
(anisotropic in 3D) and the stored axis directions vary per case; partial-volume blur, Rician-like noise and a
smooth multiplicative bias field make it look acquired. Written in the MSD layout: dataset.json, imagesTr/,
labelsTr/ as .nii.gz; 2D cases are 2D NIfTI files (same layout, so one reader serves both).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from seg.files import atomic_path, write_json

SYNTHETIC_VERSION = 1
LABELS = {"0": "background", "1": "head", "2": "body"}


def _random_rotation(rng: np.random.Generator, d: int) -> np.ndarray:
    q, r = np.linalg.qr(rng.normal(size=(d, d)))
    q = q * np.sign(np.diag(r))[None, :]
    if np.linalg.det(q) < 0:
        q[:, 0] = -q[:, 0]
    return q


def make_case(rng: np.random.Generator, spatial_dims: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One case: (image float32, label uint8, 4x4 affine), arrays in stored (possibly flipped) voxel order."""
    from scipy import ndimage

    d = spatial_dims
    spacing = rng.uniform(0.9, 1.2, d)
    if d == 3:
        spacing[2] = rng.uniform(1.0, 1.5)  # thicker slices, as in many MRI protocols
    fov = rng.uniform(40.0, 48.0)  # mm per axis
    shape = tuple(int(round(fov / s)) for s in spacing)
    axes = [(np.arange(n) - (n - 1) / 2) * s for n, s in zip(shape, spacing, strict=True)]
    x = np.stack(np.meshgrid(*axes, indexing="ij"), axis=-1)  # (*shape, d) world mm, centred

    head = np.sum((x / (0.48 * fov)) ** 2, axis=-1) <= 1.0
    u = (x - rng.uniform(-4, 4, d)) @ _random_rotation(rng, d)  # structure frame: axis 0 is the long axis
    semi = np.concatenate([[rng.uniform(10, 14)], rng.uniform(3.5, 6.0, d - 1)])
    u[..., 1] -= rng.uniform(-0.04, 0.04) * u[..., 0] ** 2  # bend along the long axis
    inside = np.sum((u / semi) ** 2, axis=-1) <= 1.0
    cut = rng.uniform(-0.25, 0.25) * semi[0]
    label = np.where(inside, np.where(u[..., 0] < cut, 1, 2), 0).astype(np.uint8)

    csf_c = rng.uniform(-10, 10, d)
    csf = np.sum(((x - csf_c) / rng.uniform(3, 7, d)) ** 2, axis=-1) <= 1.0

    texture = ndimage.gaussian_filter(rng.normal(size=shape), 2.0)
    tissue = 0.45 + 0.6 * texture / (texture.std() + 1e-8) * 0.08
    image = np.where(head, tissue, 0.0)
    image[csf & head & ~inside] = 0.15
    image[label == 1] = rng.uniform(0.72, 0.8)
    image[label == 2] = rng.uniform(0.62, 0.68)
    image = ndimage.gaussian_filter(image, 0.7 / spacing)  # partial volume at edges (sigma in voxels)
    noise = rng.normal(0, 0.04, (2, *shape))
    image = np.sqrt((image + noise[0]) ** 2 + noise[1] ** 2)  # magnitude of complex noise: Rician, like MRI
    r = np.sqrt(np.sum((x / fov) ** 2, axis=-1))
    bias = np.exp(np.tensordot(x / fov, rng.uniform(-0.3, 0.3, d), axes=1) + rng.uniform(-0.3, 0.3) * r**2)
    image = np.where(head, image * bias * rng.uniform(300, 1200), 0.0).astype(np.float32)

    affine = np.eye(4)
    affine[:d, :d] = np.diag(spacing)
    affine[:d, 3] = -(np.array(shape) - 1) / 2 * spacing
    for axis in range(d):  # store some axes reversed (e.g. LPS-like), with a matching affine
        if rng.random() < 0.25:
            image, label = np.flip(image, axis), np.flip(label, axis)
            affine[:d, 3] += affine[:d, axis] * (shape[axis] - 1)
            affine[:d, axis] *= -1
    return np.ascontiguousarray(image), np.ascontiguousarray(label), affine


def _save(array: np.ndarray, affine: np.ndarray, path: Path) -> None:
    import nibabel as nib

    img = nib.Nifti1Image(array, affine)
    img.header.set_qform(affine, code=1)
    img.header.set_sform(affine, code=1)
    img.header.set_xyzt_units("mm")
    with atomic_path(path) as tmp:
        nib.save(img, str(tmp))


def make_synthetic_dataset(out_dir: str | Path, spatial_dims: int = 3, n_cases: int = 24, seed: int = 0) -> Path:
    """Write the dataset to `out_dir` (MSD layout) and return it; a folder already generated with the same
    arguments is reused as is. Case i depends only on (seed, i, spatial_dims)."""
    if spatial_dims not in (2, 3):
        raise ValueError(f"spatial_dims must be 2 or 3, got {spatial_dims}.")
    out = Path(out_dir)
    params = {"version": SYNTHETIC_VERSION, "spatial_dims": spatial_dims, "n_cases": n_cases, "seed": seed}
    ids = [f"synth{spatial_dims}d_{i:03d}" for i in range(n_cases)]
    meta_path = out / "dataset.json"
    if meta_path.is_file():
        try:
            same = json.loads(meta_path.read_text()).get("synthetic") == params
        except ValueError:
            same = False
        if same and all((out / sub / f"{c}.nii.gz").is_file() for c in ids for sub in ("imagesTr", "labelsTr")):
            return out
    for sub in ("imagesTr", "labelsTr"):
        (out / sub).mkdir(parents=True, exist_ok=True)
    for i, case_id in enumerate(ids):
        rng = np.random.default_rng([seed, i, spatial_dims])
        image, label, affine = make_case(rng, spatial_dims)
        _save(image, affine, out / "imagesTr" / f"{case_id}.nii.gz")
        _save(label, affine, out / "labelsTr" / f"{case_id}.nii.gz")
    meta = {
        "name": f"Synthetic{spatial_dims}D",
        "description": "Embedded synthetic MRI-like dataset of seg: two adjacent structures (seg.data.synthetic).",
        "tensorImageSize": f"{spatial_dims}D",
        "modality": {"0": "MRI"},
        "labels": LABELS,
        "numTraining": n_cases,
        "numTest": 0,
        "training": [{"image": f"./imagesTr/{c}.nii.gz", "label": f"./labelsTr/{c}.nii.gz"} for c in ids],
        "test": [],
        "synthetic": params,
    }
    write_json(meta_path, meta)  # written last: marks the folder complete
    return out
