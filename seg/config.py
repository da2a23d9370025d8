"""Typed, frozen configuration, one dataclass per concern, loaded from YAML.

Unknown keys are errors that name the file and suggest the nearest valid key; `__post_init__` checks that
fields fit together. Functions take the section they need (`ModelConfig`, ...), never a dict of everything.
"""

from __future__ import annotations

import dataclasses
import difflib
import types
import typing
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T")


class ConfigError(ValueError):
    """A configuration that cannot be used; the message names the file, the key, and the fix."""


# ---------------------------------------------------------------------------------------------- model

NORMS = ("instance", "batch", "none")
ACTS = ("leakyrelu", "relu", "prelu", "gelu")
GATE_MODES = ("concatenation", "concatenation_softmax", "concatenation_residual")
GATE_LEVELS = ("all", "none")  # the named choices of model.gate_levels; a list of skip indices is the other
ATTENTION_MODULES = ("se", "cbam", "scse")
DECODER_MERGES = ("1x1", "3x3")


def did_you_mean(value: Any, choices: Iterable[str], cutoff: float = 0.6, prefix: str = "") -> str:
    """" Did you mean 'x'?" for the choice nearest to a misspelt `value`, or "" when none is close enough.

    `cutoff` is difflib's similarity in [0, 1]; `prefix` (a section such as "model.") is written before the
    suggestion but not compared."""
    close = difflib.get_close_matches(str(value), list(choices), n=1, cutoff=cutoff)
    return f" Did you mean '{prefix}{close[0]}'?" if close else ""


def _one_of(name: str, value: Any, valid: tuple[str, ...]) -> None:
    if value not in valid:
        raise ConfigError(f"{name} must be one of {', '.join(valid)}, got {value!r}.{did_you_mean(value, valid, 0.4)}")


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _at_least(name: str, value: Any, minimum: int, optional: bool = False) -> None:
    """An int >= minimum (or None where `optional`), else an error naming the key and what arrived."""
    if optional and value is None:
        return
    if not _is_int(value) or value < minimum:
        either = " or null" if optional else ""
        raise ConfigError(f"model.{name} must be an int >= {minimum}{either}, got {value!r}.")


def _per_axis(name: str, value: Any, dims: int) -> tuple[int, ...]:
    """A stride as one factor per axis: an int for all axes, or `dims` ints."""
    axes = (value,) * dims if _is_int(value) else tuple(value) if isinstance(value, list | tuple) else ()
    if len(axes) != dims or not all(_is_int(a) and a >= 1 for a in axes):
        raise ConfigError(f"{name} must be an int >= 1 or {dims} of them (one per axis of spatial_dims={dims}), "
                          f"got {value!r}.")
    return axes


def _per_stage(name: str, spec: Any, n: int) -> tuple[str | None, ...]:
    """An attention placement as one name per stage: one name for all, a list of n names, or {stage: name}."""
    if spec is None or isinstance(spec, str):
        names: tuple[Any, ...] = (spec,) * n
    elif isinstance(spec, dict):
        stages = {}
        for k, v in spec.items():
            if not (_is_int(k) or isinstance(k, str) and k.isdigit()) or not 0 <= int(k) < n:
                raise ConfigError(f"{name}: stage index {k!r} out of range; this network has stages 0..{n - 1}.")
            stages[int(k)] = v
        names = tuple(stages.get(i) for i in range(n))
    elif isinstance(spec, list | tuple):
        names = tuple(spec) or (None,) * n
        if len(names) != n:
            raise ConfigError(f"{name}: expected {n} entries (one per stage), got {len(names)}: {list(names)}. "
                              f"Give one module (or null) per stage, one name for all, or {{stage: name}}.")
    else:
        raise ConfigError(f"{name} must be a module name, null, a list (one per stage) or a mapping "
                          f"{{stage: name}}, got {spec!r}.")
    for v in names:
        if v is not None:
            _one_of(f"{name} entry", v, (*ATTENTION_MODULES, "none"))
    return tuple(None if v == "none" else v for v in names)


@dataclass(frozen=True)
class ModelConfig:
    """The network. Argument names follow MONAI (`spatial_dims, in_channels, out_channels, channels, ...`)."""

    spatial_dims: int = 3  # 2 or 3: selects every convolution, norm and pooling; nothing else changes
    in_channels: int = 1  # image channels (MRI sequences, CT = 1, RGB microscopy = 3 with data.color rgb)
    out_channels: int = 3  # classes including background
    channels: tuple[int, ...] = (16, 32, 64, 128)  # depth = len(channels); the coarsest levels hold most weights
    strides: tuple[int | tuple[int, ...], ...] = (  # len(channels) - 1, each one int or one per axis;
        2, 2, 2  # their product per axis is the input multiple
    )
    kernel_size: int = 3  # convolution kernel per axis (odd, so padding keeps sizes)
    norm: str = "instance"  # instance (suits batch sizes of 2-4), batch (needs larger batches) or none
    act: str = "leakyrelu"  # activation: leakyrelu, relu, prelu, gelu (MONAI names)
    dropout: float = 0.0  # dropout probability inside conv blocks
    residual: bool = False  # residual stages train deeper nets more stably, at ~10% more compute
    gate_levels: str | tuple[int, ...] | None = "all"  # "all", None (plain U-Net, for ablations), or skip indices
    gate_mode: str = "concatenation"  # or concatenation_softmax / concatenation_residual
    gate_heads: int = 1  # > 1: multi-head gating on every gated skip
    sub_sample_factor: int | None = None  # None: each gate works on its gating signal's grid (the stride)
    encoder_attention: str | None | tuple[str | None, ...] | dict[int, str | None] = (
        None  # se / cbam / scse, on all stages, per stage (a list), or by stage index ({stage: name})
    )
    decoder_attention: str | None | tuple[str | None, ...] | dict[int, str | None] = (
        None  # se / cbam / scse on decoder stages, placed the same ways
    )
    attention_reduction: int = 4  # channel reduction ratio of SE / CBAM / scSE
    deep_supervision: int = 2  # extra heads on decoder levels 1..k, weighted by resolution in the loss
    encoder_convs: int = 2  # 3x3 convolutions per encoder stage below the first
    decoder_convs: int = 2  # 3x3 convolutions per decoder stage
    decoder_merge: str = "1x1"  # 1x1 projection of [skip, up] before the 3x3s; "3x3" convolves all 2C channels
    first_stage_convs: int | None = None  # convs of level 0 (the finest stage); None = encoder/decoder_convs; 1 is cheaper
    pad_input: bool = True  # pad to the stride multiple and crop back; False makes a wrong size an error
    stem_stride: int | tuple[int, ...] = (  # 2: the U at half resolution, a light full-res head restores
        2  # the grid (~3x faster); 1: full res; or one int per axis
    )
    stem_channels: int | None = None  # channels of that full-resolution head; None = channels[0] // 2

    def __post_init__(self) -> None:
        """Every field is checked here, once, when the config loads (and when `AttentionUNet` gets overrides)."""
        if self.spatial_dims not in (2, 3):
            raise ConfigError(f"model.spatial_dims must be 2 or 3, got {self.spatial_dims!r}.")
        if not isinstance(self.channels, list | tuple) or len(self.channels) < 2:
            raise ConfigError(f"model.channels needs at least 2 entries (one per level), got {self.channels!r}.")
        for c in self.channels:
            if not _is_int(c) or c < 1:
                raise ConfigError(f"model.channels must be ints >= 1, got {list(self.channels)}.")
        if not isinstance(self.strides, list | tuple) or len(self.strides) != len(self.channels) - 1:
            got = len(self.strides) if isinstance(self.strides, list | tuple) else repr(self.strides)
            raise ConfigError(
                f"model.strides must have len(channels) - 1 = {len(self.channels) - 1} entries, got "
                f"{got} (channels={list(self.channels)}, strides={self.strides!r}). "
                f"Add or remove strides so each level below the first has one."
            )
        self.strides_per_axis()
        if not 0 <= self.deep_supervision <= len(self.channels) - 2:
            raise ConfigError(
                f"model.deep_supervision must be in [0, {len(self.channels) - 2}] for {len(self.channels)} levels, "
                f"got {self.deep_supervision}."
            )
        if self.in_channels < 1 or self.out_channels < 1:
            raise ConfigError(
                f"model.in_channels and out_channels must be >= 1, got {self.in_channels} and {self.out_channels}."
            )
        if not _is_int(self.kernel_size) or self.kernel_size < 1 or self.kernel_size % 2 == 0:
            raise ConfigError(f"model.kernel_size must be an odd int >= 1 ('same' padding keeps sizes), "
                              f"got {self.kernel_size!r}.")
        _one_of("model.norm", self.norm, NORMS)
        _one_of("model.act", self.act, ACTS)
        if not 0.0 <= self.dropout < 1.0:
            raise ConfigError(f"model.dropout must be a probability in [0, 1), got {self.dropout!r}.")
        self.gated_levels()
        _one_of("model.gate_mode", self.gate_mode, GATE_MODES)
        _at_least("gate_heads", self.gate_heads, 1)
        _at_least("sub_sample_factor", self.sub_sample_factor, 1, optional=True)
        self.stage_attention()
        _at_least("attention_reduction", self.attention_reduction, 1)
        _at_least("encoder_convs", self.encoder_convs, 1)
        _at_least("decoder_convs", self.decoder_convs, 1)
        _at_least("first_stage_convs", self.first_stage_convs, 1, optional=True)
        _one_of("model.decoder_merge", self.decoder_merge, DECODER_MERGES)
        try:
            self.stem_stride_per_axis()
        except ConfigError:
            raise ConfigError(f"model.stem_stride must be 1 (full resolution), 2 (half) or one int >= 1 per axis, "
                              f"got {self.stem_stride!r}.") from None
        _at_least("stem_channels", self.stem_channels, 1, optional=True)

    # The network reads these resolved forms; each also checks its field (see __post_init__).

    def strides_per_axis(self) -> tuple[tuple[int, ...], ...]:
        """One factor per axis for every level below the first."""
        return tuple(_per_axis(f"model.strides[{i}]", s, self.spatial_dims) for i, s in enumerate(self.strides))

    def stem_stride_per_axis(self) -> tuple[int, ...]:
        return _per_axis("model.stem_stride", self.stem_stride, self.spatial_dims)

    def gated_levels(self) -> tuple[int, ...]:
        """The skip levels that get a gate, sorted (0 = the finest)."""
        n_skips = len(self.channels) - 1
        if self.gate_levels is None or self.gate_levels in GATE_LEVELS:
            return tuple(range(n_skips)) if self.gate_levels == "all" else ()
        if not isinstance(self.gate_levels, list | tuple) or not all(_is_int(i) for i in self.gate_levels):
            hint = did_you_mean(self.gate_levels, GATE_LEVELS, 0.4) if isinstance(self.gate_levels, str) else ""
            raise ConfigError(f"model.gate_levels must be one of {', '.join(GATE_LEVELS)}, null or a list of skip "
                              f"indices 0..{n_skips - 1}, got {self.gate_levels!r}.{hint}")
        levels = tuple(sorted(set(self.gate_levels)))
        bad = [i for i in levels if not 0 <= i < n_skips]
        if bad:
            raise ConfigError(f"model.gate_levels {bad} out of range; this network has skip levels 0..{n_skips - 1}.")
        return levels

    def stage_attention(self) -> tuple[tuple[str | None, ...], tuple[str | None, ...]]:
        """The attention module (or None) of every encoder stage and every decoder stage."""
        return (_per_stage("model.encoder_attention", self.encoder_attention, len(self.channels)),
                _per_stage("model.decoder_attention", self.decoder_attention, len(self.channels) - 1))


# ----------------------------------------------------------------------------------------------- data

DATA_LAYOUTS = ("auto", "msd", "2d")
NORMALIZATIONS = ("auto", "zscore", "ct", "none")
COLOR_MODES = ("grey", "first", "rgb")


@dataclass(frozen=True)
class DataConfig:
    """The dataset and its preprocessing (see seg/data/__init__.py for the cache it writes)."""

    root: str | None = None  # None: generate and use the embedded synthetic dataset (no download needed)
    layout: str = "auto"  # auto / msd (dataset.json or imagesTr+labelsTr) / 2d (images/ + masks/)
    spatial_dims: int | None = None  # None: from dataset.json tensorImageSize or the files themselves
    target_spacing: tuple[float, ...] | None = None  # None: dataset median; coarser is faster but loses detail
    normalization: str = "auto"  # auto: CT -> ct, else zscore (per case); "none" keeps raw intensities
    ct_percentiles: tuple[float, float] = (0.5, 99.5)  # clip range (foreground percentiles) for ct normalisation
    crop_nonzero: bool = True  # crop to the non-zero region: less memory and compute; restore pads it back
    image_order: int = 3  # spline order for image resampling: 3 is sharper, 1 is faster and never overshoots
    color: str = "grey"  # RGB(A) 2D images: grey (luma), first (channel 0), or rgb (3 input channels)
    allow_empty_labels: bool = False  # True keeps cases without foreground (negatives) instead of skipping them
    cache_dir: str = "data/preprocessed"  # the preprocessed cache the train, infer and analyze stages read
    folds: int = 5  # k of the k-fold split; more folds train on more data per fold but cost more runs
    fold: int | str = 0  # the validation fold training holds out (0..folds-1), or "all": train on every non-test case
    test_fraction: float = 0.0  # share of cases held out of every fold (the test part); 0: no test part
    seed: int = 0  # shuffles the k-fold split; the same seed and cases give the same splits
    num_workers: int = 2  # processes over cases; 0 runs in this process (debugging, tiny data)
    strict: bool = False  # True: any invalid case fails the stage instead of being skipped and reported
    synthetic_dir: str = "data/synthetic"  # where the embedded dataset is generated when root is None
    synthetic_cases: int = 24  # more cases train better models; 24 keeps generation and epochs short

    def __post_init__(self) -> None:
        _one_of("data.layout", self.layout, DATA_LAYOUTS)
        _one_of("data.normalization", self.normalization, NORMALIZATIONS)
        _one_of("data.color", self.color, COLOR_MODES)
        if self.spatial_dims not in (None, 2, 3):
            raise ConfigError(f"data.spatial_dims must be 2, 3 or null (auto), got {self.spatial_dims}.")
        if self.target_spacing is not None:
            if any(s <= 0 for s in self.target_spacing):
                raise ConfigError(f"data.target_spacing must be positive, got {list(self.target_spacing)}.")
            if self.spatial_dims is not None and len(self.target_spacing) != self.spatial_dims:
                raise ConfigError(
                    f"data.target_spacing has {len(self.target_spacing)} entries but data.spatial_dims is "
                    f"{self.spatial_dims}. Give one spacing per spatial axis."
                )
        lo, hi = self.ct_percentiles
        if not 0 <= lo < hi <= 100:
            raise ConfigError(f"data.ct_percentiles must satisfy 0 <= low < high <= 100, got {[lo, hi]}.")
        if not 0 <= self.image_order <= 5:
            raise ConfigError(f"data.image_order must be a spline order in [0, 5], got {self.image_order}.")
        if self.folds < 2:
            raise ConfigError(f"data.folds must be >= 2 for a k-fold split, got {self.folds}.")
        if self.fold != "all" and not (isinstance(self.fold, int) and 0 <= self.fold < self.folds):
            raise ConfigError(
                f"data.fold must be in [0, {self.folds - 1}] for {self.folds} folds, got {self.fold!r} (or 'all': one "
                f"model on every non-test case)."
            )
        if not 0 <= self.test_fraction < 1:
            raise ConfigError(f"data.test_fraction must be in [0, 1) (0: no test part), got {self.test_fraction}.")
        if self.num_workers < 0:
            raise ConfigError(f"data.num_workers must be >= 0 (0: no subprocesses), got {self.num_workers}.")
        if self.synthetic_cases < self.folds:
            raise ConfigError(
                f"data.synthetic_cases ({self.synthetic_cases}) must be >= data.folds ({self.folds}) so every "
                f"fold has a validation case. Raise synthetic_cases or lower folds."
            )


# ---------------------------------------------------------------------------------------------- train

OPTIMIZERS = ("adamw", "sgd")
SCHEDULES = ("poly", "cosine", "constant")
PRECISIONS = ("auto", "32", "bf16-mixed", "16-mixed")
DEFAULT_EPOCHS = 100  # the epoch limit of a run given neither train.max_epochs nor train.max_time_minutes
SUPERVISIONS = ("full", "seam")  # full: voxel masks; seam: image-level presence labels (SEAM, see SeamConfig)
AUTO = "auto"


def _auto_or(name: str, value: Any, kind: type, minimum: int | None = None) -> None:
    """`value` is "auto" or of `kind` (and >= minimum); anything else names the key and both forms."""
    if value == AUTO:
        return
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise ConfigError(f"{name} must be 'auto' or {kind.__name__}, got {value!r}.")
    if minimum is not None and value < minimum:
        raise ConfigError(f"{name} must be 'auto' or >= {minimum}, got {value}.")


def _threads(name: str, value: int | None) -> None:
    if value is not None and value < 1:
        raise ConfigError(f"{name} must be >= 1, or null for the cores this process may use, got {value}.")


@dataclass(frozen=True)
class AugmentConfig:
    """MONAI augmentations applied to training patches; each probability is per patch."""

    flip_prob: float = 0.5  # per axis
    flip_axes: tuple[int, ...] | None = None  # spatial axes mirrored (0 = first); None: all. TTA mirrors the same ones
    rot90_prob: float = 0.5  # only in planes where the patch is square, so shapes never change
    affine_prob: float = 0.2  # rotation + scaling: robust to pose and size, but the slowest transform on CPU
    rotate_degrees: float = 15.0  # maximum rotation per axis of the affine transform
    scale_range: tuple[float, float] = (0.85, 1.25)  # affine scale factor, one for all axes, from this range
    intensity_prob: float = 0.15  # scale and shift of intensities
    gamma_prob: float = 0.15  # probability of a random gamma (contrast) change
    gamma_range: tuple[float, float] = (0.7, 1.5)  # gamma range
    noise_prob: float = 0.1  # probability of additive Gaussian noise

    def __post_init__(self) -> None:
        axes = self.flip_axes
        if axes is not None and (min(axes, default=0) < 0 or len(set(axes)) != len(axes)):
            raise ConfigError(f"train.augment.flip_axes must be distinct spatial axes counted from 0 (e.g. [0] mirrors "
                              f"left-right only), or null for all, got {list(axes)}.")

    def mirrored_axes(self, dims: int) -> tuple[int, ...]:
        """The spatial axes training mirrors, and test-time augmentation may mirror: none when flip_prob is 0.

        Mirroring teaches an invariance the data may not have: on Task04_Hippocampus the anterior class always lies
        in front of the posterior one, so a mirrored case has its labels where no real case has them. A model
        trained without mirroring along an axis must not be mirrored along it at test time either.
        """
        if self.flip_prob <= 0:
            return ()
        axes = tuple(range(dims)) if self.flip_axes is None else tuple(self.flip_axes)
        if any(a >= dims for a in axes):
            raise ConfigError(f"train.augment.flip_axes {list(axes)} names an axis the {dims}D patches do not have; "
                              f"use axes 0..{dims - 1}, or null for all.")
        return axes


@dataclass(frozen=True)
class TrainConfig:
    """Optimisation, sampling, hardware and tracking of one training run."""

    patch_size: tuple[int, ...] | None = None  # None: the dataset's median shape rounded to the net's size multiple
    batch_size: int = 4  # patches per step (per process with DDP); 4 uses 2 CPU cores better than 2
    foreground_fraction: float = 0.33  # share of patches centred on foreground (nnU-Net's oversampling)
    max_epochs: int | None = None  # epochs of steps_per_epoch batches; null: none with a time budget, else 100
    max_time_minutes: float | None = None  # wall-clock budget; with max_epochs too, whichever comes first ends it
    steps_per_epoch: int = 50  # an epoch is a fixed number of patch batches, independent of dataset size
    optimizer: str = "adamw"  # adamw or sgd (Nesterov, nnU-Net style)
    lr: float = 3e-3  # peak learning rate (after warm-up)
    weight_decay: float = 3e-5  # decoupled (AdamW) or L2 (SGD) weight decay
    momentum: float = 0.99  # SGD only (Nesterov)
    schedule: str = "poly"  # poly (nnU-Net) or cosine decay over max_epochs (or the time budget)
    warmup_epochs: int = 0  # linear learning-rate warm-up
    grad_clip: float = 12.0  # global norm; 0 disables
    ema_decay: float = 0.0  # > 0: validate and save an exponential moving average of the weights (e.g. 0.999)
    dice_weight: float = 1.0  # weight of the soft Dice term of the loss
    ce_weight: float = 1.0  # weight of the cross-entropy term of the loss
    seed: int = 0  # seeds torch, numpy and data-loader workers
    num_threads: int | None = None  # torch intra-op threads per process; null: the cores it may use / devices
    num_workers: int = 0  # data-loader processes; on 2 cores they compete with compute
    precision: str = "auto"  # auto: the faster of 32 and bf16-mixed, timed here (CUDA: bf16-mixed or 16-mixed)
    channels_last: bool | str = "auto"  # NDHWC/NHWC layout while training; auto: timed against contiguous
    accelerator: str = "auto"  # auto, cpu or gpu
    devices: int = 1  # processes (CPU) or GPUs; > 1 needs strategy ddp
    strategy: str = "auto"  # "ddp" for several processes (gloo on CPU, nccl on GPU)
    val_every: int | str = "auto"  # epochs between validations; auto: every epoch while validation fits val_share
    val_every_minutes: float | None = None  # validate every N minutes of wall clock and when the budget ends instead
    val_share: float = 0.1  # with val_every auto: the most of the wall clock that validation may take
    val_overlap: float = 0.5  # sliding-window overlap at validation
    slice_axis: int = 2  # 2D models on 3D volumes train on slices along this spatial axis
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    output_dir: str = "outputs/train"  # checkpoints and the run state (kept for --resume)
    model_dir: str = "models/latest"  # the trained model folder that `seg infer --model` takes
    metrics_dir: str = "metrics"  # train.json, train_history.csv and train_curves.png for DVC
    tracking_uri: str | None = None  # None: $MLFLOW_TRACKING_URI, else sqlite:///<repo>/mlflow.db
    experiment: str = "seg"  # MLflow experiment name
    run_name: str | None = None  # MLflow run name (None: MLflow picks one)
    registered_model: str | None = "auto"  # MLflow registry name; auto: seg-<dataset folder>; null: not registered
    champion_alias: str = "champion"  # alias moved to the version of that name with the best validation Dice
    gate_images: bool = True  # log gate-map (SEAM: CAM) images for a fixed validation case every validation
    supervision: str = "full"  # full: masks; seam: only which classes a patch holds (the seam section)

    def epoch_limit(self) -> int | None:
        """The epochs the run may take: max_epochs when set; none when only a time budget is (the budget is the
        budget); 100 when neither is."""
        if self.max_epochs is not None:
            return self.max_epochs
        return None if self.max_time_minutes else DEFAULT_EPOCHS

    def describe_limits(self) -> str:
        """Which limit ends the run, in words, for the line `seg train` prints before it starts."""
        epochs, minutes = self.epoch_limit(), self.max_time_minutes
        if epochs is None:
            return f"trains for {minutes:g} min (no epoch limit)"
        if not minutes:
            return f"trains {epochs} epochs of {self.steps_per_epoch} steps (no time budget)"
        return (f"trains {epochs} epochs of {self.steps_per_epoch} steps or {minutes:g} min, whichever comes first "
                f"(set train.max_epochs null to train for the whole budget)")

    def __post_init__(self) -> None:
        _one_of("train.supervision", self.supervision, SUPERVISIONS)
        _one_of("train.optimizer", self.optimizer, OPTIMIZERS)
        _one_of("train.schedule", self.schedule, SCHEDULES)
        _one_of("train.precision", self.precision, PRECISIONS)
        _auto_or("train.channels_last", self.channels_last, bool)
        _auto_or("train.val_every", self.val_every, int, minimum=1)
        _threads("train.num_threads", self.num_threads)
        if not 0.0 < self.val_share < 1.0:
            raise ConfigError(f"train.val_share must be in (0, 1) (0.1: validation may take a tenth of the wall "
                              f"clock), got {self.val_share}.")
        if not 0.0 <= self.foreground_fraction <= 1.0:
            raise ConfigError(f"train.foreground_fraction must be in [0, 1], got {self.foreground_fraction}.")
        for name in ("batch_size", "steps_per_epoch", "devices"):
            if getattr(self, name) < 1:
                raise ConfigError(f"train.{name} must be >= 1, got {getattr(self, name)}.")
        if self.max_epochs is not None and (not _is_int(self.max_epochs) or self.max_epochs < 1):
            raise ConfigError(f"train.max_epochs must be an int >= 1, or null (no epoch limit with a time budget), "
                              f"got {self.max_epochs!r}.")
        if self.max_time_minutes is not None and self.max_time_minutes <= 0:
            raise ConfigError(f"train.max_time_minutes must be > 0, or null (no time budget), "
                              f"got {self.max_time_minutes}.")
        if self.patch_size is not None and any(p < 1 for p in self.patch_size):
            raise ConfigError(f"train.patch_size must be positive, got {list(self.patch_size)}.")
        if not 0.0 <= self.val_overlap < 1.0:
            raise ConfigError(f"train.val_overlap must be in [0, 1), got {self.val_overlap}.")
        if not 0.0 <= self.ema_decay < 1.0:
            raise ConfigError(f"train.ema_decay must be in [0, 1) (0 disables the weight average, 0.999 is "
                              f"typical), got {self.ema_decay}.")
        if self.val_every_minutes is not None and self.val_every_minutes <= 0:
            raise ConfigError(f"train.val_every_minutes must be > 0 (or null: every val_every epochs), "
                              f"got {self.val_every_minutes}.")


# ------------------------------------------------------------------------------------------- inference

INFER_PRECISIONS = ("auto", "32", "bf16", "16")
CAM_METHODS = ("gradcam", "gradcampp", "hirescam")


@dataclass(frozen=True)
class InferConfig:
    """Batch inference (`seg infer` and the DVC infer stage); command-line flags override these."""

    model: str | tuple[str, ...] = (  # model folder, Lightning checkpoint, or MLflow URI (runs:/<id>/model);
        "models/latest"  # a list, or a folder of model folders (folds): an ensemble, softmax averaged
    )
    input: str | None = None  # folder, file or glob; None: the pipeline's evaluation cases (the cache's val fold)
    output: str = "outputs/predictions"  # label maps, predictions.json, metrics; probabilities/, gates/
    labels: str | None = None  # folder of reference label maps; None with input None: the evaluation labels
    tta: bool = True  # mirroring over every spatial axis (2^dims passes), averaged
    overlap: float = 0.5  # sliding-window overlap; the Gaussian weighting hides window seams
    sw_batch_size: int | str = "auto"  # windows per forward pass; auto: 1, 2 or 4, timed here
    precision: str = "auto"  # auto: the faster of 32 and bf16, timed here (CUDA: bf16 or 16); float32 accumulation
    probabilities: bool = False  # also write float probability maps (one channel per class)
    gates: bool = False  # also write the gate maps per level, stitched and resampled to the input's space
    overwrite: bool = False  # False: a rerun skips cases whose outputs are complete
    num_threads: int | None = None  # torch intra-op threads per process; null: the cores it may use / devices
    accelerator: str = "auto"  # auto, cpu or gpu
    devices: int = 1  # > 1 with strategy ddp shards the cases over processes (Lightning's predict loop)
    strategy: str = "auto"  # Lightning strategy; ddp with devices > 1 shards the cases
    metrics_file: str | None = "metrics/infer.json"  # summary metrics for DVC (with labels)

    def __post_init__(self) -> None:
        sources = (self.model,) if isinstance(self.model, str) else self.model
        if not sources or not all(isinstance(s, str) and s for s in sources):
            raise ConfigError(f"infer.model must be a model source or a non-empty list of them, got {self.model!r}.")
        _one_of("infer.precision", self.precision, INFER_PRECISIONS)
        _auto_or("infer.sw_batch_size", self.sw_batch_size, int, minimum=1)
        _threads("infer.num_threads", self.num_threads)
        if not 0.0 <= self.overlap < 1.0:
            raise ConfigError(f"infer.overlap must be in [0, 1), got {self.overlap}.")
        for name in ("devices",):
            if getattr(self, name) < 1:
                raise ConfigError(f"infer.{name} must be >= 1, got {getattr(self, name)}.")


@dataclass(frozen=True)
class AnalyzeConfig:
    """The analysis stage (`seg analyze`): gate maps, CAMs and SEAM equivariance / PCM on evaluation cases."""

    model: str = "models/latest"  # model folder, Lightning checkpoint or MLflow URI
    cases: str | None = None  # folder, file or glob of images; None: the evaluation cases of the pipeline
    labels: str | None = None  # reference labels for `cases`; None with cases None: the evaluation labels
    output: str = "outputs/analysis"  # NIfTI maps, PNG overlays and report.html
    max_cases: int = 4  # cases analysed (the first ones, sorted by id)
    cam_method: str = "gradcam"  # gradcam, gradcampp or hirescam
    cam_layers: tuple[str, ...] | None = None  # module names (`seg layers MODEL`); None: what the 1x1 head reads
    scales: tuple[float, ...] = (0.5, 1.5)  # rescale factors of the equivariance test (with flips and rot90)
    pcm_window: int = 5  # neighbourhood (voxels per axis) of the Pixel Correlation Module's affinities
    metrics_file: str = "metrics/analysis.json"  # summary figures for `dvc metrics show`
    log_mlflow: bool = True  # log maps, overlays and the report into the model's MLflow run
    transforms: tuple[str, ...] = ("flip", "rot90", "scale")  # equivariance families; each costs CAM passes per case
    threshold_cases: int = 4  # training-fold cases that choose the CAM Dice threshold; 0: half the analysed cases
    whole_case_voxels: int = 262144  # cases up to this size get one exact window; larger ones patch-sized windows
    overlap: float = 0.5  # sliding-window overlap for cases larger than whole_case_voxels
    precision: str = "32"  # of the prediction pass (auto: timed, as infer); 32 keeps equivariance errors exact
    num_threads: int = 1  # torch intra-op threads; small volumes gain little from 2, and a busy core stalls them

    def __post_init__(self) -> None:
        _one_of("analyze.cam_method", self.cam_method, CAM_METHODS)
        _one_of("analyze.precision", self.precision, INFER_PRECISIONS)
        if self.max_cases < 1:
            raise ConfigError(f"analyze.max_cases must be >= 1, got {self.max_cases}.")
        if self.pcm_window < 1 or self.pcm_window % 2 == 0:
            raise ConfigError(f"analyze.pcm_window must be an odd number >= 1, got {self.pcm_window}.")
        for family in self.transforms:
            _one_of("analyze.transforms[]", family, ("flip", "rot90", "scale"))
        if any(s <= 0 for s in self.scales):
            raise ConfigError(f"analyze.scales must be positive factors, got {list(self.scales)}.")
        if self.threshold_cases < 0 or self.whole_case_voxels < 1 or self.num_threads < 1:
            raise ConfigError(
                f"analyze.threshold_cases must be >= 0, whole_case_voxels and num_threads >= 1, got "
                f"{self.threshold_cases}, {self.whole_case_voxels}, {self.num_threads}."
            )
        if not 0.0 <= self.overlap < 1.0:
            raise ConfigError(f"analyze.overlap must be in [0, 1), got {self.overlap}.")


# ---------------------------------------------------------------------------------------------- crossval


@dataclass(frozen=True)
class CrossvalConfig:
    """Cross-validation (`dvc repro crossval/dvc.yaml`): train and predict each listed fold, then gather."""

    folds: tuple[int, ...] = ()  # the folds to train and predict, e.g. [0, 1, 2, 3, 4]; empty: none
    models: str = "models/folds"  # fold k's model is <models>/fold_<k>; the folder is their ensemble
    predictions: str = "outputs/crossval"  # fold k's validation predictions are <predictions>/fold_<k>
    metrics_file: str = "metrics/crossval.json"  # per class mean and sd of Dice and HD95, the postprocessing chosen

    def __post_init__(self) -> None:
        if len(set(self.folds)) != len(self.folds) or any(not isinstance(k, int) or k < 0 for k in self.folds):
            raise ConfigError(f"crossval.folds must be distinct fold numbers >= 0, got {list(self.folds)}.")


# ------------------------------------------------------------------------------------------- SEAM


MAX_CHOSEN_SCALES = 6  # seam.choose_scales tries every subset: 63 per class for 6


@dataclass(frozen=True)
class SeamConfig:
    """SEAM (Wang et al., CVPR 2020) as a training method (`train.supervision: seam`): a classifier on the encoder
    learns from presence labels; its CAMs, refined by the pixel correlation module (PCM), become pseudo masks."""

    cam_level: int | None = None  # encoder level of the CAMs; null: the level at 1/4 of the input resolution
    scale: float = 0.5  # second branch: the patch rescaled by this (SEAM: 0.3 of 448 px; small 3D patches need more)
    patch_size: tuple[int, ...] | None = None  # training patch; null: half the network's default patch per axis
    er_weight: float = 1.0  # equivariant regularisation (L1 between the two branches' CAMs); 0: plain CAM training
    ecr_weight: float = 1.0  # equivariant cross regularisation (PCM output of one branch vs the other's CAM)
    ecr_share: float = 0.2  # ECR averages the hardest share of voxels
    min_weight: float = 1.0  # pushes the lowest `min_share` of PCM activations to 0
    min_share: float = 0.25  # share of voxels the min-pooling term reads (SEAM: a quarter)
    # SEAM starts from an ImageNet backbone whose CAMs already localise; from scratch, ER's trivial solution (a class's
    # maps all zero in both branches) wins before the classifier has learnt where a class is (Task04: the anterior
    # classifier collapsed to "absent" on every patch without a warm-up)
    warmup: float = 0.2  # share of the run on the classification loss alone, then ER/ECR/min pooling ramp in as long
    norm: str = "batch"  # the SEAM encoder's normalisation: instance norm makes the pooled class score ~constant
    # mirroring and rot90 keep a patch's presence labels but hide where and which way round a structure lies, the cue
    # that tells classes apart in canonically oriented volumes (Task04's anterior lies in front of its posterior:
    # with them one class's CAMs failed to localise in some seeds); on DSB2018's nuclei they changed nothing
    orientation_augment: bool = False  # SEAM training with train.augment's mirroring and rot90 (false: without them)
    pcm_channels: int = 64  # projection of [image, features of cam_level - 1 and cam_level] for the affinities
    pcm_window: int | None = None  # null: all voxels (SEAM) up to 4096 CAM cells, else 9; an odd int: that window
    # the PCM helps or not by model (DSB2018, two seeds: +0.04 and -0.02) and blurs classes that look alike (Task04,
    # 8-min models: the classifier's CAMs 0.539 / 0.476, PCM-refined 0.502 / 0.445)
    refine: bool | str = "auto"  # per class, PCM-refined CAMs (true) or the classifier's (false); auto: chosen on val
    infer_scales: tuple[float, ...] = (0.5, 1.0, 1.5, 2.0)  # maps summed over these input scales (SEAM's inference)
    # each scale places a class differently (Task04, one model: anterior best from 0.5 and 1.0, posterior from 1.5)
    choose_scales: bool = True  # per class, the subset of infer_scales its map sums: chosen on validation cases
    # a voxel is class k where k's map is the largest and above k's background score
    background: float | tuple[float, ...] | None = None  # per class (one value: all); null: chosen on validation cases
    # a classifier learns *that* a class is in a patch, not exactly where: its CAMs may sit a few voxels off the
    # structure (one DSB2018 model's nuclei maps 3 px up and 2 left; Task04's 3 voxels along the last axis), a shift
    # that, like the background score, is chosen on the validation cases (with the background scores at each shift)
    shift: tuple[int, ...] | None = None  # voxels per axis every class's map moves by; null: chosen per class
    max_shift: int = 6  # the choice tries -max_shift..max_shift per axis (0: never shift)
    labels_file: str | None = None  # JSON {case id: [classes present]}: presence per whole case instead of per patch
    model: str = "models/seam"  # the SEAM model (`dvc repro seam/dvc.yaml`)
    pseudo_cache: str = "data/pseudo"  # the cache with the pseudo masks of the training cases
    segmenter: str = "models/seam_segmenter"  # the segmentation network trained on the pseudo masks

    def training_augment(self, augment: AugmentConfig) -> AugmentConfig:
        """`train.augment` as SEAM trains with it, which also decides the axes test-time augmentation may mirror."""
        return augment if self.orientation_augment else dataclasses.replace(augment, flip_prob=0.0, rot90_prob=0.0)

    def __post_init__(self) -> None:
        if not 0.0 < self.scale < 1.0:
            raise ConfigError(f"seam.scale must be in (0, 1) (the second branch's rescale factor), got {self.scale}.")
        if not 0.0 <= self.warmup < 0.5:
            raise ConfigError(f"seam.warmup must be in [0, 0.5) (a share of the run: classification alone, then as "
                              f"long a ramp), got {self.warmup}.")
        for name in ("ecr_share", "min_share"):
            if not 0.0 < getattr(self, name) <= 1.0:
                raise ConfigError(f"seam.{name} must be in (0, 1], got {getattr(self, name)}.")
        for name in ("er_weight", "ecr_weight", "min_weight"):
            if getattr(self, name) < 0:
                raise ConfigError(f"seam.{name} must be >= 0 (0 turns the term off), got {getattr(self, name)}.")
        _auto_or("seam.refine", self.refine, bool)
        if self.pcm_window is not None and (self.pcm_window < 1 or self.pcm_window % 2 == 0):
            raise ConfigError(f"seam.pcm_window must be an odd number >= 1 or null (all voxels), got {self.pcm_window}.")
        values = self.background if isinstance(self.background, tuple) else (self.background,)
        if self.background is not None and not all(0.0 <= v <= 1.0 for v in values):
            raise ConfigError(f"seam.background must be a score in [0, 1], one per foreground class, or null (chosen "
                              f"on validation cases), got {self.background}.")
        if self.patch_size is not None and any(p < 1 for p in self.patch_size):
            raise ConfigError(f"seam.patch_size must be positive, got {list(self.patch_size)}.")
        if self.cam_level is not None and self.cam_level < 1:
            raise ConfigError(f"seam.cam_level must be >= 1 (PCM reads the level above it too), got {self.cam_level}.")
        if not self.infer_scales or any(f <= 0 for f in self.infer_scales):
            raise ConfigError(f"seam.infer_scales must be positive factors, e.g. [0.5, 1.0, 1.5, 2.0], "
                              f"got {list(self.infer_scales)}.")
        if self.choose_scales and len(self.infer_scales) > MAX_CHOSEN_SCALES:
            raise ConfigError(f"seam.infer_scales has {len(self.infer_scales)} scales; choosing each class's subset "
                              f"tries all {2 ** len(self.infer_scales) - 1} of them: give at most "
                              f"{MAX_CHOSEN_SCALES} scales or set seam.choose_scales false (every class sums all).")
        _one_of("seam.norm", self.norm, NORMS)
        if self.pcm_channels < 1:
            raise ConfigError(f"seam.pcm_channels must be >= 1, got {self.pcm_channels}.")
        if self.max_shift < 0:
            raise ConfigError(f"seam.max_shift must be >= 0 (0: the maps are never shifted), got {self.max_shift}.")


# ------------------------------------------------------------------------------------------- loading


@dataclass(frozen=True)
class Config:
    """All sections; each stage reads only the one it needs."""

    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    infer: InferConfig = field(default_factory=InferConfig)
    analyze: AnalyzeConfig = field(default_factory=AnalyzeConfig)
    crossval: CrossvalConfig = field(default_factory=CrossvalConfig)
    seam: SeamConfig = field(default_factory=SeamConfig)

    def __post_init__(self) -> None:
        self.train.augment.mirrored_axes(self.model.spatial_dims)  # an axis the patches lack fails at load time
        if self.seam.cam_level is not None and self.seam.cam_level >= len(self.model.channels):
            raise ConfigError(f"seam.cam_level {self.seam.cam_level} is not an encoder level of model.channels "
                              f"{list(self.model.channels)}; pick 1..{len(self.model.channels) - 1}.")
        if self.seam.patch_size is not None and len(self.seam.patch_size) != self.model.spatial_dims:
            raise ConfigError(f"seam.patch_size {list(self.seam.patch_size)} needs {self.model.spatial_dims} entries "
                              f"for a {self.model.spatial_dims}D model.")
        if self.seam.shift is not None and len(self.seam.shift) != self.model.spatial_dims:
            raise ConfigError(f"seam.shift {list(self.seam.shift)} needs one number of voxels per axis "
                              f"({self.model.spatial_dims} for a {self.model.spatial_dims}D model), or null to choose "
                              f"it on validation cases.")
        bad = [k for k in self.crossval.folds if k >= self.data.folds]
        if bad:
            raise ConfigError(f"crossval.folds {bad} do not exist with data.folds={self.data.folds}; pick from "
                              f"0..{self.data.folds - 1}.")


def _is_dataclass_type(tp: Any) -> bool:
    return isinstance(tp, type) and dataclasses.is_dataclass(tp)


def _convert(value: Any, tp: Any, where: str, source: str) -> Any:
    """Coerce YAML values to the annotated type: lists to tuples, nested sections to dataclasses."""
    origin = typing.get_origin(tp)
    if _is_dataclass_type(tp):
        if not isinstance(value, dict):
            raise ConfigError(f"{source}: '{where}' must be a mapping of keys, got {type(value).__name__} {value!r}.")
        return from_dict(tp, value, source, prefix=f"{where}.")
    if origin in (typing.Union, types.UnionType):
        args = typing.get_args(tp)
        if value is None and type(None) in args:
            return None
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _convert(value, arg, where, source)
            except (ConfigError, TypeError, ValueError):
                continue
        raise ConfigError(f"{source}: '{where}' = {value!r} does not fit type {tp}.")
    if origin is tuple:
        if not isinstance(value, list | tuple):
            raise ConfigError(f"{source}: '{where}' must be a list, got {value!r}.")
        args = typing.get_args(tp)
        item = args[0] if args else Any
        return tuple(_convert(v, item, f"{where}[{i}]", source) for i, v in enumerate(value))
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{source}: '{where}' must be a mapping, got {value!r}.")
        return dict(value)
    if tp is Any:
        return value
    if tp is float and isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    if tp is type(None):
        if value is not None:
            raise ConfigError(f"{source}: '{where}' must be null, got {value!r}.")
        return None
    if isinstance(tp, type):
        if tp is int and isinstance(value, bool) or not isinstance(value, tp):
            raise ConfigError(f"{source}: '{where}' must be {tp.__name__}, got {type(value).__name__} {value!r}.")
    return value


def from_dict(cls: type[T], data: dict[str, Any], source: str = "<config>", prefix: str = "") -> T:
    """Build dataclass `cls` from a mapping; unknown keys raise with the nearest valid key."""
    hints = typing.get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls)]  # type: ignore[arg-type]
    kwargs = {}
    for key, value in data.items():
        if key not in names:
            hint = did_you_mean(key, names, cutoff=0.5, prefix=prefix) or f" Valid keys: {', '.join(names)}."
            raise ConfigError(f"{source}: unknown key '{prefix}{key}'.{hint}")
        kwargs[key] = _convert(value, hints[key], f"{prefix}{key}", source)
    try:
        return cls(**kwargs)
    except ConfigError as e:
        raise ConfigError(f"{source}: {e}") from None


def load_config(path: str | Path | None = None, overrides: dict[str, Any] | None = None) -> Config:
    """Load a YAML file (sections as in `Config`); keys absent from the file keep their defaults."""
    import yaml

    data: dict[str, Any] = {}
    source = "<defaults>"
    if path is not None:
        path = Path(path)
        source = str(path)
        if not path.is_file():
            raise ConfigError(f"{path}: config file not found. Pass an existing YAML file (see configs/).")
        try:
            data = yaml.safe_load(path.read_text()) or {}
        except yaml.YAMLError as e:
            raise ConfigError(f"{path}: not valid YAML ({str(e).splitlines()[0]}). Fix the syntax.") from None
        if not isinstance(data, dict):
            raise ConfigError(f"{path}: expected a mapping of sections at the top, got {type(data).__name__}.")
    for dotted, value in (overrides or {}).items():
        node = data
        *parents, leaf = dotted.split(".")
        for p in parents:
            node = node.setdefault(p, {})
        node[leaf] = value
    return from_dict(Config, data, source)


def to_dict(cfg: Any) -> dict[str, Any]:
    """Plain, YAML/JSON-ready dict of a config (tuples become lists)."""

    def plain(v: Any) -> Any:
        if isinstance(v, tuple | list):
            return [plain(x) for x in v]
        if isinstance(v, dict):
            return {k: plain(x) for k, x in v.items()}
        return v

    return {k: plain(v) for k, v in dataclasses.asdict(cfg).items()}


def flatten(cfg: Any, prefix: str = "") -> dict[str, Any]:
    """Dotted-key view, e.g. for MLflow params."""
    out: dict[str, Any] = {}
    for k, v in to_dict(cfg).items():
        if isinstance(v, dict):
            out.update(flatten_dict(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


def flatten_dict(d: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in d.items():
        if isinstance(v, dict):
            out.update(flatten_dict(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out
