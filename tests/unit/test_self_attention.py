"""Self-attention blocks: the fused path equals the explicit one, weights are distributions, attention distance
is what its definition says, window partitions are exact, and the U-Net places and names every block."""

import itertools

import pytest
import torch

from seg.config import ConfigError, ModelConfig
from seg.models import AttentionUNet
from seg.models.attention_ops import Windows, grid_positions, mean_distance
from seg.models.maps import SELF, MapId, MapRequest, recording
from seg.models.self_attention import NonLocalBlock, SelfAttentionBlock, SelfAttentionStage


def randomised(module: torch.nn.Module) -> torch.nn.Module:
    """Projections start at zero (a new block passes its input through); give every weight a value."""
    torch.manual_seed(0)
    with torch.no_grad():
        for p in module.parameters():
            p.normal_(0, 0.3)
    return module.eval()


def placed(module, dims: int, factor: int = 2):
    module.place("enc1", (factor,) * dims)
    return module


BLOCKS = {
    "global": lambda d: SelfAttentionBlock(d, 8, 2, None, shift=False),
    "window": lambda d: SelfAttentionBlock(d, 8, 2, 3, shift=False),
    "shifted": lambda d: SelfAttentionBlock(d, 8, 2, 3, shift=True),
    "nonlocal": lambda d: NonLocalBlock(d, 8),
}


@pytest.mark.parametrize("dims", [2, 3])
@pytest.mark.parametrize("kind", list(BLOCKS))
def test_fused_path_equals_explicit_weights(dims, kind):
    block = placed(randomised(BLOCKS[kind](dims)), dims)
    x = torch.randn(2, 8, *(7, 5, 6)[:dims])
    with torch.no_grad():
        fast = block(x)
        with recording(block, MapRequest(spacing=(1.0, 2.0, 3.0)[:dims])) as recorder:
            explicit = block(x)
    assert (fast - x).abs().max() > 1e-2  # the block does something
    torch.testing.assert_close(explicit, fast, atol=1e-5, rtol=1e-4)
    heads = 1 if kind == "nonlocal" else 2
    assert sorted(recorder.maps) == [MapId(SELF, "enc1", h) for h in range(heads)]
    for rec in recorder.maps.values():
        assert rec.value.shape == (2, 1, *x.shape[2:]) and (rec.value >= 0).all()


@pytest.mark.parametrize("dims", [2, 3])
@pytest.mark.parametrize("kind", ["global", "shifted", "nonlocal"])
def test_query_weights_sum_to_one_over_keys(dims, kind):
    block = placed(randomised(BLOCKS[kind](dims)), dims, factor=1)
    x = torch.randn(1, 8, *(7, 5, 6)[:dims])
    points = ((0,) * dims, (6, 4, 5)[:dims], (3, 2, 1)[:dims])
    with torch.no_grad(), recording(block, MapRequest(queries=points)) as recorder:
        block(x)
    rows = {k: r.value for k, r in recorder.maps.items() if k.query is not None}
    assert len(rows) == len(points) * (1 if kind == "nonlocal" else 2)
    for value in rows.values():
        torch.testing.assert_close(value.sum(), torch.tensor(1.0), atol=1e-5, rtol=0)


def test_delta_attention_has_distance_zero():
    pos = grid_positions((4, 3, 5), (1.0, 2.0, 3.5))
    assert mean_distance(torch.eye(len(pos)), pos, pos).abs().max() == 0


def test_uniform_attention_distance_is_the_grids_mean_pairwise_distance():
    shape, spacing = (3, 4, 2), (0.7, 1.5, 4.0)
    pos = grid_positions(shape, spacing)
    n = len(pos)
    points = list(itertools.product(*(range(s) for s in shape)))
    analytic = sum(
        sum(((a - b) * s) ** 2 for a, b, s in zip(p, q, spacing, strict=True)) ** 0.5 for p in points for q in points
    ) / (n * n)
    measured = mean_distance(torch.full((n, n), 1.0 / n), pos, pos).mean()
    assert measured.item() == pytest.approx(analytic, rel=1e-5)


@pytest.mark.parametrize("grid,window,shift", [((7, 5, 6), 3, False), ((7, 5, 6), 3, True), ((9, 4), 4, True)])
def test_windows_split_and_merge_are_exact_and_pad_no_key(grid, window, shift):
    windows = Windows.over(grid, window, shift)
    x = torch.randn(2, 3, *grid)
    tokens = windows.split(x)
    assert tokens.shape[1] == window ** len(grid) or min(grid) < window
    torch.testing.assert_close(windows.merge(tokens, 2), x)
    mask = windows.key_mask(2, x.device)
    assert mask is not None and int(mask.sum()) == 2 * x[0, 0].numel()  # every real position once, padding never


def test_uniform_block_on_anisotropic_grid_reports_the_analytic_distance():
    """A block whose queries and keys are constant attends uniformly: its map is the mean distance to all keys."""
    block = placed(SelfAttentionBlock(3, 4, 1, None, shift=False).eval(), 3, factor=2)
    with torch.no_grad():
        block.pos.weight.zero_()
        block.pos.bias.zero_()
    spacing = (1.0, 1.0, 3.0)
    with torch.no_grad(), recording(block, MapRequest(spacing=spacing)) as recorder:
        block(torch.zeros(1, 4, 3, 2, 2))
    dist = recorder.maps[MapId(SELF, "enc1", 0)].value[0, 0]
    pos = grid_positions((3, 2, 2), [2 * s for s in spacing])  # the block's grid is the input's / 2
    expected = torch.cdist(pos, pos).mean(dim=1).reshape(3, 2, 2)
    torch.testing.assert_close(dist, expected)


def test_rollout_of_stacked_blocks_is_a_distribution_and_starts_at_the_query():
    stage = SelfAttentionStage([randomised(SelfAttentionBlock(3, 8, 2, 3, shift=j % 2 == 1)) for j in range(2)])
    stage.place("enc2", (4, 4, 4))
    with torch.no_grad(), recording(stage, MapRequest(queries=((8, 8, 8),))) as recorder:
        stage(torch.randn(1, 8, 6, 5, 4))
    rollout = recorder.maps[MapId(SELF, "enc2", None, 0)].value
    torch.testing.assert_close(rollout.sum(), torch.tensor(1.0), atol=1e-5, rtol=0)
    assert rollout[0, 0, 2, 2, 2] >= 0.25  # (A + I) / 2 twice keeps at least a quarter on the query itself


def tiny_self_attention(dims: int, **kw) -> AttentionUNet:
    return AttentionUNet(
        spatial_dims=dims,
        in_channels=1,
        out_channels=2,
        channels=(4, 8, 8),
        strides=(2, 2),
        deep_supervision=0,
        self_attention={2: "global", 1: "window"},
        self_attention_heads=2,
        self_attention_window=2,
        self_attention_depth=2,
        decoder_attention="cbam",
        **kw,
    )


@pytest.mark.parametrize("dims", [2, 3])
def test_unet_returns_every_map_it_lists(dims):
    net = randomised(tiny_self_attention(dims))
    x = torch.randn(1, 1, *(20, 12, 16)[:dims])
    with torch.no_grad():
        plain = net(x)
        out = net.outputs(x, maps=True)
    torch.testing.assert_close(out.logits, plain, atol=1e-4, rtol=1e-4)
    assert sorted(out.maps) == sorted(net.map_ids())
    assert {m.kind for m in out.maps} == {"gate", "spatial", "channel", "self"}
    assert {m.site for m in out.maps if m.kind == SELF} == {"enc1b0", "enc1b1", "enc2b0", "enc2b1"}
    assert out.maps[MapId("channel", "dec0")].shape == (1, 4)
    assert out.maps[MapId(SELF, "enc2b1", 1)].shape == (1, 1, *(-(-s // 8) for s in x.shape[2:]))  # ceil


def test_heads_that_do_not_divide_the_channels_name_the_nearest_that_does():
    with pytest.raises(ConfigError, match="nearest that does: 4"):
        ModelConfig(channels=(16, 32, 64, 128), self_attention={3: "global"}, self_attention_heads=3)
    with pytest.raises(ConfigError, match="Did you mean 'window'"):
        ModelConfig(self_attention={1: "windw"})


def test_map_ids_round_trip_through_their_keys():
    for m in [MapId("gate", "level0"), MapId("self", "enc3b0", 2), MapId("self", "enc1b1", 0, 3)]:
        assert MapId.parse(m.key) == m


def test_plain_products_compute_scaled_dot_product_attention_and_serve_bf16_training_on_few_keys():
    from seg.models.attention_ops import FUSED_FROM_KEYS, _plain_is_faster, plain_attention

    torch.manual_seed(0)
    q, k, v = (torch.randn(3, 2, n, 8) for n in (40, 64, 64))
    mask = torch.rand(3, 64) > 0.3
    expected = torch.nn.functional.scaled_dot_product_attention(q, k, v, attn_mask=mask[:, None, None, :])
    torch.testing.assert_close(plain_attention(q, k, v, mask), expected, atol=1e-5, rtol=1e-4)
    few, many = torch.zeros(1, 1, FUSED_FROM_KEYS - 1, 8), torch.zeros(1, 1, FUSED_FROM_KEYS, 8)
    assert _plain_is_faster(few.bfloat16(), few.bfloat16())
    assert not _plain_is_faster(many.bfloat16(), many.bfloat16())
    assert not _plain_is_faster(few, few)  # float32: the fused kernel is as fast
    with torch.no_grad():
        assert not _plain_is_faster(few.bfloat16(), few.bfloat16())
