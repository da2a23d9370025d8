"""The `seam` section: SEAM training from presence labels, its CAM refinement and how its maps become masks."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from seg.config.checks import ConfigError, auto_or, one_of
from seg.config.fields import doc
from seg.config.model import NORMS
from seg.config.train import AugmentConfig

MAX_CHOSEN_SCALES = 6  # seam.choose_scales tries every subset: 63 per class for 6


@dataclass(frozen=True)
class SeamConfig:
    """SEAM (Wang et al., CVPR 2020) as a training method (`train.supervision: seam`): a classifier on the encoder
    learns from presence labels; its CAMs, refined by the pixel correlation module (PCM), become pseudo masks."""

    cam_level: int | None = doc(None, "encoder level of the CAMs; null: the level at 1/4 of the input resolution")
    scale: float = doc(
        0.5, "second branch: the patch rescaled by this (SEAM: 0.3 of 448 px; small 3D patches need more)"
    )
    patch_size: tuple[int, ...] | None = doc(None, "training patch; null: half the network's default patch per axis")
    er_weight: float = doc(1.0, "equivariant regularisation (L1 between the two branches' CAMs); 0: plain CAM training")
    ecr_weight: float = doc(1.0, "equivariant cross regularisation (PCM output of one branch vs the other's CAM)")
    ecr_share: float = doc(0.2, "ECR averages the hardest share of voxels")
    min_weight: float = doc(1.0, "pushes the lowest `min_share` of PCM activations to 0")
    min_share: float = doc(0.25, "share of voxels the min-pooling term reads (SEAM: a quarter)")
    warmup: float = doc(
        0.2,
        "share of the run on the classification loss alone, then ER/ECR/min pooling ramp in as long. SEAM "
        "starts from an ImageNet backbone whose CAMs already localise; from scratch, ER's trivial solution (a "
        "class's maps all zero in both branches) can win before the classifier has learnt where a class is",
    )
    norm: str = doc("batch", "the SEAM encoder's normalisation: instance norm makes the pooled class score ~constant")
    orientation_augment: bool = doc(
        False,
        "SEAM training with train.augment's mirroring and rot90 (false: without them). They keep a patch's "
        "presence labels but hide where and which way round a structure lies, the cue that tells classes apart in "
        "canonically oriented volumes",
    )
    pcm_channels: int = doc(64, "projection of [image, features of cam_level - 1 and cam_level] for the affinities")
    pcm_window: int | None = doc(None, "null: all voxels (SEAM) up to 4096 CAM cells, else 9; an odd int: that window")
    refine: bool | str = doc(
        "auto",
        "per class, PCM-refined CAMs (true) or the classifier's (false); auto: chosen on validation cases. "
        "The PCM helps some models and not others, and blurs classes that look alike",
    )
    infer_scales: tuple[float, ...] = doc(
        (0.5, 1.0, 1.5, 2.0), "maps summed over these input scales (SEAM's inference)"
    )
    choose_scales: bool = doc(
        True,
        "per class, the subset of infer_scales its map sums, chosen on validation cases: each scale can "
        "place a class differently",
    )
    background: float | tuple[float, ...] | None = doc(
        None,
        "a voxel is class k where k's map is the largest and above k's background score: one score per "
        "class (one value: all); null: chosen on validation cases",
    )
    shift: tuple[int, ...] | None = doc(
        None,
        "voxels per axis every class's map moves by; null: chosen per class on validation cases (with the "
        "background scores at each shift). A classifier learns that a class is in a patch, not exactly where: "
        "its CAMs may sit a few voxels off the structure",
    )
    max_shift: int = doc(6, "the choice tries -max_shift..max_shift per axis (0: never shift)")
    labels_file: str | None = doc(
        None, "JSON {case id: [classes present]}: presence per whole case instead of per patch"
    )
    model: str = doc("models/seam", "the SEAM model (`dvc repro seam/dvc.yaml`)")
    pseudo_cache: str = doc("data/pseudo", "the cache with the pseudo masks of the training cases")
    segmenter: str = doc("models/seam_segmenter", "the segmentation network trained on the pseudo masks")

    def training_augment(self, augment: AugmentConfig) -> AugmentConfig:
        """`train.augment` as SEAM trains with it, which also decides the axes test-time augmentation may mirror."""
        return augment if self.orientation_augment else dataclasses.replace(augment, flip_prob=0.0, rot90_prob=0.0)

    def __post_init__(self) -> None:
        if not 0.0 < self.scale < 1.0:
            raise ConfigError(f"seam.scale must be in (0, 1) (the second branch's rescale factor), got {self.scale}.")
        if not 0.0 <= self.warmup < 0.5:
            raise ConfigError(
                f"seam.warmup must be in [0, 0.5) (a share of the run: classification alone, then as "
                f"long a ramp), got {self.warmup}."
            )
        self._check_loss_terms()
        auto_or("seam.refine", self.refine, bool)
        if self.pcm_window is not None and (self.pcm_window < 1 or self.pcm_window % 2 == 0):
            raise ConfigError(
                f"seam.pcm_window must be an odd number >= 1 or null (all voxels), got {self.pcm_window}."
            )
        values = self.background if isinstance(self.background, tuple) else (self.background,)
        if self.background is not None and not all(0.0 <= v <= 1.0 for v in values):
            raise ConfigError(
                f"seam.background must be a score in [0, 1], one per foreground class, or null (chosen "
                f"on validation cases), got {self.background}."
            )
        if self.patch_size is not None and any(p < 1 for p in self.patch_size):
            raise ConfigError(f"seam.patch_size must be positive, got {list(self.patch_size)}.")
        if self.cam_level is not None and self.cam_level < 1:
            raise ConfigError(f"seam.cam_level must be >= 1 (PCM reads the level above it too), got {self.cam_level}.")
        self._check_scales()
        one_of("seam.norm", self.norm, NORMS)
        if self.pcm_channels < 1:
            raise ConfigError(f"seam.pcm_channels must be >= 1, got {self.pcm_channels}.")
        if self.max_shift < 0:
            raise ConfigError(f"seam.max_shift must be >= 0 (0: the maps are never shifted), got {self.max_shift}.")

    def _check_loss_terms(self) -> None:
        for name in ("ecr_share", "min_share"):
            if not 0.0 < getattr(self, name) <= 1.0:
                raise ConfigError(f"seam.{name} must be in (0, 1], got {getattr(self, name)}.")
        for name in ("er_weight", "ecr_weight", "min_weight"):
            if getattr(self, name) < 0:
                raise ConfigError(f"seam.{name} must be >= 0 (0 turns the term off), got {getattr(self, name)}.")

    def _check_scales(self) -> None:
        if not self.infer_scales or any(f <= 0 for f in self.infer_scales):
            raise ConfigError(
                f"seam.infer_scales must be positive factors, e.g. [0.5, 1.0, 1.5, 2.0], got {list(self.infer_scales)}."
            )
        if self.choose_scales and len(self.infer_scales) > MAX_CHOSEN_SCALES:
            raise ConfigError(
                f"seam.infer_scales has {len(self.infer_scales)} scales; choosing each class's subset "
                f"tries all {2 ** len(self.infer_scales) - 1} of them: give at most "
                f"{MAX_CHOSEN_SCALES} scales or set seam.choose_scales false (every class sums all)."
            )
