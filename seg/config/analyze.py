"""The `analyze` section: attention maps, CAMs and the SEAM equivariance / PCM analysis of evaluation cases."""

from __future__ import annotations

from dataclasses import dataclass

from seg.config.checks import ConfigError, one_of
from seg.config.fields import doc
from seg.config.infer import INFER_PRECISIONS

CAM_METHODS = ("gradcam", "gradcampp", "hirescam")
TRANSFORM_FAMILIES = ("flip", "rot90", "scale")


@dataclass(frozen=True)
class AnalyzeConfig:
    """The analysis stage (`seg analyze`): attention maps, CAMs and SEAM equivariance / PCM on evaluation cases."""

    model: str = doc("models/latest", "model folder, Lightning checkpoint or MLflow URI")
    cases: str | None = doc(None, "folder, file or glob of images; None: the evaluation cases of the pipeline")
    labels: str | None = doc(None, "reference labels for `cases`; None with cases None: the evaluation labels")
    output: str = doc("outputs/analysis", "NIfTI maps, PNG overlays and report.html")
    max_cases: int = doc(4, "cases analysed (the first ones, sorted by id)")
    cam_method: str = doc("gradcam", "gradcam, gradcampp or hirescam")
    cam_layers: tuple[str, ...] | None = doc(None, "module names (`seg layers MODEL`); None: what the 1x1 head reads")
    scales: tuple[float, ...] = doc((0.5, 1.5), "rescale factors of the equivariance test (with flips and rot90)")
    pcm_window: int = doc(5, "neighbourhood (voxels per axis) of the Pixel Correlation Module's affinities")
    metrics_file: str = doc("metrics/analysis.json", "summary figures for `dvc metrics show`")
    log_mlflow: bool = doc(True, "log maps, overlays and the report into the model's MLflow run")
    transforms: tuple[str, ...] = doc(TRANSFORM_FAMILIES, "equivariance families; each costs CAM passes per case")
    threshold_cases: int = doc(4, "training-fold cases that choose the CAM Dice threshold; 0: half the analysed cases")
    whole_case_voxels: int = doc(262144, "cases up to this size get one exact window; larger ones patch-sized windows")
    overlap: float = doc(0.5, "sliding-window overlap for cases larger than whole_case_voxels")
    precision: str = doc("32", "of the prediction pass (auto: timed, as infer); 32 keeps equivariance errors exact")
    query_points: tuple[tuple[int, ...], ...] = doc(
        (),
        "voxel indices of the input image whose self-attention per head is mapped, beside each predicted class's "
        "centroid; e.g. [[40, 52, 20]]",
    )
    num_threads: int = doc(1, "torch intra-op threads; small volumes gain little from 2, and a busy core stalls them")

    def __post_init__(self) -> None:
        one_of("analyze.cam_method", self.cam_method, CAM_METHODS)
        one_of("analyze.precision", self.precision, INFER_PRECISIONS)
        if self.max_cases < 1:
            raise ConfigError(f"analyze.max_cases must be >= 1, got {self.max_cases}.")
        if self.pcm_window < 1 or self.pcm_window % 2 == 0:
            raise ConfigError(f"analyze.pcm_window must be an odd number >= 1, got {self.pcm_window}.")
        for family in self.transforms:
            one_of("analyze.transforms[]", family, TRANSFORM_FAMILIES)
        if any(s <= 0 for s in self.scales):
            raise ConfigError(f"analyze.scales must be positive factors, got {list(self.scales)}.")
        if self.threshold_cases < 0 or self.whole_case_voxels < 1 or self.num_threads < 1:
            raise ConfigError(
                f"analyze.threshold_cases must be >= 0, whole_case_voxels and num_threads >= 1, got "
                f"{self.threshold_cases}, {self.whole_case_voxels}, {self.num_threads}."
            )
        bad = [list(p) for p in self.query_points if len(p) not in (2, 3) or min(p) < 0]
        if bad:
            raise ConfigError(
                f"analyze.query_points {bad}: each point must be 2 or 3 voxel indices >= 0, e.g. [[40, 52, 20]]."
            )
        if not 0.0 <= self.overlap < 1.0:
            raise ConfigError(f"analyze.overlap must be in [0, 1), got {self.overlap}.")
