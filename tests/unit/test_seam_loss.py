"""SEAM's training loss (`seg.seam.loss`): its terms, their gradients, the warm-up, and that it learns presence."""

from __future__ import annotations

import pytest
import torch
from seam_fixture import small

from seg.config import ConfigError, SeamConfig
from seg.seam.loss import SeamLoss, rescale
from seg.seam.network import SeamNet


@pytest.mark.parametrize("dims", [2, 3])
def test_loss_terms_and_gradients(dims):
    """Classification reaches the encoder's first layer; ECR (PCM) trains only the projection, never the encoder
    (SEAM detaches the features it refines); ER is zero for identical branches."""
    torch.manual_seed(0)
    net = SeamNet(small(dims), SeamConfig())
    x = torch.randn(2, 1, *([16] * dims))
    terms = SeamLoss(SeamConfig())(net, x, torch.tensor([[1.0, 0.0], [1.0, 1.0]]))
    assert all(torch.isfinite(t) for t in (terms.total, terms.classification, terms.er, terms.ecr, terms.min_pool))
    first = next(net.encoder.parameters())
    grad = torch.autograd.grad(terms.ecr, [first, net.pcm_projection.weight], allow_unused=True)
    assert grad[0] is None and float(grad[1].abs().sum()) > 0
    (grad_cls,) = torch.autograd.grad(terms.classification, [first])
    assert float(grad_cls.abs().sum()) > 0
    only_er = SeamLoss(SeamConfig(ecr_weight=0, min_weight=0))
    net.zero_grad()
    assert float(only_er(net, x, torch.tensor([[0.0, 0.0], [0.0, 0.0]])).er) == 0  # no class present: maps masked


def test_warmup_trains_classification_alone_then_ramps_in_the_rest():
    torch.manual_seed(0)
    net = SeamNet(small(2), SeamConfig())
    x, presence = torch.randn(2, 1, 16, 16), torch.tensor([[1.0, 0.0], [1.0, 1.0]])
    loss = SeamLoss(SeamConfig(warmup=0.2))
    assert [loss.ramp(p) for p in (0.0, 0.2, 0.3, 0.4, 1.0)] == pytest.approx([0, 0, 0.5, 1, 1])
    early, late = loss(net, x, presence, progress=0.1), loss(net, x, presence, progress=1.0)
    assert float(early.total) == pytest.approx(float(early.classification))
    rest = late.er + late.ecr + late.min_pool
    assert float(rest) > 0 and float(late.total) == pytest.approx(float(late.classification + rest), rel=1e-5)
    assert SeamLoss(SeamConfig(warmup=0)).ramp(0.0) == 1.0
    with pytest.raises(ConfigError, match="seam.warmup"):
        SeamConfig(warmup=0.6)


def test_classification_learns_presence():
    """A few steps of SEAM's loss on blobs: the pooled CAM separates patches that hold the class from those that do
    not."""
    torch.manual_seed(0)
    net = SeamNet(small(2), SeamConfig())
    opt = torch.optim.Adam(net.parameters(), lr=1e-2)
    x = torch.zeros(8, 1, 16, 16)
    x[:4, :, 4:10, 4:10] = 3.0  # class 1 present in the first four
    presence = torch.tensor([[1.0, 0.0]] * 4 + [[0.0, 0.0]] * 4)
    loss = SeamLoss(SeamConfig())
    for _ in range(40):
        opt.zero_grad()
        loss(net, x + 0.1 * torch.randn_like(x), presence).total.backward()
        opt.step()
    net.eval()
    with torch.no_grad():
        logits = net.class_scores(net.branch(x).cam)[:, 0]
    assert float(logits[:4].min()) > float(logits[4:].max())


def test_rescale_rounds_to_the_network_multiple():
    assert rescale(torch.zeros(1, 1, 24, 32, 16), 0.5, (4, 4, 4)).shape[2:] == (12, 16, 8)
    assert rescale(torch.zeros(1, 1, 12, 12), 0.3, (8, 8)).shape[2:] == (8, 8)  # at least one multiple
