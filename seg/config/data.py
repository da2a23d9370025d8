"""The `data` section: the dataset, its preprocessing and its k-fold split (see seg/data/__init__.py)."""

from __future__ import annotations

from dataclasses import dataclass

from seg.config.checks import ConfigError, one_of
from seg.config.fields import doc

DATA_LAYOUTS = ("auto", "msd", "2d")
NORMALIZATIONS = ("auto", "zscore", "ct", "none")
COLOR_MODES = ("grey", "first", "rgb")


@dataclass(frozen=True)
class DataConfig:
    """The dataset and its preprocessing (see seg/data/__init__.py for the cache it writes)."""

    root: str | None = doc(None, "None: generate and use the embedded synthetic dataset (no download needed)")
    layout: str = doc("auto", "auto / msd (dataset.json or imagesTr+labelsTr) / 2d (images/ + masks/)")
    spatial_dims: int | None = doc(None, "None: from dataset.json tensorImageSize or the files themselves")
    target_spacing: tuple[float, ...] | None = doc(None, "None: dataset median; coarser is faster but loses detail")
    normalization: str = doc("auto", 'auto: CT -> ct, else zscore (per case); "none" keeps raw intensities')
    ct_percentiles: tuple[float, float] = doc((0.5, 99.5), "clip range (foreground percentiles) for ct normalisation")
    crop_nonzero: bool = doc(True, "crop to the non-zero region: less memory and compute; restore pads it back")
    image_order: int = doc(3, "spline order for image resampling: 3 is sharper, 1 is faster and never overshoots")
    color: str = doc("grey", "RGB(A) 2D images: grey (luma), first (channel 0), or rgb (3 input channels)")
    allow_empty_labels: bool = doc(False, "True keeps cases without foreground (negatives) instead of skipping them")
    cache_dir: str = doc("data/preprocessed", "the preprocessed cache the train, infer and analyze stages read")
    folds: int = doc(5, "k of the k-fold split; more folds train on more data per fold but cost more runs")
    fold: int | str = doc(
        0, 'the validation fold training holds out (0..folds-1), or "all": train on every non-test case'
    )
    test_fraction: float = doc(0.0, "share of cases held out of every fold (the test part); 0: no test part")
    seed: int = doc(0, "shuffles the k-fold split; the same seed and cases give the same splits")
    num_workers: int = doc(2, "processes over cases; 0 runs in this process (debugging, tiny data)")
    strict: bool = doc(False, "True: any invalid case fails the stage instead of being skipped and reported")
    synthetic_dir: str = doc("data/synthetic", "where the embedded dataset is generated when root is None")
    synthetic_cases: int = doc(24, "more cases train better models; 24 keeps generation and epochs short")

    def __post_init__(self) -> None:
        one_of("data.layout", self.layout, DATA_LAYOUTS)
        one_of("data.normalization", self.normalization, NORMALIZATIONS)
        one_of("data.color", self.color, COLOR_MODES)
        if self.spatial_dims not in (None, 2, 3):
            raise ConfigError(f"data.spatial_dims must be 2, 3 or null (auto), got {self.spatial_dims}.")
        self._check_spacing()
        lo, hi = self.ct_percentiles
        if not 0 <= lo < hi <= 100:
            raise ConfigError(f"data.ct_percentiles must satisfy 0 <= low < high <= 100, got {[lo, hi]}.")
        if not 0 <= self.image_order <= 5:
            raise ConfigError(f"data.image_order must be a spline order in [0, 5], got {self.image_order}.")
        self._check_split()
        if self.num_workers < 0:
            raise ConfigError(f"data.num_workers must be >= 0 (0: no subprocesses), got {self.num_workers}.")
        if self.synthetic_cases < self.folds:
            raise ConfigError(
                f"data.synthetic_cases ({self.synthetic_cases}) must be >= data.folds ({self.folds}) so every "
                f"fold has a validation case. Raise synthetic_cases or lower folds."
            )

    def _check_spacing(self) -> None:
        if self.target_spacing is None:
            return
        if any(s <= 0 for s in self.target_spacing):
            raise ConfigError(f"data.target_spacing must be positive, got {list(self.target_spacing)}.")
        if self.spatial_dims is not None and len(self.target_spacing) != self.spatial_dims:
            raise ConfigError(
                f"data.target_spacing has {len(self.target_spacing)} entries but data.spatial_dims is "
                f"{self.spatial_dims}. Give one spacing per spatial axis."
            )

    def _check_split(self) -> None:
        if self.folds < 2:
            raise ConfigError(f"data.folds must be >= 2 for a k-fold split, got {self.folds}.")
        if self.fold != "all" and not (isinstance(self.fold, int) and 0 <= self.fold < self.folds):
            raise ConfigError(
                f"data.fold must be in [0, {self.folds - 1}] for {self.folds} folds, got {self.fold!r} (or 'all': one "
                f"model on every non-test case)."
            )
        if not 0 <= self.test_fraction < 1:
            raise ConfigError(f"data.test_fraction must be in [0, 1) (0: no test part), got {self.test_fraction}.")
