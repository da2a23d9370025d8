"""The `train` section and its `train.augment`: optimisation, sampling, limits, hardware and tracking of a run."""

from __future__ import annotations

from dataclasses import dataclass

from seg.config.checks import AUTO, ConfigError, auto_or, is_int, one_of, thread_count
from seg.config.fields import doc, section

OPTIMIZERS = ("adamw", "sgd")
SCHEDULES = ("poly", "cosine", "constant")
PRECISIONS = ("auto", "32", "bf16-mixed", "16-mixed")
DEFAULT_EPOCHS = 100  # the epoch limit of a run given neither train.max_epochs nor train.max_time_minutes
SUPERVISIONS = ("full", "seam")  # full: voxel masks; seam: image-level presence labels (SEAM, see SeamConfig)


@dataclass(frozen=True)
class AugmentConfig:
    """MONAI augmentations applied to training patches; each probability is per patch."""

    flip_prob: float = doc(0.5, "per axis")
    flip_axes: tuple[int, ...] | None = doc(
        None, "spatial axes mirrored (0 = first); None: all. TTA mirrors the same ones"
    )
    rot90_prob: float = doc(0.5, "only in planes where the patch is square, so shapes never change")
    affine_prob: float = doc(0.2, "rotation + scaling: robust to pose and size, but the slowest transform on CPU")
    rotate_degrees: float = doc(15.0, "maximum rotation per axis of the affine transform")
    scale_range: tuple[float, float] = doc((0.85, 1.25), "affine scale factor, one for all axes, from this range")
    intensity_prob: float = doc(0.15, "scale and shift of intensities")
    gamma_prob: float = doc(0.15, "probability of a random gamma (contrast) change")
    gamma_range: tuple[float, float] = doc((0.7, 1.5), "gamma range")
    noise_prob: float = doc(0.1, "probability of additive Gaussian noise")

    def __post_init__(self) -> None:
        axes = self.flip_axes
        if axes is not None and (min(axes, default=0) < 0 or len(set(axes)) != len(axes)):
            raise ConfigError(
                f"train.augment.flip_axes must be distinct spatial axes counted from 0 (e.g. [0] mirrors "
                f"left-right only), or null for all, got {list(axes)}."
            )

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
            raise ConfigError(
                f"train.augment.flip_axes {list(axes)} names an axis the {dims}D patches do not have; "
                f"use axes 0..{dims - 1}, or null for all."
            )
        return axes


@dataclass(frozen=True)
class TrainConfig:
    """Optimisation, sampling, hardware and tracking of one training run."""

    patch_size: tuple[int, ...] | None = doc(
        None, "None: the dataset's median shape rounded to the net's size multiple"
    )
    batch_size: int = doc(4, "patches per step (per process with DDP); a larger batch keeps more cores busy")
    foreground_fraction: float = doc(0.33, "share of patches centred on foreground (nnU-Net's oversampling)")
    max_epochs: int | None = doc(None, "epochs of steps_per_epoch batches; null: none with a time budget, else 100")
    max_time_minutes: float | None = doc(None, "wall-clock budget; with max_epochs too, whichever comes first ends it")
    steps_per_epoch: int = doc(50, "an epoch is a fixed number of patch batches, independent of dataset size")
    optimizer: str = doc("adamw", "adamw or sgd (Nesterov, nnU-Net style)")
    lr: float = doc(3e-3, "peak learning rate (after warm-up)")
    weight_decay: float = doc(3e-5, "decoupled (AdamW) or L2 (SGD) weight decay")
    momentum: float = doc(0.99, "SGD only (Nesterov)")
    schedule: str = doc("poly", "poly (nnU-Net) or cosine decay over max_epochs (or the time budget)")
    warmup_epochs: int = doc(0, "linear learning-rate warm-up")
    grad_clip: float = doc(12.0, "global norm; 0 disables")
    ema_decay: float = doc(0.0, "> 0: validate and save an exponential moving average of the weights (e.g. 0.999)")
    dice_weight: float = doc(1.0, "weight of the soft Dice term of the loss")
    ce_weight: float = doc(1.0, "weight of the cross-entropy term of the loss")
    seed: int = doc(0, "seeds torch, numpy and data-loader workers")
    num_threads: int | None = doc(None, "torch intra-op threads per process; null: the cores it may use / devices")
    num_workers: int = doc(0, "data-loader processes; on 2 cores they compete with compute")
    precision: str = doc("auto", "auto: the faster of 32 and bf16-mixed, timed here (CUDA: bf16-mixed or 16-mixed)")
    channels_last: bool | str = doc("auto", "NDHWC/NHWC layout while training; auto: timed against contiguous")
    accelerator: str = doc("auto", "auto, cpu or gpu")
    devices: int = doc(1, "processes (CPU) or GPUs per machine; > 1 needs strategy ddp")
    num_nodes: int = doc(
        1, "machines; > 1 needs strategy ddp and precision, channels_last and the validation schedule set"
    )
    strategy: str = doc("auto", '"ddp" for several processes (gloo on CPU, nccl on GPU)')
    val_every: int | str = doc("auto", "epochs between validations; auto: every epoch while validation fits val_share")
    val_every_minutes: float | None = doc(
        None, "validate every N minutes of wall clock and when the budget ends instead"
    )
    val_share: float = doc(0.1, "with val_every auto: the most of the wall clock that validation may take")
    val_overlap: float = doc(0.5, "sliding-window overlap at validation")
    slice_axis: int = doc(2, "2D models on 3D volumes train on slices along this spatial axis")
    augment: AugmentConfig = section(AugmentConfig)
    output_dir: str = doc("outputs/train", "checkpoints and the run state (kept for --resume)")
    model_dir: str = doc("models/latest", "the trained model folder that `seg infer --model` takes")
    metrics_dir: str = doc("metrics", "train.json, train_history.csv and train_curves.png for DVC")
    tracking_uri: str | None = doc(None, "None: $MLFLOW_TRACKING_URI, else sqlite:///<repo>/mlflow.db")
    experiment: str = doc("seg", "MLflow experiment name")
    run_name: str | None = doc(None, "MLflow run name (None: MLflow picks one)")
    registered_model: str | None = doc("auto", "MLflow registry name; auto: seg-<dataset folder>; null: not registered")
    champion_alias: str = doc("champion", "alias moved to the version of that name with the best validation Dice")
    gate_images: bool = doc(
        True,
        "log a fixed validation case's pictures every validation: each attention map (maps/<kind>_<site>) and the "
        "self-attention distances; SEAM: its CAM and PCM maps",
    )
    supervision: str = doc("full", "full: masks; seam: only which classes a patch holds (the seam section)")

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
        return (
            f"trains {epochs} epochs of {self.steps_per_epoch} steps or {minutes:g} min, whichever comes first "
            f"(set train.max_epochs null to train for the whole budget)"
        )

    def __post_init__(self) -> None:
        one_of("train.supervision", self.supervision, SUPERVISIONS)
        one_of("train.optimizer", self.optimizer, OPTIMIZERS)
        one_of("train.schedule", self.schedule, SCHEDULES)
        one_of("train.precision", self.precision, PRECISIONS)
        auto_or("train.channels_last", self.channels_last, bool)
        auto_or("train.val_every", self.val_every, int, minimum=1)
        thread_count("train.num_threads", self.num_threads)
        if not 0.0 < self.val_share < 1.0:
            raise ConfigError(
                f"train.val_share must be in (0, 1) (0.1: validation may take a tenth of the wall "
                f"clock), got {self.val_share}."
            )
        if not 0.0 <= self.foreground_fraction <= 1.0:
            raise ConfigError(f"train.foreground_fraction must be in [0, 1], got {self.foreground_fraction}.")
        for name in ("batch_size", "steps_per_epoch", "devices", "num_nodes"):
            if getattr(self, name) < 1:
                raise ConfigError(f"train.{name} must be >= 1, got {getattr(self, name)}.")
        self._check_limits()
        self._check_nodes()
        if self.patch_size is not None and any(p < 1 for p in self.patch_size):
            raise ConfigError(f"train.patch_size must be positive, got {list(self.patch_size)}.")
        if not 0.0 <= self.val_overlap < 1.0:
            raise ConfigError(f"train.val_overlap must be in [0, 1), got {self.val_overlap}.")
        if not 0.0 <= self.ema_decay < 1.0:
            raise ConfigError(
                f"train.ema_decay must be in [0, 1) (0 disables the weight average, 0.999 is "
                f"typical), got {self.ema_decay}."
            )
        if self.val_every_minutes is not None and self.val_every_minutes <= 0:
            raise ConfigError(
                f"train.val_every_minutes must be > 0 (or null: every val_every epochs), got {self.val_every_minutes}."
            )

    def world_size(self) -> int:
        """The training processes of the run over all its machines."""
        return self.devices * self.num_nodes

    def _check_nodes(self) -> None:
        """Several machines: DDP, and nothing a machine would time for itself. Each machine tunes and plans before
        the ranks meet, so `auto` could give ranks different precisions (a gradient scaler on one rank only),
        layouts (DDP sums gradient buffers in memory order) or validation epochs (a collective one rank never
        joins)."""
        if self.num_nodes == 1:
            return
        if self.strategy != "ddp":
            raise ConfigError(
                f"train.num_nodes {self.num_nodes} needs train.strategy ddp, got {self.strategy!r}. "
                f"Set train.strategy=ddp."
            )
        timed = {"precision": self.precision, "channels_last": self.channels_last}
        if self.val_every_minutes is None:
            timed["val_every"] = self.val_every
        auto = [name for name, value in timed.items() if value == AUTO]
        if auto:
            raise ConfigError(
                f"train.num_nodes {self.num_nodes} needs {' and '.join(f'train.{n}' for n in auto)} given, got auto: "
                f"each machine would time its own, and every rank must train and validate alike. "
                f"Set e.g. train.precision=32 train.channels_last=false train.val_every=1."
            )

    def _check_limits(self) -> None:
        if self.max_epochs is not None and (not is_int(self.max_epochs) or self.max_epochs < 1):
            raise ConfigError(
                f"train.max_epochs must be an int >= 1, or null (no epoch limit with a time budget), "
                f"got {self.max_epochs!r}."
            )
        if self.max_time_minutes is not None and self.max_time_minutes <= 0:
            raise ConfigError(
                f"train.max_time_minutes must be > 0, or null (no time budget), got {self.max_time_minutes}."
            )
