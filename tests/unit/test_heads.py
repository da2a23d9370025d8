"""Heads and gates as units: masking, real pruning, the gradient proxy, importance, hard gates and top-k
self-attention, 2D and 3D, on tiny networks."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from seg.config import ConfigError, ModelConfig
from seg.heads.importance import gradient_proxy, importance
from seg.heads.pruning import prune_by_proxy
from seg.heads.scoring import Scorer, ScoringCase, spearman
from seg.models import AttentionUNet
from seg.models.attention_ops import attend, attention_weights
from seg.models.gates import AttentionGate, anneal_gates
from seg.models.heads import BLOCK, PASS, gate_levels, head_layers, keep_only, masked, prune
from seg.models.maps import MapRequest
from seg.models.self_attention import SelfAttentionBlock

SIZE = {2: (16, 16), 3: (16, 16, 16)}


def tiny(dims: int, **model) -> AttentionUNet:
    """Gates of 3 heads on both skips, self-attention of 4 heads at the bottleneck and in windows at level 1; every
    weight random (new self-attention blocks start as identities)."""
    options = dict(
        spatial_dims=dims,
        channels=(8, 16, 32),
        strides=(2, 2),
        deep_supervision=1,
        gate_heads=3,
        self_attention={2: "global", 1: "window"},
        self_attention_heads=4,
        self_attention_window=2,
    )
    torch.manual_seed(0)
    net = AttentionUNet(**{**options, **model})
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, SelfAttentionBlock):
                for p in (m.proj.weight, m.mlp[-1].weight):
                    p.normal_(0, 0.3)
    return net.eval()


def case(dims: int, seed: int = 0) -> ScoringCase:
    g = torch.Generator().manual_seed(seed)
    image = torch.randn(1, 1, *SIZE[dims], generator=g)
    label = torch.zeros(1, 1, *SIZE[dims], dtype=torch.long)
    label[(..., *(slice(4, 10) for _ in range(dims)))] = 1
    label[(..., *(slice(10, 14) for _ in range(dims)))] = 2
    return ScoringCase(f"c{seed}", image, label)


def scorer(dims: int, n: int = 1) -> Scorer:
    return Scorer([case(dims, s) for s in range(n)], SIZE[dims], classes=3)


@pytest.mark.parametrize("dims", [2, 3])
def test_every_multi_head_layer_and_gate_is_listed(dims):
    net = tiny(dims)
    assert {layer.name: layer.heads for layer in head_layers(net)} == {
        "self_enc1b0": 4,
        "self_enc2b0": 4,
        "gate_level0": 3,
        "gate_level1": 3,
    }
    assert sorted(gate_levels(net)) == ["gate_level0", "gate_level1"]
    single = tiny(dims, gate_heads=1, self_attention=None)
    assert head_layers(single) == [] and sorted(gate_levels(single)) == ["gate_level0", "gate_level1"]


@pytest.mark.parametrize("dims", [2, 3])
@pytest.mark.parametrize("layer", ["gate_level0", "self_enc2b0", "self_enc1b0"])
def test_masking_every_head_but_one_equals_a_single_head_network(dims, layer):
    net = tiny(dims)
    x = torch.randn(2, 1, *SIZE[dims])
    heads = {entry.name: entry.heads for entry in head_layers(net)}[layer]
    for h in range(heads):
        one = prune(net, {layer: [h]})
        assert one.config.heads_kept == {layer: 1}
        assert next(entry.heads for entry in head_layers(one) if entry.name == layer) == 1
        with torch.no_grad(), masked(net, keep_only(net, {layer: [h]})):
            expected = net(x)
        with torch.no_grad():
            got = one(x)
            assert not torch.allclose(expected, net(x), atol=1e-4)  # the head mask changes the output
        torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("dims", [2, 3])
def test_a_pruned_network_equals_the_masked_one_and_is_smaller(dims, tmp_path):
    net = tiny(dims)
    keep = {"gate_level0": [0, 2], "gate_level1": [1], "self_enc2b0": [1, 3], "self_enc1b0": [0, 1, 2]}
    pruned = prune(net, keep)
    x = torch.randn(1, 1, *SIZE[dims])
    with torch.no_grad(), masked(net, keep_only(net, keep)):
        expected = net(x)
    with torch.no_grad():
        torch.testing.assert_close(pruned(x), expected, atol=1e-5, rtol=1e-5)
    assert sum(p.numel() for p in pruned.parameters()) < sum(p.numel() for p in net.parameters())
    rebuilt = AttentionUNet(pruned.config)  # the config alone describes the smaller network
    rebuilt.load_state_dict(pruned.state_dict())
    with pytest.raises(ValueError, match="distinct"):
        prune(net, {"gate_level0": [0, 0]})
    with pytest.raises(KeyError, match="no such head layer"):
        prune(net, {"gate_level7": [0]})


def test_heads_kept_is_checked_against_the_network():
    base = dict(spatial_dims=3, channels=(8, 16, 32), strides=(2, 2), deep_supervision=1, gate_heads=2)
    with pytest.raises(ConfigError, match="its multi-head layers: gate_level0, gate_level1"):
        ModelConfig(**base, heads_kept={"self_enc2b0": 1})
    with pytest.raises(ConfigError, match=r"in 1\.\.2"):
        ModelConfig(**base, heads_kept={"gate_level0": 3})
    assert ModelConfig(**base, heads_kept={"gate_level1": 1}).heads_of("gate_level1") == 1


@pytest.mark.parametrize("dims", [2, 3])
def test_a_removed_gate_passes_its_skip_and_a_blocked_one_zeroes_it(dims):
    gate = AttentionGate(dims, 4, 8).eval()
    x, g = torch.randn(1, 4, *SIZE[dims]), torch.randn(1, 8, *(s // 2 for s in SIZE[dims]))
    with torch.no_grad():
        gate.gate_mask = (torch.zeros(()), PASS)
        torch.testing.assert_close(gate(x, g)[0], gate.out(x))
        gate.gate_mask = (torch.zeros(()), BLOCK)
        torch.testing.assert_close(gate(x, g)[0], gate.out(torch.zeros_like(x)))
        gate.gate_mask = (torch.ones(()), PASS)
        soft, alpha = gate(x, g)
        torch.testing.assert_close(soft, gate.out(x * alpha))


def _loss(net, sc: Scorer, dims: int) -> float:
    return float(sum(sc.loss(net, image, label) for image, label in sc.windows(dims)))


class DoubleScorer(Scorer):
    """The training loss casts logits to float32; finite differences need float64 throughout."""

    def loss(self, net, image, label):
        return torch.nn.functional.cross_entropy(net(image), label[:, 0])


@pytest.mark.parametrize("dims", [2, 3])
def test_the_gradient_proxy_equals_a_finite_difference(dims):
    net = tiny(dims).double()
    sc = DoubleScorer([ScoringCase("c", c.image.double(), c.label) for c in scorer(dims).cases], SIZE[dims], 3)
    heads, gates = gradient_proxy(net, sc)
    assert all(float(v.abs().sum()) > 0 for v in heads.values())
    eps = 1e-5
    for layer, h in (("self_enc2b0", 1), ("gate_level1", 2), ("self_enc1b0", 0)):
        n = {e.name: e.heads for e in head_layers(net)}[layer]
        up, down = torch.ones(n, dtype=torch.float64), torch.ones(n, dtype=torch.float64)
        up[h], down[h] = 1 + eps, 1 - eps
        with torch.no_grad(), masked(net, {layer: up}):
            hi = _loss(net, sc, dims)
        with torch.no_grad(), masked(net, {layer: down}):
            lo = _loss(net, sc, dims)
        assert float(heads[layer][h]) == pytest.approx(abs(hi - lo) / (2 * eps), rel=1e-3, abs=1e-7)
    with torch.no_grad(), masked(net, gates={"gate_level0": (torch.tensor(1 + eps, dtype=torch.float64), PASS)}):
        hi = _loss(net, sc, dims)
    with torch.no_grad(), masked(net, gates={"gate_level0": (torch.tensor(1 - eps, dtype=torch.float64), PASS)}):
        lo = _loss(net, sc, dims)
    assert gates["gate_level0"] == pytest.approx(abs(hi - lo) / (2 * eps), rel=1e-3, abs=1e-7)


def test_importance_measures_every_head_and_gate_and_pruning_keeps_a_head_per_layer():
    net, sc = tiny(3), scorer(3, n=2)
    result = importance(net, sc, log=lambda _: None)
    assert len(result.heads) == 14 and [g.layer for g in result.gates] == ["gate_level0", "gate_level1"]
    full = sc.dice(net)
    for h in result.heads[:3]:
        xi = torch.ones({e.name: e.heads for e in head_layers(net)}[h.layer])
        xi[h.head] = 0
        with masked(net, {h.layer: xi}):
            assert h.dice_drop == pytest.approx(full - sc.dice(net))
    for layer in {h.layer for h in result.heads}:
        norms = torch.tensor([h.proxy_normalised for h in result.heads if h.layer == layer]).norm()
        assert float(norms) == pytest.approx(1.0, abs=1e-5)
    steps = prune_by_proxy(net, sc, keep=0.5, log=lambda _: None)
    assert [s.heads_kept for s in steps] == [14, 13, 12, 11, 10, 9, 8, 7]  # 10% of 14 rounds to 1 a step
    assert all(len(kept) >= 1 for kept in steps[-1].kept.values())
    assert steps[0].dice == pytest.approx(full)


def test_spearman():
    assert spearman([1, 2, 3, 4], [10, 20, 30, 40]) == pytest.approx(1.0)
    assert spearman([1, 2, 3, 4], [4, 3, 2, 1]) == pytest.approx(-1.0)
    assert spearman([1, 2], [1, 2]) != spearman([1, 2], [1, 2])  # NaN below 3 pairs


@pytest.mark.parametrize("dims", [2, 3])
@pytest.mark.parametrize("how", ["hard", "gumbel"])
def test_hard_gates_are_0_or_1_forward_and_pass_the_soft_gradient_back(dims, how):
    net = tiny(dims, gate_heads=1, self_attention=None, gate_coefficients=how).train()
    anneal_gates(net, 0.5)
    gate = net.gates["level0"]
    assert gate.tau == pytest.approx(1.0 * 0.1**0.5) if how == "gumbel" else gate.tau == 1.0
    out = net.outputs(torch.randn(2, 1, *SIZE[dims]), maps=MapRequest(kinds=("gate",)))
    alpha = out.maps[next(iter(out.maps))]
    assert set(alpha.unique().tolist()) <= {0.0, 1.0}
    out.logits.sum().backward()
    assert gate.psi.weight.grad is not None and gate.psi.weight.grad.abs().sum() > 0
    net.eval()
    with torch.no_grad():
        values = net.outputs(torch.randn(1, 1, *SIZE[dims]), maps=["gate"]).gates["level1"].unique().tolist()
    assert set(values) <= {0.0, 1.0}


@pytest.mark.parametrize("k", [1, 3, 6])
def test_top_k_attention_keeps_k_keys_per_query(k):
    torch.manual_seed(0)
    q, key, v = torch.randn(2, 2, 5, 4), torch.randn(2, 2, 6, 4), torch.randn(2, 2, 6, 4)
    a = attention_weights(q, key, top_k=k)
    assert ((a > 0).sum(-1) == k).all()
    torch.testing.assert_close(a.sum(-1), torch.ones(2, 2, 5))
    torch.testing.assert_close(attend(q, key, v, top_k=k), a @ v)
    if k == 6:
        torch.testing.assert_close(attend(q, key, v, top_k=k), attend(q, key, v))


@pytest.mark.parametrize("dims", [2, 3])
def test_top_k_self_attention_blocks_give_the_same_output_with_and_without_maps(dims):
    net = tiny(dims, self_attention_top_k=2)
    x = torch.randn(1, 1, *SIZE[dims])
    with torch.no_grad():
        plain = net(x)
        recorded = net.outputs(x, maps=["self"])
    torch.testing.assert_close(recorded.logits, plain, atol=1e-5, rtol=1e-5)
    with torch.no_grad():
        soft = tiny(dims)(x)
    assert not torch.allclose(soft, plain, atol=1e-4)


def test_a_pruned_config_round_trips_through_its_dict():
    from seg.config import Config, from_dict, to_dict

    cfg = Config()
    model = dataclasses.replace(cfg.model, gate_heads=2, heads_kept={"gate_level1": 1})
    back = from_dict(Config, to_dict(dataclasses.replace(cfg, model=model)))
    assert back.model.heads_kept == {"gate_level1": 1}
