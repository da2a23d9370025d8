"""The network's attention maps of one validation case, for review in MLflow while training runs: one picture per
map (named by its `MapId.key`) and the attention distance of every self-attention head as a metric.

Spatial maps (gate, spatial, self) are drawn as slices through the structure (three orthogonal slices in 3D, the
image itself in 2D): the image in grey, the map as a heat map on its own colour scale with a colour bar in its
units (gate and spatial maps: [0, 1]; self-attention: how far each query looks, in mm, from 0 to the map's
maximum), and the ground-truth contour. Channel weights (a vector per case) are drawn as a bar per channel."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F

from seg.models.layers import interp_mode
from seg.models.maps import CHANNEL, GATE, SELF, SPATIAL, MapId, MapRequest
from seg.pictures import centre_of_mass, crop_around

# Card keys are the map keys themselves (gate_level0, self_enc3b0_h1): a "/" in a key puts MLflow's cards in a
# section of their own, whose cards the UI mounts only when scrolled to.
CARD_PREFIX = ""
DISTANCE_PREFIX = "attention_distance/"


@dataclass(frozen=True)
class Scale:
    """A heat map's colour scale: `high` None spans 0 to the map's maximum."""

    unit: str
    high: float | None = 1.0


SCALES = {
    GATE: Scale("gate coefficient [0, 1]"),
    SPATIAL: Scale("spatial weight [0, 1]"),
    SELF: Scale("attention distance (mm)", high=None),
}


@dataclass
class MapReview:
    """What one validation logs of the network's maps: {MLflow image key: RGB} and {MLflow metric key: value}."""

    pictures: dict[str, np.ndarray] = field(default_factory=dict)
    metrics: dict[str, float] = field(default_factory=dict)


def card_key(map_id: MapId) -> str:
    """`gate_level0`, `spatial_dec1`, `channel_enc2`, `self_enc3b0_h0`."""
    return CARD_PREFIX + map_id.key


def distance_key(map_id: MapId) -> str:
    """`attention_distance/enc3b0/h0`: one MLflow metric per self-attention block and head."""
    return f"{DISTANCE_PREFIX}{map_id.site}/h{map_id.head}"


def input_spacing(target_spacing: Sequence[float], slice_axis: int | None) -> tuple[float, ...]:
    """The network input's voxel spacing (mm): the cache's target spacing, less the slice axis for a 2D network on
    3D data."""
    return tuple(float(s) for axis, s in enumerate(target_spacing) if axis != slice_axis)


@torch.no_grad()
def review_maps(
    net, image: torch.Tensor, label: torch.Tensor, spacing: Sequence[float], max_size, title: str
) -> MapReview:
    """Every map `net` computes on one case, image (1, C, *spatial), label (1, 1, *spatial), cropped to at most
    `max_size` around the structure; `spacing` (mm per axis) makes self-attention distances millimetres."""
    centre = centre_of_mass(label[0, 0].cpu().numpy())
    image, label = crop_around(image, label, centre, max_size)
    was_training = net.training
    net.eval()
    out = net.outputs(image, maps=MapRequest(spacing=tuple(spacing)), deep_supervision=False)
    net.train(was_training)
    grey, mask = image[0, 0].float().cpu().numpy(), label[0, 0].cpu().numpy()
    review = MapReview()
    for map_id, value in out.maps.items():
        if map_id.query is not None:
            continue
        if map_id.is_vector:
            review.pictures[card_key(map_id)] = render_weights(value[0].float().cpu().numpy(), describe(map_id), title)
            continue
        heat = F.interpolate(value.float(), size=image.shape[2:], mode=interp_mode(image.ndim - 2))[0, 0]
        heading = describe(map_id)
        if map_id.kind == SELF and map_id.head is not None:
            distance = float(value.float().mean())  # over every query of the case's grid at this block
            review.metrics[distance_key(map_id)] = distance
            heading += f": mean {distance:.1f} mm"
        picture = render_heat(grey, heat.cpu().numpy(), mask, heading, SCALES[map_id.kind], title)
        review.pictures[card_key(map_id)] = picture
    return review


def describe(map_id: MapId) -> str:
    """A map's name for a person: `gate level0`, `self-attention enc3b0 head 1`, `channel weights dec1`."""
    kind = {GATE: "gate", SPATIAL: "spatial attention", CHANNEL: "channel weights", SELF: "self-attention"}
    head = "" if map_id.head is None else f" head {map_id.head}"
    return f"{kind[map_id.kind]} {map_id.site}{head}"


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _rgb(fig) -> np.ndarray:
    fig.canvas.draw()
    rgb = np.asarray(fig.canvas.buffer_rgba())[..., :3].copy()
    _pyplot().close(fig)
    return rgb


def render_heat(image: np.ndarray, heat: np.ndarray, mask: np.ndarray, name: str, scale: Scale, title: str):
    """RGB picture of `heat` (*S) over `image` (*S) with `mask`'s contour and a colour bar in `scale`'s unit;
    slices through the centre of `mask` (of the volume when the mask is empty)."""
    plt = _pyplot()
    centre = centre_of_mass(mask)
    axes_list = [0] if image.ndim == 2 else list(range(image.ndim))
    cut = (lambda a, axis: a) if image.ndim == 2 else (lambda a, axis: np.take(a, centre[axis], axis))
    high = scale.high if scale.high is not None else max(float(heat.max()), 1e-6)
    fig, axes = plt.subplots(1, len(axes_list), figsize=(2.6 * len(axes_list) + 1.4, 3.2), dpi=80, squeeze=False)
    lo, hi = np.percentile(image, [1, 99])
    for ax, axis in zip(axes[0], axes_list, strict=True):
        ax.imshow(cut(image, axis).T, cmap="gray", origin="lower", vmin=lo, vmax=hi)
        shown = ax.imshow(cut(heat, axis).T, cmap="jet", origin="lower", vmin=0, vmax=high, alpha=0.45)
        if cut(mask, axis).any():
            ax.contour(cut(mask, axis).T > 0, levels=[0.5], colors="white", linewidths=0.8, origin="lower")
        ax.set_title("" if image.ndim == 2 else f"axis {axis} = {centre[axis]}", fontsize=7)
        ax.axis("off")
    bar = fig.colorbar(shown, ax=list(axes[0]), fraction=0.05, pad=0.03)
    bar.set_label(scale.unit, fontsize=7)
    bar.ax.tick_params(labelsize=6)
    fig.suptitle(f"{title}\n{name}", fontsize=8)
    return _rgb(fig)


def render_weights(weights: np.ndarray, name: str, title: str) -> np.ndarray:
    """RGB bar chart of one case's channel weights (C,) in [0, 1]."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(5.0, 3.2), dpi=80)
    ax.bar(np.arange(len(weights)), weights, width=0.8, color="tab:blue")
    ax.set_xlim(-0.8, len(weights) - 0.2)
    ax.set_ylim(0, 1)
    ax.set_xlabel(f"channel ({len(weights)})", fontsize=7)
    ax.set_ylabel("channel weight [0, 1]", fontsize=7)
    ax.tick_params(labelsize=6)
    ax.grid(axis="y", alpha=0.3)
    ax.set_title(f"{title}\n{name}", fontsize=8)
    fig.tight_layout()
    return _rgb(fig)
