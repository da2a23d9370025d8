"""What was done to one case, so that `restore_to_original` can undo it exactly: `<cache>/cases/<id>.json`."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from seg.data.geometry import Geometry, Reorientation
from seg.files import read_json, write_json


@dataclass(frozen=True)
class CaseProperties:
    """Steps from the original file to the preprocessed array, in order: reorient, crop, normalise, resample.

    Shapes and spacings after reorientation are in canonical axis order; `geometry` is the original file's.
    """

    case_id: str
    image_files: tuple[str, ...]
    label_file: str | None
    geometry: Geometry  # of the first image file: write_image(restored, geometry, path) recreates its grid
    reorientation: Reorientation  # file axes -> canonical axes
    canonical_shape: tuple[int, ...]  # spatial shape after reorientation
    original_spacing: tuple[float, ...]  # canonical axis order
    bbox: tuple[tuple[int, int], ...]  # [start, stop) per canonical axis of the non-zero crop
    cropped_shape: tuple[int, ...]
    target_spacing: tuple[float, ...]
    resampled_shape: tuple[int, ...]  # the preprocessed array's spatial shape
    preprocessed_affine: tuple[tuple[float, ...], ...]  # voxel-to-world of the preprocessed array
    normalization: tuple[dict[str, Any], ...]  # per channel, with the values used (per-case mean/std)
    cache_key: str = ""  # inputs and settings hash: a rerun skips the case when it matches

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["geometry"] = self.geometry.to_dict()
        d["reorientation"] = self.reorientation.to_dict()
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> CaseProperties:
        d = dict(d)
        d["geometry"] = Geometry.from_dict(d["geometry"])
        d["reorientation"] = Reorientation.from_dict(d["reorientation"])
        for key in (
            "image_files",
            "canonical_shape",
            "original_spacing",
            "cropped_shape",
            "target_spacing",
            "resampled_shape",
            "normalization",
        ):
            d[key] = tuple(d[key])
        d["bbox"] = tuple(tuple(b) for b in d["bbox"])
        d["preprocessed_affine"] = tuple(tuple(r) for r in d["preprocessed_affine"])
        return cls(**d)

    def save(self, path: str | Path) -> Path:
        return write_json(path, self.to_dict())

    @classmethod
    def load(cls, path: str | Path) -> CaseProperties:
        return cls.from_dict(read_json(path))
