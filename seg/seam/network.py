"""SEAM's network (Wang et al., CVPR 2020, "Self-supervised Equivariant Attention Mechanism for Weakly Supervised
Semantic Segmentation"), dimension-generic: the encoder of our U-Net (with its attention modules) up to
`cam_level`, a 1x1 classifier without bias on that level's features (its output is the CAM, one map per
foreground class), and the pixel correlation module (PCM): affinities of a 1x1 projection of [image, detached
features of levels cam_level - 1 and cam_level] refine the normalised CAMs.

`net.branch(x)` gives what training needs (raw CAMs and PCM output). `net.scores(x, presence)` gives per-class
scores in [0, 1] on the input grid: channel k the CAM of class k (PCM-refined or not: `net.refine_mask`, per class)
summed over its share of `seam.infer_scales` (SEAM's multi-scale inference; `net.scale_mask`, per class), moved by
`net.shift[k]` voxels per axis, max-normalised, zero where class k is absent (`presence`; None: the classifier
decides, sigmoid of the pooled CAM > 0.5, averaged over the scales); channel 0 the background score of the class
whose map is the largest there (`net.background`, one per class). Refinement, scales, shifts and background scores
are chosen on validation cases (`seg.seam.calibration`). Their argmax is SEAM's pseudo mask: class k where k's
map is the largest and above k's background score. `net.outputs(x)` and `net(x)` return log-scores as logits, so
`seg infer` and `seg analyze` apply a SEAM model like a segmentation network (softmax of the logits = the scores
normalised to sum 1).
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from torch import nn

from seg.config import ConfigError
from seg.models import layers
from seg.models.layers import interp_mode
from seg.models.unet import AttentionUNet, UNetOutput, build_encoder
from seg.seam.pcm import pixel_correlation

if TYPE_CHECKING:
    from seg.config import ModelConfig, SeamConfig

EPS = 1e-5
LOG_FLOOR = 1e-6  # log-scores are clamped here: softmax stays finite where every score is 0
# With seam.pcm_window null, all-pairs affinities (SEAM) up to this many CAM cells (a training patch's grid, a small
# image); beyond it (a whole volume or large image at inference), a local window. The PCM learns its projection on
# training patches, where every pair lies within one patch: all pairs of a grid many times larger mix regions it never
# had to tell apart, and the refined maps flatten (measured in docs/benchmarks.md). The window is O(cells) in memory;
# all pairs of 16384 cells take 1 GiB.
DENSE_CELLS = 4096
LARGE_WINDOW = 9


def default_cam_level(config: ModelConfig) -> int:
    """The first encoder level at 1/4 of the input resolution or coarser on every axis (the last level if none)."""
    stem, strides = config.stem_stride_per_axis(), config.strides_per_axis()
    for level in range(1, len(config.channels)):
        factor = [stem[a] * math.prod(s[a] for s in strides[:level]) for a in range(config.spatial_dims)]
        if min(factor) >= 4:
            return level
    return len(config.channels) - 1


def max_norm(p: torch.Tensor) -> torch.Tensor:
    """SEAM's normalisation per sample and channel: (ReLU(p) - min) / (max - min), over space."""
    p = F.relu(p)
    flat = p.flatten(2)
    lo = flat.min(-1).values.view(*p.shape[:2], *[1] * (p.ndim - 2))
    hi = flat.max(-1).values.view(*p.shape[:2], *[1] * (p.ndim - 2))
    return F.relu(p - lo - EPS) / (hi - lo + EPS)


def translate(maps: torch.Tensor, shift) -> torch.Tensor:
    """(B, C, *S) maps moved by `shift[a]` voxels along spatial axis a (positive: towards higher indices), the
    voxels moved in from outside zero."""
    for axis, step in enumerate(int(v) for v in shift):
        dim, n = 2 + axis, maps.shape[2 + axis]
        step = max(-n, min(n, step))
        if step == 0:
            continue
        pad = maps.new_zeros((*maps.shape[:dim], abs(step), *maps.shape[dim + 1 :]))
        kept = maps.narrow(dim, 0, n - step) if step > 0 else maps.narrow(dim, -step, n + step)
        maps = torch.cat([pad, kept] if step > 0 else [kept, pad], dim=dim)
    return maps


def pick(cam: torch.Tensor, refined: torch.Tensor, use) -> torch.Tensor:
    """Per-scale maps (S, B, K - 1, *size): class k's refined maps where `use[k]`, else its classifier's."""
    use = torch.as_tensor(use, dtype=torch.bool, device=cam.device)
    return torch.where(use.view(-1, *[1] * (cam.ndim - 3)), refined, cam)


def combine(raw: torch.Tensor, mask: torch.Tensor, shift, presence: torch.Tensor) -> torch.Tensor:
    """Per-scale maps (S, B, K - 1, *size) -> (B, K - 1, *size) scores in [0, 1]: class k's maps summed over the
    scales `mask[k]` (K - 1, S) keeps, moved by `shift[k]` voxels per axis, max-normalised, times `presence`
    (B, K - 1)."""
    total = torch.einsum("sbk...,ks->bk...", raw, mask.to(raw))
    if any(any(int(v) for v in row) for row in shift):
        total = torch.cat([translate(total[:, k : k + 1], row) for k, row in enumerate(shift)], dim=1)
    return (max_norm(total) * presence.to(total.dtype)[(..., *[None] * (raw.ndim - 3))]).clamp(0, 1)


def background_scores(value: float | tuple[float, ...] | None, classes: int) -> torch.Tensor:
    """(K - 1,) per-class background scores from `seam.background` (null: 0.5 until validation chooses)."""
    values = (0.5,) if value is None else value if isinstance(value, tuple) else (value,)
    if len(values) not in (1, classes):
        raise ConfigError(
            f"seam.background has {len(values)} scores for {classes} foreground classes; give one per "
            f"class, a single score for all, or null to choose them on validation cases."
        )
    return torch.tensor([float(v) for v in values] * (classes if len(values) == 1 else 1))


@dataclass
class SeamBranch:
    cam: torch.Tensor  # (B, K - 1, *s) the classifier's maps at the CAM level, before any normalisation
    refined: torch.Tensor  # (B, K, *s) PCM output of [background, winner-take-all normalised CAMs]


class SeamNet(nn.Module):
    """Encoder + CAM classifier + PCM for `spatial_dims` 2 or 3, built from a `ModelConfig` and a `SeamConfig`."""

    def __init__(self, config: ModelConfig, seam: SeamConfig):
        super().__init__()
        self.config, self.seam = config, seam
        dims, channels = config.spatial_dims, config.channels
        self.spatial_dims = dims
        self.cam_level = level = seam.cam_level if seam.cam_level is not None else default_cam_level(config)
        # GAP of a linear map of instance-normalised features is nearly the same for every patch (each channel has
        # zero mean over the patch before its activation), so a classifier there stays at the prior: seam.norm
        self.encoder, self.encoder_attention = build_encoder(dataclasses.replace(config, norm=seam.norm), level + 1)
        conv = layers.conv(dims)
        self.head = conv(channels[level], config.out_channels - 1, 1, bias=False)  # SEAM's fc8: no bias
        self.pcm_projection = conv(
            config.in_channels + channels[level - 1] + channels[level], seam.pcm_channels, 1, bias=False
        )
        self.register_buffer("background", background_scores(seam.background, config.out_channels - 1))
        classes = config.out_channels - 1
        # per class, voxels per axis its map moves by before the argmax (`seam.shift`; null: 0 until validation
        # chooses), and which of seam.infer_scales its map sums (1: summed; all until validation chooses)
        self.register_buffer("shift", torch.tensor([list(seam.shift or (0,) * dims)] * classes, dtype=torch.long))
        self.register_buffer("scale_mask", torch.ones(classes, len(seam.infer_scales)))
        # per class, 1 where its maps are the PCM-refined CAMs, 0 the classifier's (seam.refine; auto: PCM until
        # validation chooses)
        self.register_buffer("refine_mask", torch.full((classes,), float(seam.refine is not False)))
        # AttentionUNet's size rules up to this level: pad to its multiple, crop back
        self.strides = list(config.strides_per_axis())
        self.stem_stride = config.stem_stride_per_axis()
        self.pad_input = True
        self.gate_levels: list[int] = []

    # the parts of AttentionUNet's interface that inference and analysis read
    gate_names: tuple[str, ...] = ()
    full_res = None
    level_factor = AttentionUNet.level_factor
    _pad = AttentionUNet._pad
    _crop = staticmethod(AttentionUNet._crop)

    @property
    def size_multiple(self) -> tuple[int, ...]:
        return self.level_factor(self.cam_level)

    @property
    def cam_layer(self) -> str:
        """The module whose output the classifier reads: the default target of `seg analyze`'s Grad-CAM."""
        return f"encoder_attention.{self.cam_level}"

    def branch(self, x: torch.Tensor) -> SeamBranch:
        """One SEAM branch on a padded input (B, C, *S) whose sizes are multiples of `size_multiple`."""
        feats = []
        y = x
        for stage, att in zip(self.encoder, self.encoder_attention, strict=True):
            y = att(stage(y))
            feats.append(y)
        cam = self.head(feats[-1])  # (B, K - 1, *s)
        grid = tuple(cam.shape[2:])
        with torch.no_grad():  # SEAM: the PCM refines detached, winner-take-all normalised CAMs
            norm = F.relu(cam.detach().float())
            norm = F.relu(norm - EPS) / (norm.flatten(2).max(-1).values[(..., *[None] * len(grid))] + EPS)
            top = norm.max(1, keepdim=True).values  # (B, 1, *s)
            seeds = torch.cat([1 - top, torch.where(norm < top, torch.zeros_like(norm), norm)], dim=1)  # (B, K, *s)
        mode = interp_mode(len(grid))
        features = torch.cat(
            [
                F.interpolate(x.float(), size=grid, mode=mode, align_corners=False),
                F.interpolate(feats[-2].detach().float(), size=grid, mode=mode, align_corners=False),
                feats[-1].detach().float(),
            ],
            dim=1,
        )
        window = self.seam.pcm_window
        if window is None and math.prod(grid) > DENSE_CELLS:
            window = LARGE_WINDOW
        refined = pixel_correlation(seeds, self.pcm_projection(features.to(feats[-1].dtype)).float(), window)
        return SeamBranch(cam=cam, refined=refined)

    def class_scores(self, cam: torch.Tensor) -> torch.Tensor:
        """(B, K - 1) image-level logits: global average pooling of the CAMs (SEAM's classification)."""
        return cam.float().flatten(2).mean(-1)

    def scale_maps(self, x: torch.Tensor, refine: bool | None = None, scales=None) -> tuple[torch.Tensor, torch.Tensor]:
        """Per input scale (default seam.infer_scales), the ReLU of the CAMs on the input grid, (len(scales), B, K - 1,
        *S), PCM-refined or not as `refine` says for every class (None: per class, `refine_mask`), and the image-level
        logits averaged over the scales, (B, K - 1)."""
        if refine is None:
            use = self.refine_mask.bool()
            if bool(use.any()) and not bool(use.all()):
                cam, pcm, logits = self.scale_maps_both(x, scales)
                return pick(cam, pcm, use), logits
            refine = bool(use.all())
        (maps,), logits = self._scale_outputs(x, scales, (refine,))
        return maps, logits

    def scale_maps_both(self, x: torch.Tensor, scales=None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """`scale_maps` of the classifier's CAMs and of the PCM-refined ones from one pass: (cam, refined, logits)."""
        (cam, refined), logits = self._scale_outputs(x, scales, (False, True))
        return cam, refined, logits

    def _scale_outputs(
        self, x: torch.Tensor, scales, kinds: tuple[bool, ...]
    ) -> tuple[list[torch.Tensor], torch.Tensor]:
        """Per refine option in `kinds`, the per-scale maps on the input grid; and the logits averaged over scales."""
        size = tuple(x.shape[2:])
        mode = interp_mode(len(size))
        out_maps: dict[bool, list[torch.Tensor]] = {kind: [] for kind in kinds}
        logits = []
        for factor in scales or self.seam.infer_scales:
            xs = (
                x
                if factor == 1
                else F.interpolate(x, size=[max(1, round(n * factor)) for n in size], mode=mode, align_corners=False)
            )
            padded, own = self._pad(xs)
            out = self.branch(padded)
            for refine in kinds:
                maps = F.relu(out.refined[:, 1:] if refine else out.cam.float())  # (B, K - 1, *grid)
                maps = self._crop(
                    F.interpolate(maps, size=tuple(padded.shape[2:]), mode=mode, align_corners=False), own
                )
                out_maps[refine].append(
                    maps
                    if factor == 1 and own == size
                    else F.interpolate(maps, size=size, mode=mode, align_corners=False)
                )
            logits.append(self.class_scores(out.cam))
        return [torch.stack(out_maps[kind]) for kind in kinds], torch.stack(logits).mean(0)

    def scores(
        self, x: torch.Tensor, presence: torch.Tensor | None = None, refine: bool | None = None, scales=None
    ) -> torch.Tensor:
        """(B, K, *S) scores in [0, 1] on the input grid: [background, per-class maps], see the module docstring.
        `scales` given: every class sums the maps of all of them (else its `scale_mask` share of infer_scales)."""
        raw, logits = self.scale_maps(x, refine, scales)
        if presence is None:
            presence = torch.sigmoid(logits) > 0.5
        mask = self.scale_mask if scales is None else raw.new_ones(raw.shape[2], raw.shape[0])
        maps = combine(raw, mask, self.shift.tolist(), presence)
        winner = maps.argmax(1, keepdim=True)  # (B, 1, *S): the class whose background score applies
        background = self.background.to(maps.dtype)[winner]
        return torch.cat([background, maps], dim=1)

    def upgrade_state(self, state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Saved weights in this network's current layout: model folders from before per-class background scores hold
        one score, which applies to every class; those from before `shift` were never shifted, those from before
        per-class shifts and scales moved every class alike and summed all of seam.infer_scales, and those from before
        refinement per class refined every class or none (their seam.refine)."""
        if "background" in state and state["background"].ndim == 0:
            state = {**state, "background": state["background"].expand_as(self.background).clone()}
        if "shift" not in state:  # from before the shift: its maps were never shifted
            state = {**state, "shift": torch.zeros_like(self.shift)}
        elif state["shift"].ndim == 1:  # from before per-class shifts: one shift for every class
            state = {**state, "shift": state["shift"].expand_as(self.shift).clone()}
        if "scale_mask" not in state:  # from before per-class scales: every class summed all of them
            state = {**state, "scale_mask": torch.ones_like(self.scale_mask)}
        if "refine_mask" not in state:  # from before refine per class: every class as its seam.refine said
            state = {**state, "refine_mask": self.refine_mask.clone()}
        return state

    def outputs(self, x: torch.Tensor, maps=None, deep_supervision: bool = True, gates: bool = True) -> UNetOutput:
        """Log-scores as logits (no attention maps, no deep supervision: SEAM's network has neither)."""
        return UNetOutput(logits=self.scores(x).clamp_min(LOG_FLOOR).log())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.outputs(x).logits

    def map_ids(self) -> list:
        return []
