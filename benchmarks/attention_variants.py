"""The attention variants the benchmarks compare (`models.py`, `attention_ablation.py`), and MONAI's networks beside
them as anchors.

seg's variants, each one change to the default network's model section (gates on every skip), for a U of any depth
(the bottleneck is the last stage):
  default          the default network: additive attention gates on every skip
  cbam_decoder     + CBAM on every decoder stage
  sa_bottleneck    + global multi-head self-attention at the bottleneck (model.self_attention_heads 4)
  sa_window        + windowed self-attention (windows of 4 per axis, 4 heads) after stages 1 and 2
  nonlocal         + a non-local block (Wang et al. 2018) at the bottleneck
  self_attention   configs/self_attention.yaml: global at the bottleneck, windowed at level 1, CBAM on the decoder
Anchors (MONAI):
  monai_att        AttentionUnet(channels (16, 32, 64, 128), strides (2, 2, 2))
  unetr            UNETR(feature_size 16, hidden_size 384, mlp_dim 1536, 6 heads); sizes divisible by 16
  swin_unetr       SwinUNETR(feature_size 24); sizes divisible by 32
UNETR needs einops (the `dev` extra installs it).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

SEG_VARIANTS = ("default", "cbam_decoder", "sa_bottleneck", "sa_window", "nonlocal", "self_attention")
ANCHORS = ("monai_att", "unetr", "swin_unetr")
SIZE_MULTIPLE = {"unetr": 16, "swin_unetr": 32, "monai_att": 8}


def variant_model(name: str, levels: int) -> dict[str, Any]:
    """The model-section keys variant `name` sets on a U of `levels` stages."""
    bottleneck = levels - 1
    return {
        "default": {},
        "cbam_decoder": {"decoder_attention": "cbam"},
        "sa_bottleneck": {"self_attention": {bottleneck: "global"}},
        "sa_window": {"self_attention": {1: "window", 2: "window"}},
        "nonlocal": {"self_attention": {bottleneck: "nonlocal"}},
        "self_attention": {"self_attention": {bottleneck: "global", 1: "window"}, "decoder_attention": "cbam"},
    }[name]


def build_anchor(name: str, spatial_dims: int, classes: int, patch: Sequence[int]) -> torch.nn.Module:
    """MONAI's network `name` for (B, 1, *patch) inputs; an error names the size multiple a patch misses."""
    from monai.networks.nets import UNETR, AttentionUnet, SwinUNETR

    multiple = SIZE_MULTIPLE[name]
    if any(p % multiple for p in patch):
        raise ValueError(f"{name} needs every patch size divisible by {multiple}, got {list(patch)}")
    if name == "monai_att":
        return AttentionUnet(spatial_dims, 1, classes, channels=(16, 32, 64, 128), strides=(2, 2, 2))
    if name == "unetr":
        return UNETR(
            1,
            classes,
            img_size=tuple(patch),
            feature_size=16,
            hidden_size=384,
            mlp_dim=1536,
            num_heads=6,
            spatial_dims=spatial_dims,
        )
    if name == "swin_unetr":
        return SwinUNETR(in_channels=1, out_channels=classes, feature_size=24, spatial_dims=spatial_dims)
    raise ValueError(f"unknown anchor {name!r}; expected one of {ANCHORS}")


# ------------------------------------------------------------------------------ training-step table (models.py)

SETTING = ((32, 64, 32), 4, 3)  # patch, batch, classes: one size every row takes (SwinUNETR: divisible by 32)
QUICK_SETTING = ((32, 64, 32), 1, 3)  # SwinUNETR's instance norms need more than 1x1x1 at its bottleneck
ROWS = (*SEG_VARIANTS, *ANCHORS)
LIGHTNING_TO_DTYPE = {"32": "float32", "bf16-mixed": "bfloat16"}


def build_row(name: str, size: Sequence[int], classes: int) -> torch.nn.Module:
    """A seg variant as `models.py` builds ours (channels (16, 32, 64, 128), no deep supervision), or an anchor."""
    if name not in SEG_VARIANTS:
        return build_anchor(name, len(size), classes, size)
    from seg.config import ModelConfig
    from seg.models import build_model

    levels = (16, 32, 64, 128)
    cfg = ModelConfig(
        spatial_dims=len(size),
        in_channels=1,
        out_channels=classes,
        channels=levels,
        strides=(2,) * (len(levels) - 1),
        deep_supervision=0,
        **variant_model(name, len(levels)),
    )
    return build_model(cfg)


def pick_precision(name: str, quick: bool, threads: int) -> str:
    """What `precision: auto` resolves to for this row here (a fresh measurement, in a fresh process)."""
    import os
    import tempfile

    from seg.runtime import tune_training

    os.environ["SEG_CACHE_DIR"] = tempfile.mkdtemp(prefix="seg-bench-")
    torch.set_num_threads(threads)
    size, batch, classes = QUICK_SETTING if quick else SETTING
    net = build_row(name, size, classes)
    return LIGHTNING_TO_DTYPE[tune_training(net, size, 1, batch, channels_last=False, config_key=name).precision]


def measure_row(name: str, precision: str, quick: bool, threads: int, warmup: int, steps: int) -> dict:
    """One row's training step (forward, cross-entropy, backward, AdamW step) at `precision`, in a fresh process."""
    import torch.nn.functional as F
    from measure import PeakRSS, autocast, median_time

    torch.set_num_threads(threads)
    torch.manual_seed(0)
    size, batch, classes = QUICK_SETTING if quick else SETTING
    model = build_row(name, size, classes).train()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    x, y = torch.randn(batch, 1, *size), torch.randint(0, classes, (batch, *size))

    def step():
        opt.zero_grad(set_to_none=True)
        with autocast(precision):
            loss = F.cross_entropy(model(x), y)
        loss.backward()
        opt.step()

    mem = PeakRSS()
    seconds = median_time(step, warmup, steps)
    return dict(
        network=name,
        precision=precision,
        size=list(size),
        batch=batch,
        params=sum(p.numel() for p in model.parameters() if p.requires_grad),
        step_ms=1000 * seconds,
        train_sps=batch / seconds,
        train_mib=mem.increase_mib(),
        exact_memory=mem.exact,
    )


def attention_table(quick: bool, threads: int, warmup: int, steps: int) -> list[dict]:
    """Every row measured in its own process at auto's precision for it; prints one table and returns its rows."""
    from measure import in_fresh_process

    rows = []
    for name in ROWS:
        precision = in_fresh_process(pick_precision, name, quick, threads)
        rows.append(in_fresh_process(measure_row, name, precision, quick, threads, warmup, steps))
        print(f"  measured {name:<15} {precision:<8} train {rows[-1]['train_sps']:7.2f}/s", flush=True)
    first = rows[0]
    print(
        f"\nattention variants and anchors: 3d {'x'.join(map(str, first['size']))}, batch {first['batch']}, "
        "training step at the precision auto picks for each"
    )
    print(f"{'network':<15} {'precision':<9} {'params':>11} {'step ms':>9} {'train/s':>8} {'x default':>9} {'MiB':>7}")
    for r in rows:
        print(
            f"{r['network']:<15} {r['precision']:<9} {r['params']:>11,} {r['step_ms']:>9.1f} {r['train_sps']:>8.2f} "
            f"{r['train_sps'] / first['train_sps']:>9.2f} {r['train_mib']:>7.0f}"
        )
    return rows
