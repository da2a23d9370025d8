"""A dimension-generic U-Net with additive attention gates on its skips and optional channel/spatial attention
modules on its stages (Oktay et al. 2018; Hu et al. 2018; Woo et al. 2018; Roy et al. 2018).

The U is built explicitly: `encoder[i]` and `decoder[i]` are stage `i` (0 = finest), and `gates[i]` gates
skip `i` with the decoder's features from level `i + 1`; `self_attention[i]` (identity where none) follows
encoder stage `i`'s channel/spatial attention. With `stem_stride` 2 the whole U runs at half resolution and
`full_res` (a light head) returns to the input grid.

`net(x)` returns logits only and keeps no maps. `net.outputs(x, maps=True, deep_supervision=True)` returns a
`UNetOutput` with every attention map the network computes, by `seg.models.maps.MapId` (gates on skip
`level{i}`, channel and spatial maps at `enc{i}` / `dec{i}`, self-attention at `enc{i}b{j}`), each on its own
grid, and the deep-supervision logits; `maps` may also name kinds or be a `MapRequest` (spacing in mm for
attention distances, query points). `net.map_ids()` lists the maps without running the network. Nothing extra
is computed or kept unless asked for.

Input size: every spatial size must be divisible by the product of the strides on that axis. By default
(`pad_input=True`) the network zero-pads at the far end and crops outputs and maps back, so any size works; with
`pad_input=False` a wrong size is an error that names the size, the multiple and the padded size to use.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from seg.config import ModelConfig, did_you_mean
from seg.models import layers
from seg.models.attention import build_attention
from seg.models.blocks import ConvBlock, ConvNormAct, FullResHead, UpSample
from seg.models.gates import build_gate
from seg.models.maps import GATE, MapId, MapRequest, MapSource, crop_to_input, map_factors, recording
from seg.models.self_attention import build_self_attention


@dataclass
class UNetOutput:
    logits: torch.Tensor  # (B, out_channels, *spatial)
    maps: dict[MapId, torch.Tensor] = field(default_factory=dict)  # (B, 1, *its grid) or (B, C) channel weights
    deep_supervision: list[torch.Tensor] = field(default_factory=list)  # level 1, 2, ...: coarser logits
    factors: dict[MapId, tuple[int, ...]] = field(default_factory=dict)  # each map's grid down-sampling; () vectors

    @property
    def gates(self) -> dict[str, torch.Tensor]:
        """The gate maps by level name ("level{i}" -> (B, 1, *skip_i grid)), multi-head gates' means."""
        return {m.site: v for m, v in self.maps.items() if m.kind == GATE and m.head is None}


def block_options(cfg: ModelConfig) -> dict:
    return dict(kernel_size=cfg.kernel_size, norm=cfg.norm, act=cfg.act, dropout=cfg.dropout, residual=cfg.residual)


def build_encoder(cfg: ModelConfig, stages: int) -> tuple[nn.ModuleList, nn.ModuleList]:
    """The first `stages` encoder stages of the U that `cfg` describes and their attention modules (identity where
    none); `AttentionUNet` and `SeamNet` share it, so their encoders have the same parameter names."""
    dims, channels = cfg.spatial_dims, cfg.channels
    strides, stem = cfg.strides_per_axis(), cfg.stem_stride_per_axis()
    enc_att, _ = cfg.stage_attention()
    encoder, attention = nn.ModuleList(), nn.ModuleList()
    for i, c in enumerate(channels[:stages]):
        n_convs = cfg.first_stage_convs if (i == 0 and cfg.first_stage_convs) else cfg.encoder_convs
        c_in = cfg.in_channels if i == 0 else channels[i - 1]
        stride = stem if i == 0 else strides[i - 1]
        encoder.append(ConvBlock(dims, c_in, c, stride=stride, num_convs=n_convs, **block_options(cfg)))
        attention.append(build_attention(enc_att[i], dims, c, cfg.attention_reduction))
    return encoder, attention


class AttentionUNet(nn.Module):
    """Attention U-Net for `spatial_dims` 2 or 3; depth = len(channels), len(strides) = len(channels) - 1.

    Built from a `seg.config.ModelConfig`, which holds every default and checks every option; keyword overrides
    replace its fields (`AttentionUNet(channels=(8, 16), strides=(2,))`) and are checked by it as well, so the
    network has no defaults and no validation of its own. The fields' meanings are in `ModelConfig`; in short:

        gate_levels: skip levels to gate (0 is the finest skip); gate_mode: see `seg.models.gates.AttentionGate`.
        encoder_attention / decoder_attention: "se", "cbam", "scse" or None, for all stages, per stage (list),
            or by stage index (mapping). Applied at the end of the stage.
        deep_supervision: number of extra 1x1 heads on decoder levels 1..k (0 = none).
        stem_stride: 1 runs level 0 at the input's resolution. 2 (the default) strides the first convolution, so
            every level of the U runs on 1/8 of the voxels (3D); a `FullResHead` with `stem_channels` channels
            (default channels[0] // 2) fuses the up-sampled level-0 features with full-resolution image features
            before the 1x1 head. Gate and deep-supervision maps are then at half the usual resolution, and the
            size multiple doubles. About 4x the training throughput of the full-resolution network.
    """

    def __init__(self, config: ModelConfig | None = None, **overrides: Any):
        super().__init__()
        if config is not None and not isinstance(config, ModelConfig):
            raise TypeError(
                f"AttentionUNet takes a ModelConfig and keyword overrides, got {type(config).__name__} "
                f"{config!r}. Name the fields: AttentionUNet(spatial_dims=3, in_channels=1, ...)."
            )
        fields = [f.name for f in dataclasses.fields(ModelConfig)]
        for key in overrides:
            if key not in fields:
                raise TypeError(
                    f"AttentionUNet: unknown option {key!r}.{did_you_mean(key, fields)} "
                    f"The options are the fields of seg.config.ModelConfig."
                )
        cfg = config or ModelConfig()
        if overrides:
            cfg = dataclasses.replace(cfg, **overrides)  # a new ModelConfig: checked there, like one from YAML
        self.config = cfg
        channels, dims = cfg.channels, cfg.spatial_dims
        n_skips = len(channels) - 1
        self.spatial_dims = dims
        self.strides = list(cfg.strides_per_axis())
        self.stem_stride = cfg.stem_stride_per_axis()
        self.pad_input = cfg.pad_input
        self.gate_levels = levels = list(cfg.gated_levels())
        _, dec_att = cfg.stage_attention()
        block = block_options(cfg)
        first = cfg.first_stage_convs

        self.encoder, self.encoder_attention = build_encoder(cfg, len(channels))
        self.self_attention = nn.ModuleList(
            build_self_attention(kind, dims, channels[i], cfg, stage=i)
            for i, kind in enumerate(cfg.self_attention_per_stage())
        )

        self.upsample = nn.ModuleList()
        self.gates = nn.ModuleDict()
        self.decoder = nn.ModuleList()
        self.decoder_attention = nn.ModuleList()
        for i in range(n_skips):
            c, c_coarse = channels[i], channels[i + 1]
            n_convs = first if (i == 0 and first) else cfg.decoder_convs
            self.upsample.append(UpSample(dims, c_coarse, c, self.strides[i]))
            if i in levels:
                self.gates[f"level{i}"] = build_gate(
                    dims,
                    c,
                    c_coarse,
                    heads=cfg.gate_heads,
                    kept=cfg.heads_of(f"gate_level{i}") if cfg.gate_heads > 1 else None,
                    sub_sample_factor=cfg.sub_sample_factor or self.strides[i],
                    mode=cfg.gate_mode,
                    norm=cfg.norm,
                    coefficients=cfg.gate_coefficients,
                )
            self.decoder.append(self._decoder_block(dims, c, n_convs, cfg.decoder_merge, block))
            self.decoder_attention.append(build_attention(dec_att[i], dims, c, cfg.attention_reduction))

        self.full_res: FullResHead | None = None
        c_head = channels[0]
        if self.has_stem:
            c_head = cfg.stem_channels or max(channels[0] // 2, 1)
            self.full_res = FullResHead(dims, cfg.in_channels, channels[0], c_head, self.stem_stride, block)
        # after a strided stem the 1x1 head reads full resolution too, and runs channels-last like `FullResHead`
        self.head = layers.conv(dims, channels_last=self.has_stem)(c_head, cfg.out_channels, 1)
        self.deep_supervision_heads = nn.ModuleList(
            layers.conv(dims)(channels[i], cfg.out_channels, 1) for i in range(1, cfg.deep_supervision + 1)
        )
        self._place_map_sources()

    def _place_map_sources(self) -> None:
        """Tell every attention module where in the U it sits, which names its maps."""
        for i in range(len(self.encoder)):
            for module in (self.encoder_attention[i], self.self_attention[i]):
                if isinstance(module, MapSource):
                    module.place(f"enc{i}", self.level_factor(i))
        for i in range(len(self.decoder)):
            if isinstance(self.decoder_attention[i], MapSource):
                self.decoder_attention[i].place(f"dec{i}", self.level_factor(i))
        for name, gate in self.gates.items():
            gate.place(name, self.level_factor(int(name.removeprefix("level"))))

    def map_ids(self) -> list[MapId]:
        """Every map `outputs(x, maps=True)` returns (query maps aside), in a stable order."""
        placed = [*self.encoder_attention, *self.self_attention, *self.decoder_attention, *self.gates.values()]
        return sorted(
            (m for module in placed if isinstance(module, MapSource) for m in module.produces()), key=lambda m: m.key
        )

    @staticmethod
    def _decoder_block(spatial_dims: int, c: int, n_convs: int, merge: str, block: dict) -> nn.Module:
        """Fuse [gated skip, up-sampled] (2c channels) into c: a 3x3 convolution over 2c channels, or a 1x1
        projection to c first, which halves the cost of the finest levels, where most FLOPs are spent."""
        if merge == "3x3":
            return ConvBlock(spatial_dims, 2 * c, c, num_convs=n_convs, **block)
        proj = ConvNormAct(spatial_dims, 2 * c, c, 1, norm=block["norm"], act=block["act"])  # "1x1"
        return nn.Sequential(proj, ConvBlock(spatial_dims, c, c, num_convs=n_convs, **block))

    @property
    def gate_names(self) -> list[str]:
        return list(self.gates.keys())

    @property
    def has_stem(self) -> bool:
        return any(s != 1 for s in self.stem_stride)

    def level_factor(self, level: int) -> tuple[int, ...]:
        """Down-sampling of level `level` relative to the input, per axis (stem stride times strides above)."""
        return tuple(
            self.stem_stride[a] * math.prod(s[a] for s in self.strides[:level]) for a in range(self.spatial_dims)
        )

    @property
    def size_multiple(self) -> tuple[int, ...]:
        """Every input size must be a multiple of this, per axis (product of the stem stride and strides)."""
        return self.level_factor(len(self.strides))

    def _pad(self, x: torch.Tensor) -> tuple[torch.Tensor, tuple[int, ...]]:
        size = tuple(x.shape[2:])
        if len(size) != self.spatial_dims:
            raise ValueError(
                f"Expected input (B, C, {', '.join('S' * self.spatial_dims)}) for spatial_dims={self.spatial_dims}, "
                f"got shape {tuple(x.shape)}."
            )
        mult = self.size_multiple
        padded = tuple(math.ceil(s / m) * m for s, m in zip(size, mult, strict=True))
        if padded == size:
            return x, size
        if not self.pad_input:
            raise ValueError(
                f"Input spatial size {size} is not divisible by {mult} (the product of strides per axis). "
                f"Pad the input to {padded}, or build the model with pad_input=True."
            )
        pad: list[int] = []
        for s, p in zip(reversed(size), reversed(padded), strict=True):  # F.pad wants the last axis first
            pad += [0, p - s]
        return F.pad(x, pad), size

    @staticmethod
    def _crop(t: torch.Tensor, size: Sequence[int]) -> torch.Tensor:
        return t[(slice(None), slice(None), *(slice(0, s) for s in size))]

    def outputs(
        self,
        x: torch.Tensor,
        maps: bool | Sequence[str] | MapRequest | None = None,
        deep_supervision: bool = True,
        gates: bool = True,
    ) -> UNetOutput:
        """Logits plus, on request, attention maps and deep-supervision logits, cropped like the input. `maps`: True
        for every kind, some kinds, a `MapRequest`, or False for none; when it is not given, `gates` says whether
        the gate maps are returned (as before `maps` existed)."""
        request = MapRequest.of(maps if maps is not None else gates and (GATE,))
        with recording(self, request) as recorder:
            out = self._outputs(x, deep_supervision)
        if recorder is not None:
            size = out.logits.shape[2:]
            out.maps, out.factors = crop_to_input(recorder, size), map_factors(recorder)
        return out

    def _outputs(self, x: torch.Tensor, deep_supervision: bool) -> UNetOutput:
        layout = layers.memory_format_of(x)
        x, size = self._pad(x)
        image = x
        skips = []
        for stage, att, self_att in zip(self.encoder, self.encoder_attention, self.self_attention, strict=True):
            x = self_att(att(stage(x)))
            skips.append(x)
        out = UNetOutput(logits=x)
        y = skips[-1]  # (B, channels[-1], *coarsest)
        n_ds = len(self.deep_supervision_heads)
        for i in reversed(range(len(self.decoder))):
            skip = skips[i]
            name = f"level{i}"
            if name in self.gates:
                skip, _ = self.gates[name](skip, y)  # gating signal: the coarser decoder level; maps go to recorders
            y = self.decoder_attention[i](self.decoder[i](torch.cat([skip, self.upsample[i](y)], dim=1)))
            if deep_supervision and 1 <= i <= n_ds:
                out.deep_supervision.insert(0, self.deep_supervision_heads[i - 1](y))
        if self.full_res is not None:
            y = self.full_res(image, y)
        out.logits = self._crop(self.head(y), size).contiguous(memory_format=layout)
        for k, ds in enumerate(out.deep_supervision, start=1):
            factor = self.level_factor(k)
            out.deep_supervision[k - 1] = self._crop(ds, [math.ceil(s / f) for s, f in zip(size, factor, strict=True)])
        return out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits (B, out_channels, *spatial); no maps are kept."""
        return self.outputs(x, maps=False, deep_supervision=False).logits
