"""Image geometry (what a file needs to be rewritten exactly) and the canonical orientation used for processing.

Canonical orientation: voxel axes permuted and flipped (never interpolated) so that axis i runs along world axis i
in the positive direction, as nibabel's `io_orientation` defines it. World is RAS for NIfTI and for 3D SimpleITK
images (converted from ITK's LPS); 2D SimpleITK images (PNG, TIFF: photos and microscopy without a patient frame)
keep their own frame, so a PNG is only transposed to (x, y). Inversion is exact: it is the inverse permutation.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

import numpy as np

# 2D SimpleITK images have no patient frame; 3D ones are LPS and get their x and y negated to RAS.
LPS_TO_RAS_MIN_DIMS = 3


@dataclass(frozen=True)
class Geometry:
    """Everything needed to write an array back with the source file's shape, affine and header geometry.

    `affine` maps spatial voxel indices of the file array to world (RAS, see module docstring) and has
    spatial_dims + 1 rows. NIfTI files also keep their raw header (`nifti_header`, base64), so qform/sform codes,
    quaternions and zooms are written back byte for byte; SimpleITK files keep origin, spacing, direction (native
    ITK, LPS) and their metadata dictionary.
    """

    format: str  # "nifti" or "sitk"
    suffix: str  # ".nii.gz", ".nrrd", ".png", ...: output is written in the input's format
    shape: tuple[int, ...]  # the file array as read: (*spatial) or (*spatial, C)
    spatial_dims: int
    dtype: str
    affine: tuple[tuple[float, ...], ...]
    spacing: tuple[float, ...]  # per spatial axis of the file array
    nifti_header: str | None = None  # base64 of the raw NIfTI header block
    nifti_version: int | None = None
    qform_code: int | None = None
    sform_code: int | None = None
    origin: tuple[float, ...] | None = None  # SimpleITK: native origin, spacing and direction
    direction: tuple[float, ...] | None = None
    itk_meta: dict[str, str] = dataclasses.field(default_factory=dict)

    @property
    def spatial_shape(self) -> tuple[int, ...]:
        return self.shape[: self.spatial_dims]

    @property
    def channels(self) -> int | None:
        """Number of channels on the file array's last axis, or None when the file has no channel axis."""
        return self.shape[-1] if len(self.shape) > self.spatial_dims else None

    def affine_array(self) -> np.ndarray:
        return np.asarray(self.affine, dtype=np.float64)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Geometry:
        d = dict(d)
        for key in ("shape", "spacing", "origin", "direction"):
            if d.get(key) is not None:
                d[key] = tuple(d[key])
        d["affine"] = tuple(tuple(float(v) for v in row) for row in d["affine"])
        return cls(**d)


@dataclass(frozen=True)
class Reorientation:
    """canonical = flip(transpose(x, perm), flips): spatial axis j of the canonical array is file axis perm[j]."""

    perm: tuple[int, ...]
    flips: tuple[int, ...]  # canonical axes that are reversed after the transpose

    @property
    def is_identity(self) -> bool:
        return self.perm == tuple(range(len(self.perm))) and not self.flips

    def to_dict(self) -> dict[str, Any]:
        return {"perm": list(self.perm), "flips": list(self.flips)}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Reorientation:
        return cls(tuple(d["perm"]), tuple(d["flips"]))


def canonical_reorientation(affine: np.ndarray) -> Reorientation:
    """The axis permutation and flips that bring a (D+1, D+1) voxel-to-world affine closest to identity."""
    import nibabel as nib

    ornt = nib.orientations.io_orientation(affine)  # row i: (world axis of file axis i, +1 or -1)
    perm = tuple(int(i) for i in np.argsort(ornt[:, 0]))
    flips = tuple(int(ornt[i, 0]) for i in range(len(ornt)) if ornt[i, 1] < 0)
    return Reorientation(perm, tuple(sorted(flips)))


def to_canonical(array: np.ndarray, r: Reorientation, channel_first: bool = False) -> np.ndarray:
    """Reorient the spatial axes (leading, or after a leading channel axis when channel_first)."""
    off = 1 if channel_first else 0
    axes = list(range(array.ndim))
    axes[off : off + len(r.perm)] = [off + p for p in r.perm]
    out = np.transpose(array, axes)
    if r.flips:
        out = np.flip(out, axis=tuple(off + f for f in r.flips))
    return np.ascontiguousarray(out)


def from_canonical(array: np.ndarray, r: Reorientation, channel_first: bool = False) -> np.ndarray:
    """Exact inverse of `to_canonical`."""
    off = 1 if channel_first else 0
    if r.flips:
        array = np.flip(array, axis=tuple(off + f for f in r.flips))
    inv = np.argsort(r.perm)
    axes = list(range(array.ndim))
    axes[off : off + len(r.perm)] = [off + int(p) for p in inv]
    return np.ascontiguousarray(np.transpose(array, axes))


def canonical_affine(affine: np.ndarray, r: Reorientation, spatial_shape: tuple[int, ...]) -> np.ndarray:
    """Voxel-to-world affine of the canonical array (so preprocessed arrays can be saved and viewed)."""
    d = len(r.perm)
    out = np.eye(d + 1)
    for j, p in enumerate(r.perm):
        out[:d, j] = affine[:d, p]
    out[:d, d] = affine[:d, d]
    for j in r.flips:  # index 0 of a flipped axis is the file's last index along it
        n = spatial_shape[r.perm[j]]
        out[:d, d] += out[:d, j] * (n - 1)
        out[:d, j] = -out[:d, j]
    return out


def spacing_from_affine(affine: np.ndarray) -> tuple[float, ...]:
    d = affine.shape[0] - 1
    return tuple(float(np.linalg.norm(affine[:d, j])) for j in range(d))


AFFINE_ATOL = 1e-3  # mm: header round-off between image and label exporters is far below this


def grid_mismatch(label_path: object, label: Geometry, image: Geometry) -> str | None:
    """The one-line problem when a label map is not on its image's grid (shape, then affine within
    `AFFINE_ATOL` mm), else None; the same check for training data, scored predictions and analysed cases."""
    if label.spatial_shape != image.spatial_shape:
        return (
            f"{label_path}: label shape {label.spatial_shape} differs from image shape {image.spatial_shape}. "
            f"Resample the label onto the image grid (nearest neighbour)."
        )
    diff = float(np.abs(label.affine_array() - image.affine_array()).max())
    if diff > AFFINE_ATOL:
        return (
            f"{label_path}: label affine differs from the image's by up to {diff:.4g} mm. "
            f"Copy the image header to the label or resample it onto the image grid."
        )
    return None
