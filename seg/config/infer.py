"""The `infer` section: batch inference (`seg infer` and the DVC infer stage); command-line flags override it."""

from __future__ import annotations

from dataclasses import dataclass

from seg.config.checks import ConfigError, auto_or, one_of, thread_count
from seg.config.fields import doc

INFER_PRECISIONS = ("auto", "32", "bf16", "16")
MAP_KINDS = ("gate", "spatial", "channel", "self")  # the kinds of `seg.models.maps`, which this tier cannot import
OUTPUT_FORMATS = ("input", "dicom-seg", "seg.nrrd")
BACKENDS = ("torch", "onnxruntime")


@dataclass(frozen=True)
class InferConfig:
    """Batch inference (`seg infer` and the DVC infer stage); command-line flags override these."""

    model: str | tuple[str, ...] = doc(
        "models/latest",
        "model folder, Lightning checkpoint, or MLflow URI (runs:/<id>/model); a list, or a folder "
        "of model folders (folds): an ensemble, softmax averaged",
    )
    input: str | None = doc(None, "folder, file or glob; None: the pipeline's evaluation cases (the cache's val fold)")
    output: str = doc("outputs/predictions", "label maps, predictions.json, metrics; probabilities/, gates/")
    labels: str | None = doc(None, "folder of reference label maps; None with input None: the evaluation labels")
    tta: bool = doc(True, "mirroring over every spatial axis (2^dims passes), averaged")
    overlap: float = doc(0.5, "sliding-window overlap; the Gaussian weighting hides window seams")
    sw_batch_size: int | str = doc("auto", "windows per forward pass; auto: 1, 2 or 4, timed here")
    backend: str = doc(
        "torch",
        "the network's runtime: torch (model folders, checkpoints, MLflow URIs) or onnxruntime (an .onnx from "
        "`seg export`, float32, at the same threads); preprocessing, windows, TTA and writing are the same",
    )
    precision: str = doc("auto", "auto: the faster of 32 and bf16, timed here (CUDA: bf16 or 16); float32 accumulation")
    output_format: str = doc(
        "input",
        "label maps as: input (the input's format; NIfTI for DICOM series, with ITK-SNAP label descriptions beside "
        "NIfTI), dicom-seg (a DICOM Segmentation referencing the source series; DICOM inputs only) or seg.nrrd "
        "(3D Slicer's segmentation file: segment names, colours, label values; 3D inputs)",
    )
    probabilities: bool = doc(False, "also write float probability maps (one channel per class)")
    gates: bool = doc(False, "also write the gate maps per level, stitched and resampled to the input's space")
    maps: tuple[str, ...] = doc(
        (),
        "also write the attention maps of these kinds (gate, spatial, channel, self) to maps/, in the input's space; "
        "channel weights as JSON; []: none",
    )
    overwrite: bool = doc(False, "False: a rerun skips cases whose outputs are complete")
    read_ahead: int | str = doc(
        "auto",
        "cases read and preprocessed in a background thread while the network predicts; 0: each in its turn; "
        "auto: 1 on a GPU, 0 on a CPU (there the stages share the cores the network uses: no faster overlapped)",
    )
    writer_threads: int | str = doc(
        "auto",
        "threads restoring and writing finished cases while the network predicts the next; 0: in its turn; "
        "auto: as read_ahead",
    )
    compression_level: int | None = doc(
        None, "zlib level 0-9 of .nii.gz outputs (and of NRRD/MHA, 0: uncompressed); null: gzip 1 for .nii.gz"
    )
    num_threads: int | None = doc(None, "torch intra-op threads per process; null: the cores it may use / devices")
    accelerator: str = doc("auto", "auto, cpu or gpu")
    devices: int = doc(1, "> 1 with strategy ddp shards the cases over processes (Lightning's predict loop)")
    strategy: str = doc("auto", "Lightning strategy; ddp with devices > 1 shards the cases")
    metrics_file: str | None = doc("metrics/infer.json", "summary metrics for DVC (with labels)")

    def __post_init__(self) -> None:
        sources = (self.model,) if isinstance(self.model, str) else self.model
        if not sources or not all(isinstance(s, str) and s for s in sources):
            raise ConfigError(f"infer.model must be a model source or a non-empty list of them, got {self.model!r}.")
        one_of("infer.precision", self.precision, INFER_PRECISIONS)
        one_of("infer.output_format", self.output_format, OUTPUT_FORMATS)
        one_of("infer.backend", self.backend, BACKENDS)
        if self.backend == "onnxruntime" and self.precision not in ("auto", "32"):
            raise ConfigError(
                f"infer.precision {self.precision} needs backend torch: an ONNX export is float32. "
                f"Use precision auto or 32 with backend onnxruntime."
            )
        auto_or("infer.sw_batch_size", self.sw_batch_size, int, minimum=1)
        thread_count("infer.num_threads", self.num_threads)
        for kind in self.maps:
            one_of("infer.maps[]", kind, MAP_KINDS)
        if not 0.0 <= self.overlap < 1.0:
            raise ConfigError(f"infer.overlap must be in [0, 1), got {self.overlap}.")
        if self.devices < 1:
            raise ConfigError(f"infer.devices must be >= 1, got {self.devices}.")
        auto_or("infer.read_ahead", self.read_ahead, int, minimum=0)
        auto_or("infer.writer_threads", self.writer_threads, int, minimum=0)
        level = self.compression_level
        if level is not None and (not isinstance(level, int) or not 0 <= level <= 9):
            raise ConfigError(f"infer.compression_level must be null or an integer 0-9 (zlib), got {level!r}.")
