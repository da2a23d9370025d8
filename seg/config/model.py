"""The `model` section: the network's shape, blocks and attention, checked once when the config loads."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from seg.config.checks import ConfigError, did_you_mean, is_int, one_of
from seg.config.fields import doc

NORMS = ("instance", "batch", "none")
ACTS = ("leakyrelu", "relu", "prelu", "gelu")
GATE_MODES = ("concatenation", "concatenation_softmax", "concatenation_residual")
GATE_COEFFICIENTS = ("soft", "hard", "gumbel")  # see seg.models.gates.AttentionGate
GATE_LEVELS = ("all", "none")  # the named choices of model.gate_levels; a list of skip indices is the other
ATTENTION_MODULES = ("se", "cbam", "scse")
SELF_ATTENTION = ("global", "window", "nonlocal")
DECODER_MERGES = ("1x1", "3x3")


def _at_least(name: str, value: Any, minimum: int, optional: bool = False) -> None:
    """An int >= minimum (or None where `optional`), else an error naming the key and what arrived."""
    if optional and value is None:
        return
    if not is_int(value) or value < minimum:
        either = " or null" if optional else ""
        raise ConfigError(f"model.{name} must be an int >= {minimum}{either}, got {value!r}.")


def _per_axis(name: str, value: Any, dims: int) -> tuple[int, ...]:
    """A stride as one factor per axis: an int for all axes, or `dims` ints."""
    axes = (value,) * dims if is_int(value) else tuple(value) if isinstance(value, list | tuple) else ()
    if len(axes) != dims or not all(is_int(a) and a >= 1 for a in axes):
        raise ConfigError(
            f"{name} must be an int >= 1 or {dims} of them (one per axis of spatial_dims={dims}), got {value!r}."
        )
    return axes


def _per_stage(name: str, spec: Any, n: int, choices: tuple[str, ...] = ATTENTION_MODULES) -> tuple[str | None, ...]:
    """An attention placement as one name per stage: one name for all, a list of n names, or {stage: name}."""
    if spec is None or isinstance(spec, str):
        names: tuple[Any, ...] = (spec,) * n
    elif isinstance(spec, dict):
        stages = {}
        for k, v in spec.items():
            if not (is_int(k) or (isinstance(k, str) and k.isdigit())) or not 0 <= int(k) < n:
                raise ConfigError(f"{name}: stage index {k!r} out of range; this network has stages 0..{n - 1}.")
            stages[int(k)] = v
        names = tuple(stages.get(i) for i in range(n))
    elif isinstance(spec, list | tuple):
        names = tuple(spec) or (None,) * n
        if len(names) != n:
            raise ConfigError(
                f"{name}: expected {n} entries (one per stage), got {len(names)}: {list(names)}. "
                f"Give one module (or null) per stage, one name for all, or {{stage: name}}."
            )
    else:
        raise ConfigError(
            f"{name} must be a module name, null, a list (one per stage) or a mapping {{stage: name}}, got {spec!r}."
        )
    for v in names:
        if v is not None:
            one_of(f"{name} entry", v, (*choices, "none"))
    return tuple(None if v == "none" else v for v in names)


@dataclass(frozen=True)
class ModelConfig:
    """The network. Argument names follow MONAI (`spatial_dims, in_channels, out_channels, channels, ...`)."""

    spatial_dims: int = doc(3, "2 or 3: selects every convolution, norm and pooling; nothing else changes")
    in_channels: int = doc(1, "image channels (MRI sequences, CT = 1, RGB microscopy = 3 with data.color rgb)")
    out_channels: int = doc(3, "classes including background")
    channels: tuple[int, ...] = doc((16, 32, 64, 128), "depth = len(channels); the coarsest levels hold most weights")
    strides: tuple[int | tuple[int, ...], ...] = doc(
        (2, 2, 2), "len(channels) - 1, each one int or one per axis; their product per axis is the input multiple"
    )
    kernel_size: int = doc(3, "convolution kernel per axis (odd, so padding keeps sizes)")
    norm: str = doc("instance", "instance (suits batch sizes of 2-4), batch (needs larger batches) or none")
    act: str = doc("leakyrelu", "activation: leakyrelu, relu, prelu, gelu (MONAI names)")
    dropout: float = doc(0.0, "dropout probability inside conv blocks")
    residual: bool = doc(False, "residual stages train deeper nets more stably, at some extra compute per step")
    gate_levels: str | tuple[int, ...] | None = doc("all", '"all", None (plain U-Net, for ablations), or skip indices')
    gate_mode: str = doc("concatenation", "or concatenation_softmax / concatenation_residual")
    gate_heads: int = doc(1, "> 1: multi-head gating on every gated skip")
    gate_coefficients: str = doc(
        "soft",
        "soft: coefficients in [0, 1]; hard: 0 or 1 in the forward pass, trained with a straight-through gradient; "
        "gumbel: hard, trained with Gumbel-sigmoid noise whose temperature anneals from 1 to 0.1 over the run",
    )
    sub_sample_factor: int | None = doc(None, "None: each gate works on its gating signal's grid (the stride)")
    encoder_attention: str | tuple[str | None, ...] | dict[int, str | None] | None = doc(
        None, "se / cbam / scse, on all stages, per stage (a list), or by stage index ({stage: name})"
    )
    decoder_attention: str | tuple[str | None, ...] | dict[int, str | None] | None = doc(
        None, "se / cbam / scse on decoder stages, placed the same ways"
    )
    attention_reduction: int = doc(4, "channel reduction ratio of SE / CBAM / scSE")
    self_attention: str | tuple[str | None, ...] | dict[int, str | None] | None = doc(
        None,
        "global / window / nonlocal self-attention after encoder stages, placed like encoder_attention; the last "
        "stage is the bottleneck ({3: global, 1: window} for four levels)",
    )
    self_attention_heads: int = doc(4, "heads of global and window self-attention; must divide the stage's channels")
    self_attention_window: int = doc(4, "window attention: positions per axis of a window (the grid where smaller)")
    self_attention_depth: int = doc(1, "self-attention blocks per placement; window blocks alternate shifted windows")
    self_attention_top_k: int | None = doc(
        None, "hard top-k attention: each query keeps its k largest keys (None: softmax over all keys)"
    )
    heads_kept: dict[str, int] | None = doc(
        None,
        "heads each multi-head layer keeps, by layer ({gate_level0: 2, self_enc3b0: 1}); written by `seg prune`, "
        "whose weights have the other heads removed (None: every layer has all its heads)",
    )
    deep_supervision: int = doc(2, "extra heads on decoder levels 1..k, weighted by resolution in the loss")
    encoder_convs: int = doc(2, "3x3 convolutions per encoder stage below the first")
    decoder_convs: int = doc(2, "3x3 convolutions per decoder stage")
    decoder_merge: str = doc("1x1", '1x1 projection of [skip, up] before the 3x3s; "3x3" convolves all 2C channels')
    first_stage_convs: int | None = doc(
        None, "convs of level 0 (the finest stage); None = encoder/decoder_convs; 1 is cheaper"
    )
    pad_input: bool = doc(True, "pad to the stride multiple and crop back; False makes a wrong size an error")
    stem_stride: int | tuple[int, ...] = doc(
        2,
        "2: the U at half resolution, a light full-res head restores the grid (far cheaper); "
        "1: full res; or one int per axis",
    )
    stem_channels: int | None = doc(None, "channels of that full-resolution head; None = channels[0] // 2")

    def __post_init__(self) -> None:
        """Every field is checked here, once, when the config loads (and when `AttentionUNet` gets overrides)."""
        self._check_levels()
        if self.in_channels < 1 or self.out_channels < 1:
            raise ConfigError(
                f"model.in_channels and out_channels must be >= 1, got {self.in_channels} and {self.out_channels}."
            )
        if not is_int(self.kernel_size) or self.kernel_size < 1 or self.kernel_size % 2 == 0:
            raise ConfigError(
                f"model.kernel_size must be an odd int >= 1 ('same' padding keeps sizes), got {self.kernel_size!r}."
            )
        one_of("model.norm", self.norm, NORMS)
        one_of("model.act", self.act, ACTS)
        if not 0.0 <= self.dropout < 1.0:
            raise ConfigError(f"model.dropout must be a probability in [0, 1), got {self.dropout!r}.")
        self._check_attention()
        _at_least("encoder_convs", self.encoder_convs, 1)
        _at_least("decoder_convs", self.decoder_convs, 1)
        _at_least("first_stage_convs", self.first_stage_convs, 1, optional=True)
        one_of("model.decoder_merge", self.decoder_merge, DECODER_MERGES)
        try:
            self.stem_stride_per_axis()
        except ConfigError:
            raise ConfigError(
                f"model.stem_stride must be 1 (full resolution), 2 (half) or one int >= 1 per axis, "
                f"got {self.stem_stride!r}."
            ) from None
        _at_least("stem_channels", self.stem_channels, 1, optional=True)

    def _check_levels(self) -> None:
        """channels, strides and deep_supervision: the levels of the U, which the other checks count on."""
        if self.spatial_dims not in (2, 3):
            raise ConfigError(f"model.spatial_dims must be 2 or 3, got {self.spatial_dims!r}.")
        if not isinstance(self.channels, list | tuple) or len(self.channels) < 2:
            raise ConfigError(f"model.channels needs at least 2 entries (one per level), got {self.channels!r}.")
        for c in self.channels:
            if not is_int(c) or c < 1:
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

    def _check_attention(self) -> None:
        """The gates and the channel/spatial attention modules."""
        self.gated_levels()
        one_of("model.gate_mode", self.gate_mode, GATE_MODES)
        one_of("model.gate_coefficients", self.gate_coefficients, GATE_COEFFICIENTS)
        _at_least("self_attention_top_k", self.self_attention_top_k, 1, optional=True)
        self._check_heads_kept()
        _at_least("gate_heads", self.gate_heads, 1)
        _at_least("sub_sample_factor", self.sub_sample_factor, 1, optional=True)
        self.stage_attention()
        _at_least("attention_reduction", self.attention_reduction, 1)
        _at_least("self_attention_window", self.self_attention_window, 2)
        _at_least("self_attention_depth", self.self_attention_depth, 1)
        _at_least("self_attention_heads", self.self_attention_heads, 1)
        for stage, kind in enumerate(self.self_attention_per_stage()):
            c = self.channels[stage]
            if kind in ("global", "window") and c % self.self_attention_heads:
                fits = [h for h in range(1, c + 1) if c % h == 0]
                nearest = min(fits, key=lambda h: (abs(h - self.self_attention_heads), -h))
                raise ConfigError(
                    f"model.self_attention_heads {self.self_attention_heads} does not divide the {c} channels of "
                    f"stage {stage}, where model.self_attention puts {kind} attention; "
                    f"the nearest that does: {nearest}."
                )

    def _check_heads_kept(self) -> None:
        if self.heads_kept is None:
            return
        layers = self.head_layers()
        if not isinstance(self.heads_kept, dict):
            raise ConfigError(f"model.heads_kept must be a mapping {{layer: heads}}, got {self.heads_kept!r}.")
        for name, kept in self.heads_kept.items():
            if name not in layers:
                known = ", ".join(layers) or "none: this network has no multi-head layer"
                raise ConfigError(
                    f"model.heads_kept names layer {name!r}, which this network does not have (its multi-head "
                    f"layers: {known}).{did_you_mean(str(name), list(layers))}"
                )
            if not is_int(kept) or not 1 <= kept <= layers[name]:
                raise ConfigError(
                    f"model.heads_kept[{name}] must be an int in 1..{layers[name]} (the layer's heads), got {kept!r}."
                )

    # The network reads these resolved forms; each also checks its field (see __post_init__).

    def head_layers(self) -> dict[str, int]:
        """Every multi-head layer by name (`gate_level{i}`, `self_enc{i}b{j}`) and its heads before pruning."""
        out = {}
        if self.gate_heads > 1:
            out.update({f"gate_level{i}": self.gate_heads for i in self.gated_levels()})
        heads, depth = self.self_attention_heads, self.self_attention_depth
        for stage, kind in enumerate(self.self_attention_per_stage()):
            if kind in ("global", "window"):
                out.update({f"self_enc{stage}b{j}": heads for j in range(depth)})
        return out

    def heads_of(self, layer: str) -> int:
        """The heads `layer` has in this network: after pruning, those `heads_kept` gives."""
        return (self.heads_kept or {}).get(layer, self.head_layers()[layer])

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
        if not isinstance(self.gate_levels, list | tuple) or not all(is_int(i) for i in self.gate_levels):
            hint = did_you_mean(self.gate_levels, GATE_LEVELS, 0.4) if isinstance(self.gate_levels, str) else ""
            raise ConfigError(
                f"model.gate_levels must be one of {', '.join(GATE_LEVELS)}, null or a list of skip "
                f"indices 0..{n_skips - 1}, got {self.gate_levels!r}.{hint}"
            )
        levels = tuple(sorted(set(self.gate_levels)))
        bad = [i for i in levels if not 0 <= i < n_skips]
        if bad:
            raise ConfigError(f"model.gate_levels {bad} out of range; this network has skip levels 0..{n_skips - 1}.")
        return levels

    def self_attention_per_stage(self) -> tuple[str | None, ...]:
        """The self-attention (global, window, nonlocal or None) after every encoder stage."""
        return _per_stage("model.self_attention", self.self_attention, len(self.channels), SELF_ATTENTION)

    def stage_attention(self) -> tuple[tuple[str | None, ...], tuple[str | None, ...]]:
        """The attention module (or None) of every encoder stage and every decoder stage."""
        return (
            _per_stage("model.encoder_attention", self.encoder_attention, len(self.channels)),
            _per_stage("model.decoder_attention", self.decoder_attention, len(self.channels) - 1),
        )
