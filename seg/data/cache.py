"""The preprocessed cache, read and written here only: the fingerprint and its preprocessing plan (typed), the
folds, and the cases (arrays + `CaseProperties`). `seg preprocess` writes it; training, inference and analysis
read it through `Cache`.

    <cache>/fingerprint.json   Fingerprint (with its PreprocessingPlan under "preprocessing")
    <cache>/splits.json        [{"train": [ids], "val": [ids]}, ...]
    <cache>/cases/<id>.npz     image float32 (C, *spatial); label uint8 (1, *spatial) when the case has one
    <cache>/cases/<id>.json    CaseProperties (written last: marks the case done)
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np

from seg.data.errors import DataError
from seg.data.properties import CaseProperties
from seg.files import read_json, stable_hash, write_json, write_npz

FINGERPRINT, SPLITS, CASES = "fingerprint.json", "splits.json", "cases"


class CacheError(DataError, FileNotFoundError):
    """The preprocessed cache is missing or incomplete; the message says which file and to rerun preprocessing."""


@dataclass(frozen=True)
class PreprocessingPlan:
    """What preprocessing does to every case, at training and at inference (`fingerprint.json["preprocessing"]`)."""

    spatial_dims: int
    num_channels: int
    target_spacing: tuple[float, ...]
    normalization: tuple[Mapping[str, Any], ...]  # per channel: {"scheme": zscore | ct | none, ct parameters}
    color: str  # grey / first / rgb
    crop_nonzero: bool
    image_order: int  # spline order of image resampling
    label_order: int = 0
    binary_255: bool = False  # 2D masks stored as 0/255 mean 0/1
    orientation: str = "canonical: RAS for NIfTI and 3D SimpleITK images, own frame for 2D SimpleITK images"

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], where: str = FINGERPRINT) -> PreprocessingPlan:
        d = _known(cls, d, where)
        d["target_spacing"] = tuple(float(v) for v in d["target_spacing"])
        d["normalization"] = tuple(dict(n) for n in d["normalization"])
        return cls(**d)

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["target_spacing"], d["normalization"] = list(self.target_spacing), [dict(n) for n in self.normalization]
        return d


@dataclass(frozen=True)
class Fingerprint:
    """The dataset's summary (`fingerprint.json`); see `seg.data.fingerprint.build_fingerprint`."""

    dataset: str
    spatial_dims: int
    num_channels: int
    labels: Mapping[str, str]  # {"0": "background", ...}
    class_names: tuple[str, ...]
    preprocessing: PreprocessingPlan
    version: int = 1
    root: str = ""
    layout: str = "msd"
    channel_names: tuple[str, ...] = ()
    modality: Mapping[str, str] = dataclasses.field(default_factory=dict)
    label_values: tuple[int, ...] = ()
    num_cases: int = 0
    num_valid: int = 0
    shapes: Mapping[str, Any] = dataclasses.field(default_factory=dict)  # min, median, max (canonical axes)
    spacings: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    intensity: tuple[Mapping[str, float], ...] = ()  # per channel, of foreground voxels
    cases: Mapping[str, Any] = dataclasses.field(default_factory=dict)  # {id: {shape, spacing}}
    expectations: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    median_shape_after_preprocessing: tuple[float, ...] | None = None

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], where: str = FINGERPRINT) -> Fingerprint:
        d = _known(cls, d, where)
        d["preprocessing"] = PreprocessingPlan.from_dict(d["preprocessing"], where)
        for key in ("class_names", "channel_names", "label_values", "intensity"):
            if key in d:
                d[key] = tuple(d[key])
        if d.get("median_shape_after_preprocessing") is not None:
            d["median_shape_after_preprocessing"] = tuple(float(v) for v in d["median_shape_after_preprocessing"])
        return cls(**d)

    def to_dict(self) -> dict[str, Any]:
        d = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        d["preprocessing"] = self.preprocessing.to_dict()
        for key, value in d.items():
            if isinstance(value, tuple):
                d[key] = list(value)
            elif isinstance(value, Mapping):
                d[key] = dict(value)
        if d["median_shape_after_preprocessing"] is None:
            del d["median_shape_after_preprocessing"]
        return d

    def digest(self) -> str:
        """A short hash that identifies the data a model was trained on (MLflow tag `data_fingerprint`)."""
        return stable_hash(self.to_dict())


def _known(cls: type, d: Mapping[str, Any], where: str) -> dict[str, Any]:
    names = {f.name for f in dataclasses.fields(cls)}
    required = {
        f.name
        for f in dataclasses.fields(cls)
        if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
    }
    missing = sorted(required - set(d))
    if missing:
        raise CacheError(
            f"{where}: not a seg fingerprint (missing {', '.join(missing)}). Rerun `seg preprocess` to rewrite it."
        )
    return {k: v for k, v in d.items() if k in names}


@dataclass(frozen=True)
class Split:
    train: tuple[str, ...]
    val: tuple[str, ...]  # empty for data.fold "all"
    test: tuple[str, ...] = ()  # the test part: in no fold's train or val


@dataclass
class CachedCase:
    """A preprocessed case in memory, for training and analysis."""

    case_id: str
    image: np.ndarray  # (C, *spatial) float32, normalised
    label: np.ndarray  # (1, *spatial) uint8
    foreground: np.ndarray  # (N, ndim) voxel coordinates of foreground, subsampled


class Cache:
    """The preprocessed cache at `root` (data.cache_dir)."""

    def __init__(self, root: str | Path):
        self.root = Path(root)

    @property
    def cases_dir(self) -> Path:
        return self.root / CASES

    @cached_property
    def fingerprint(self) -> Fingerprint:
        return Fingerprint.from_dict(self._json(FINGERPRINT), str(self.root / FINGERPRINT))

    def splits(self) -> list[Split]:
        return [Split(tuple(s["train"]), tuple(s["val"]), tuple(s.get("test", ()))) for s in self._json(SPLITS)]

    def split(self, fold: int | str) -> Split:
        """Fold `fold`'s split, or for "all" every non-test case to train on and no validation."""
        splits = self.splits()
        if fold == "all":
            return Split(tuple(sorted({*splits[0].train, *splits[0].val})), (), splits[0].test)
        if not (isinstance(fold, int) and 0 <= fold < len(splits)):
            raise CacheError(
                f"{self.root / SPLITS} has {len(splits)} folds, got data.fold={fold!r}. Pick 0..{len(splits) - 1} "
                f"or all."
            )
        return splits[fold]

    def evaluation_ids(self, fold: int | str) -> tuple[str, ...]:
        """The cases a fold's model is scored on: its validation fold, or for "all" the test part."""
        split = self.split(fold)
        ids = split.val if fold != "all" else split.test
        if not ids:
            raise CacheError(
                f"{self.root / SPLITS}: data.fold all trains on every non-test case and there is no test part to "
                f"evaluate on. Set data.test_fraction > 0 (then rerun preprocess), or evaluate with --input."
            )
        return ids

    def case(self, case_id: str, max_foreground: int = 20000, seed: int = 0) -> CachedCase:
        """The case's arrays; `max_foreground` foreground coordinates are kept (a seeded subsample)."""
        path = self.cases_dir / f"{case_id}.npz"
        if not path.is_file():
            raise CacheError(f"{path}: case listed in {SPLITS} is missing. Rerun `seg preprocess`.")
        with np.load(path) as z:
            image = z["image"].astype(np.float32, copy=False)
            if "label" not in z:
                raise CacheError(f"{path}: no 'label' array; training needs labelled cases.")
            label = z["label"].astype(np.uint8, copy=False)
        fg = np.argwhere(label[0] > 0)
        if len(fg) > max_foreground:
            fg = fg[np.random.default_rng(seed).choice(len(fg), max_foreground, replace=False)]
        return CachedCase(case_id, image, label, fg)

    def properties(self, case_id: str) -> CaseProperties:
        path = self.cases_dir / f"{case_id}.json"
        if not path.is_file():
            raise CacheError(
                f"{path}: case properties missing (they restore outputs to the original image's geometry). "
                f"Rerun `seg preprocess` on the original images."
            )
        return CaseProperties.load(path)

    def cached_key(self, case_id: str) -> str | None:
        """The `cache_key` a case was written with, when both of its files are there (else None)."""
        json_path = self.cases_dir / f"{case_id}.json"
        if not (json_path.is_file() and (self.cases_dir / f"{case_id}.npz").is_file()):
            return None
        try:
            return read_json(json_path).get("cache_key")
        except (OSError, ValueError):
            return None

    # --------------------------------------------------------------------------------------------- writing

    def write_fingerprint(self, fingerprint: Fingerprint) -> Path:
        self.__dict__.pop("fingerprint", None)
        return write_json(self.root / FINGERPRINT, fingerprint.to_dict())

    def write_splits(self, splits: Sequence[Mapping[str, Sequence[str]]]) -> Path:
        keys = ("train", "val", "test")
        return write_json(self.root / SPLITS, [{k: list(s.get(k, ())) for k in keys} for s in splits])

    def write_case(self, image: np.ndarray, label: np.ndarray | None, props: CaseProperties) -> None:
        """The arrays, then the properties (last: a case with both files is complete)."""
        arrays = {"image": image} if label is None else {"image": image, "label": label.astype(np.uint8)}
        write_npz(self.cases_dir / f"{props.case_id}.npz", **arrays)
        props.save(self.cases_dir / f"{props.case_id}.json")

    def remove_cases_except(self, keep: set[str]) -> None:
        """Cases of an earlier run that are gone or now invalid must not be picked up by training."""
        if not self.cases_dir.is_dir():
            return
        for p in self.cases_dir.iterdir():
            if p.suffix in (".npz", ".json") and p.stem not in keep:
                p.unlink()

    def _json(self, name: str) -> Any:
        path = self.root / name
        if not path.is_file():
            raise CacheError(f"{path}: not found. Run `seg preprocess` (or `dvc repro preprocess`) first.")
        return read_json(path)
