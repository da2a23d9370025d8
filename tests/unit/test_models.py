"""AttentionUNet in 2D and 3D: shapes, finiteness, gradients, gate maps, deep supervision, sizes, parameters."""

from __future__ import annotations

import pytest
import torch

from seg.config import ConfigError, ModelConfig
from seg.models import AttentionUNet, UNetOutput, build_model, layers

# full resolution, one convolution at level 0, no extra heads: what most tests here look at (not the defaults)
TINY = dict(
    in_channels=2,
    out_channels=3,
    channels=(4, 8, 16),
    strides=(2, 2),
    stem_stride=1,
    first_stage_convs=1,
    deep_supervision=0,
)


def tiny(spatial_dims: int, **kwargs) -> AttentionUNet:
    torch.manual_seed(0)
    return AttentionUNet(spatial_dims=spatial_dims, **{**TINY, **kwargs})


def size(spatial_dims: int) -> tuple[int, ...]:
    return (16, 12, 8)[:spatial_dims] if spatial_dims == 3 else (16, 12)


@pytest.mark.parametrize("spatial_dims", [2, 3])
def test_eval_forward_returns_logits_tensor(spatial_dims):
    net = tiny(spatial_dims).eval()
    x = torch.randn(2, 2, *size(spatial_dims))
    with torch.no_grad():
        y = net(x)
    assert isinstance(y, torch.Tensor)
    assert y.shape == (2, 3, *size(spatial_dims))
    assert torch.isfinite(y).all()


@pytest.mark.parametrize("spatial_dims", [2, 3])
def test_gradients_reach_first_convolution(spatial_dims):
    net = tiny(spatial_dims, deep_supervision=1).train()
    out = net.outputs(torch.randn(2, 2, *size(spatial_dims)), deep_supervision=True)
    (out.logits.mean() + out.deep_supervision[0].mean()).backward()
    first = net.encoder[0].convs[0][0].weight
    assert first.grad is not None and first.grad.abs().sum() > 0
    assert all(p.grad is not None for p in net.parameters() if p.requires_grad)


@pytest.mark.parametrize("spatial_dims", [2, 3])
@pytest.mark.parametrize("mode", ["concatenation", "concatenation_softmax", "concatenation_residual"])
@pytest.mark.parametrize("heads", [1, 2])
def test_gate_maps_in_unit_interval_at_skip_resolution(spatial_dims, mode, heads):
    net = tiny(spatial_dims, gate_mode=mode, gate_heads=heads).eval()
    s = size(spatial_dims)
    out = net.outputs(torch.randn(1, 2, *s), gates=True, deep_supervision=False)
    assert set(out.gates) == {"level0", "level1"} == set(net.gate_names)
    assert out.gates["level0"].shape == (1, 1, *s)
    assert out.gates["level1"].shape == (1, 1, *(d // 2 for d in s))
    for alpha in out.gates.values():
        assert alpha.min() >= 0 and alpha.max() <= 1


@pytest.mark.parametrize("spatial_dims", [2, 3])
def test_maps_not_kept_unless_requested(spatial_dims):
    net = tiny(spatial_dims, deep_supervision=1).eval()
    out = net.outputs(torch.randn(1, 2, *size(spatial_dims)), gates=False, deep_supervision=False)
    assert isinstance(out, UNetOutput) and out.gates == {} and out.deep_supervision == []


@pytest.mark.parametrize("spatial_dims", [2, 3])
def test_deep_supervision_shapes(spatial_dims):
    net = AttentionUNet(
        spatial_dims=spatial_dims,
        in_channels=1,
        out_channels=2,
        channels=(4, 8, 16, 32),
        strides=(2, 2, 2),
        deep_supervision=2,
        stem_stride=1,
        first_stage_convs=1,
    )
    s = (32, 24, 16)[:spatial_dims]
    out = net.outputs(torch.randn(2, 1, *s))
    assert [tuple(d.shape) for d in out.deep_supervision] == [
        (2, 2, *(d // 2 for d in s)),
        (2, 2, *(d // 4 for d in s)),
    ]


@pytest.mark.parametrize("spatial_dims", [2, 3])
def test_odd_sizes_are_padded_and_cropped_back(spatial_dims):
    net = tiny(spatial_dims, deep_supervision=1).eval()
    s = (13, 9, 7)[:spatial_dims]
    out = net.outputs(torch.randn(1, 2, *s))
    assert out.logits.shape == (1, 3, *s)
    assert out.gates["level0"].shape == (1, 1, *s)
    assert out.gates["level1"].shape == (1, 1, *(-(-d // 2) for d in s))
    assert out.deep_supervision[0].shape == (1, 3, *(-(-d // 2) for d in s))


def test_unpadded_wrong_size_error_names_size_multiple_and_fix():
    net = tiny(3, pad_input=False)
    with pytest.raises(
        ValueError, match=r"\(13, 9, 7\) is not divisible by \(4, 4, 4\).*Pad the input to \(16, 12, 8\)"
    ):
        net(torch.randn(1, 2, 13, 9, 7))


def test_wrong_rank_input_error():
    with pytest.raises(ValueError, match=r"spatial_dims=3, got shape \(1, 2, 16, 16\)"):
        tiny(3)(torch.randn(1, 2, 16, 16))


@pytest.mark.parametrize("spatial_dims", [2, 3])
def test_plain_unet_has_no_gates(spatial_dims):
    net = tiny(spatial_dims, gate_levels=None)
    assert net.gate_names == []
    assert net.outputs(torch.randn(1, 2, *size(spatial_dims))).gates == {}


def test_gates_only_on_chosen_levels():
    net = tiny(3, gate_levels=(1,))
    assert net.gate_names == ["level1"]
    with pytest.raises(ConfigError, match=r"gate_levels \[5\] out of range.*0..1"):
        tiny(3, gate_levels=(5,))


@pytest.mark.parametrize("spatial_dims", [2, 3])
@pytest.mark.parametrize("module", ["se", "cbam", "scse"])
def test_attention_modules_on_chosen_stages(spatial_dims, module):
    net = tiny(spatial_dims, encoder_attention=[None, module, module], decoder_attention={0: module})
    assert type(net.encoder_attention[0]).__name__ == "Identity"
    assert type(net.encoder_attention[1]).__name__ != "Identity"
    assert type(net.decoder_attention[1]).__name__ == "Identity"
    y = net(torch.randn(1, 2, *size(spatial_dims)))
    assert torch.isfinite(y).all()


def test_attention_placement_length_error():
    with pytest.raises(ConfigError, match=r"encoder_attention: expected 3 entries \(one per stage\), got 2"):
        tiny(3, encoder_attention=["se", "se"])


def test_residual_blocks_and_both_merges():
    for merge in ("1x1", "3x3"):
        net = tiny(3, residual=True, decoder_merge=merge, first_stage_convs=None)
        assert net(torch.randn(1, 2, 8, 8, 8)).shape == (1, 3, 8, 8, 8)


@pytest.mark.parametrize("spatial_dims", [2, 3])
def test_strided_stem_runs_the_u_at_half_resolution_and_returns_full_resolution(spatial_dims):
    net = tiny(spatial_dims, stem_stride=2, deep_supervision=1).train()
    s = (13, 9, 7)[:spatial_dims]  # odd: padded to the multiple 8 and cropped back
    assert net.size_multiple == (8,) * spatial_dims
    out = net.outputs(torch.randn(2, 2, *s), gates=True, deep_supervision=True)
    assert out.logits.shape == (2, 3, *s)
    assert out.gates["level0"].shape == (2, 1, *(-(-d // 2) for d in s))  # level 0 is the half-resolution stage
    assert out.gates["level1"].shape == (2, 1, *(-(-d // 4) for d in s))
    assert out.deep_supervision[0].shape == (2, 3, *(-(-d // 4) for d in s))
    (out.logits.mean() + out.deep_supervision[0].mean()).backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in net.parameters())
    assert net.full_res is not None and net.full_res.image[0].weight.grad.abs().sum() > 0


@pytest.mark.parametrize("spatial_dims", [2, 3])
def test_full_resolution_head_stays_channels_last_and_logits_follow_the_input_layout(spatial_dims):
    net = tiny(spatial_dims, stem_stride=2, in_channels=1).eval()
    cl = layers.channels_last(spatial_dims)
    assert type(net)._apply is torch.nn.Module._apply  # no override: the head converts layouts as it runs
    convs = {"image": net.full_res.image[0], "up": net.full_res.up.up, "fuse": net.full_res.fuse[0], "head": net.head}
    seen: dict[str, bool] = {}  # conv -> its output is channels-last (channel stride 1, not also contiguous)
    for name, conv in convs.items():
        conv.register_forward_hook(
            lambda m, args, out, name=name: seen.update(
                {name: out.is_contiguous(memory_format=cl) and out.stride(1) == 1 and not out.is_contiguous()}
            )
        )
    x = torch.randn(2, 1, *size(spatial_dims))  # one channel: contiguous in both layouts until restrided

    def head_runs_channels_last() -> bool:
        seen.clear()
        with torch.no_grad():
            net(x)
        return seen.keys() == convs.keys() and all(seen.values())

    for convert in ({"memory_format": torch.contiguous_format}, {"dtype": torch.float32}, {"memory_format": cl}):
        net.to(**convert)
        assert head_runs_channels_last(), (convert, seen)
    net.load_state_dict({k: v.contiguous() for k, v in net.state_dict().items()})  # contiguous kernels: no matter
    assert head_runs_channels_last()
    with torch.no_grad():
        logits = net.to(memory_format=torch.contiguous_format)(x)
        assert logits.is_contiguous()
        u_cl = net.to(memory_format=cl)(x.to(memory_format=cl))  # the U channels-last as well: same numbers
    torch.testing.assert_close(u_cl, logits, rtol=1e-4, atol=1e-5)
    net2 = tiny(spatial_dims, stem_stride=2).eval()  # two input channels: a channels-last input is unambiguous
    x2 = torch.randn(2, 2, *size(spatial_dims)).contiguous(memory_format=cl)
    with torch.no_grad():
        out = net2(x2)
    assert out.is_contiguous(memory_format=cl) and not out.is_contiguous()


def test_strided_stem_is_cheaper_than_full_resolution_stage():
    from torch.utils.flop_counter import FlopCounterMode

    def gflop(**kw) -> float:
        net = tiny(3, channels=(8, 16, 32), **kw).eval()
        with FlopCounterMode(display=False) as counter, torch.no_grad():
            net(torch.randn(1, 2, 32, 32, 32))
        return counter.get_total_flops()

    assert gflop(stem_stride=2) < 0.5 * gflop()


# Pinned parameter counts: a change here is a change of architecture, and must be deliberate.
PINNED = {
    "default_3d": (ModelConfig(), 1_304_604),
    "default_2d": (ModelConfig(spatial_dims=2), 468_844),
    "plain_3d": (ModelConfig(gate_levels=None), 1_272_009),
    "full_resolution_3d": (ModelConfig(stem_stride=1, first_stage_convs=1), 1_286_012),  # the previous default
    "multihead_cbam_3d": (
        ModelConfig(gate_heads=2, gate_mode="concatenation_softmax", encoder_attention=(None, "cbam", "cbam", "cbam")),
        1_361_268,
    ),
    "scse_2d_deep": (
        ModelConfig(
            spatial_dims=2,
            out_channels=2,
            channels=(16, 32, 64, 128, 256),
            strides=(2, 2, 2, 2),
            decoder_attention="scse",
        ),
        1_891_362,
    ),
}


@pytest.mark.parametrize("name", list(PINNED))
def test_pinned_parameter_count(name):
    cfg, expected = PINNED[name]
    assert sum(p.numel() for p in build_model(cfg).parameters()) == expected


def test_build_model_passes_every_config_field():
    net = build_model(ModelConfig(spatial_dims=2, channels=(8, 16), strides=(2,), deep_supervision=0, gate_levels=None))
    assert net.spatial_dims == 2 and net.gate_names == []


def test_the_class_and_the_config_share_every_default():
    """`AttentionUNet(...)` and `build_model(ModelConfig(...))` with the same arguments are the same network: the
    class once defaulted to full resolution (stem_stride 1), 1.4x MONAI's step instead of the config's 5.6x. Now it
    has no defaults of its own: it takes a ModelConfig, and keyword overrides of its fields."""
    import inspect

    assert list(inspect.signature(AttentionUNet.__init__).parameters) == ["self", "config", "overrides"]
    args = dict(spatial_dims=3, in_channels=1, out_channels=3, channels=(16, 32, 64, 128), strides=(2, 2, 2))
    direct, built = AttentionUNet(**args), build_model(ModelConfig(**args))
    assert direct.config == built.config == ModelConfig(**args)
    shapes = lambda net: [(k, tuple(v.shape)) for k, v in net.state_dict().items()]  # noqa: E731
    assert shapes(direct) == shapes(built) == shapes(AttentionUNet())
    assert direct.stem_stride == (2, 2, 2) and direct.full_res is not None
    overridden = AttentionUNet(ModelConfig(spatial_dims=2), gate_levels=None)
    assert overridden.config == ModelConfig(spatial_dims=2, gate_levels=None) and overridden.gate_names == []


def test_overrides_are_checked_by_the_config_and_unknown_ones_suggest_the_field():
    with pytest.raises(
        ConfigError,
        match=r"model.norm must be one of instance, batch, none, got 'batchnorm'. "
        r"Did you mean 'batch'\?",
    ):
        tiny(3, norm="batchnorm")
    with pytest.raises(TypeError, match=r"unknown option 'chanels'. Did you mean 'channels'\?"):
        AttentionUNet(chanels=(4, 8))
    with pytest.raises(TypeError, match=r"takes a ModelConfig.*got int 3. Name the fields"):
        AttentionUNet(3, in_channels=1)  # type: ignore[arg-type]


def test_per_axis_strides_and_attention_by_stage_index():
    net = tiny(3, strides=((2, 2, 1), 2), stem_stride=(2, 2, 1), decoder_attention={"1": "se"})
    assert net.size_multiple == (8, 8, 2) and net.strides == [(2, 2, 1), (2, 2, 2)]
    assert type(net.decoder_attention[1]).__name__ == "SqueezeExcitation"
    assert net(torch.randn(1, 2, 16, 8, 6)).shape == (1, 3, 16, 8, 6)
