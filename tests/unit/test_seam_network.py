"""SEAM's network (`seg.seam.network`): shapes, scores per class (refined or not, over their own scales, with
their background scores), the config checks it relies on, and its model folder, on tiny tensors in 2D and 3D."""

from __future__ import annotations

import pytest
import torch
from seam_fixture import small

from seg.config import Config, ConfigError, SeamConfig, from_dict
from seg.model_folder import ModelMeta, load_bundle, save_bundle
from seg.seam.network import SeamNet, default_cam_level, max_norm


@pytest.mark.parametrize("dims", [2, 3])
def test_network_shapes_and_scores(dims):
    torch.manual_seed(0)
    net = SeamNet(small(dims), SeamConfig())
    assert net.cam_level == 1 and net.size_multiple == (4,) * dims  # stem 2 x stride 2 = 1/4
    x = torch.randn(2, 1, *([13] * dims))  # not a multiple: padded and cropped back
    torch.set_grad_enabled(False)
    branch = net.branch(net._pad(x)[0])
    assert branch.cam.shape == (2, 2, *([4] * dims)) and branch.refined.shape == (2, 3, *([4] * dims))
    scores = net.scores(x, torch.tensor([[1.0, 0.0], [0.0, 0.0]]))
    assert scores.shape == (2, 3, *([13] * dims))
    assert float(scores[0, 1].max()) > 0.5 and float(scores[0, 2].abs().max()) == 0  # absent class: zero
    assert float(scores[1, 1:].abs().max()) == 0  # nothing present: background everywhere
    assert torch.allclose(scores[:, 0], torch.full_like(scores[:, 0], 0.5))
    assert net(x).shape == (2, 3, *([13] * dims)) and torch.isfinite(net(x)).all()
    torch.set_grad_enabled(True)
    single = net.scores(x, torch.ones(2, 2), scales=(1.0,))
    assert single.shape == scores.shape and not torch.allclose(single, net.scores(x, torch.ones(2, 2)))


def test_default_cam_level_is_the_quarter_resolution_level():
    assert default_cam_level(small(3)) == 1  # stem stride 2: level 1 is 1/4
    assert default_cam_level(small(3, stem_stride=1)) == 2  # full-resolution stem: level 2 is 1/4


def test_max_norm_per_sample_and_channel():
    p = torch.tensor([[[0.0, 2.0, 4.0]], [[-1.0, 1.0, 3.0]]])
    n = max_norm(p)
    assert torch.allclose(n.amax(-1), torch.ones(2, 1), atol=1e-4) and float(n.min()) == 0


def test_config_checks():
    with pytest.raises(ConfigError, match="seam.scale must be in"):
        SeamConfig(scale=1.5)
    with pytest.raises(ConfigError, match="seam.pcm_window must be an odd number"):
        SeamConfig(pcm_window=4)
    with pytest.raises(ConfigError, match="train.supervision must be one of full, seam"):
        from_dict(Config, {"train": {"supervision": "seem"}})
    with pytest.raises(ConfigError, match="seam.cam_level 4 is not an encoder level"):
        from_dict(Config, {"seam": {"cam_level": 4}})
    with pytest.raises(ConfigError, match="seam.shift \\[1, 2\\] needs one number of voxels per axis"):
        from_dict(Config, {"seam": {"shift": [1, 2]}})  # the default model is 3D
    with pytest.raises(ConfigError, match="seam.max_shift must be >= 0"):
        SeamConfig(max_shift=-1)
    assert SeamNet(small(2), SeamConfig(shift=(1, -2))).shift.tolist() == [[1, -2], [1, -2]]  # every class
    with pytest.raises(ConfigError, match="seam.infer_scales has 7 scales; choosing each class's subset tries all 127"):
        SeamConfig(infer_scales=(0.5, 0.75, 1.0, 1.25, 1.5, 1.75, 2.0))
    SeamConfig(infer_scales=(0.5, 0.75, 1.0, 1.25, 1.5, 1.75, 2.0), choose_scales=False)
    with pytest.raises(ConfigError, match="seam.refine must be 'auto' or bool, got 'sometimes'"):
        SeamConfig(refine="sometimes")
    assert SeamNet(small(2), SeamConfig(refine=False)).refine_mask.tolist() == [0.0, 0.0]
    assert SeamNet(small(2), SeamConfig()).refine_mask.tolist() == [1.0, 1.0]  # auto: PCM until validation chooses


def test_bundle_round_trip_keeps_the_background(tmp_path):
    """A SEAM model folder loads as a SeamNet with its chosen background scores, shifts and scales (buffers in the
    weights); folders from before each of them load as they were made."""
    from cache_fixture import tiny_fingerprint

    cfg = from_dict(
        Config,
        {
            "model": {
                "spatial_dims": 2,
                "out_channels": 3,
                "channels": [4, 8, 16],
                "strides": [2, 2],
                "deep_supervision": 0,
            },
            "train": {"supervision": "seam"},
        },
    )
    net = SeamNet(cfg.model, cfg.seam)
    net.background.copy_(torch.tensor([0.35, 0.6]))
    net.shift.copy_(torch.tensor([[1, -2], [0, 3]]))
    net.scale_mask.copy_(torch.tensor([[1.0, 1.0, 0.0, 0.0], [0.0, 0.0, 1.0, 0.0]]))
    net.refine_mask.copy_(torch.tensor([0.0, 1.0]))
    meta = ModelMeta.for_training(cfg, ["background", "a", "b"], (16, 16), None)
    save_bundle(tmp_path / "m", net, cfg, tiny_fingerprint(2), meta)
    loaded = load_bundle(tmp_path / "m")
    assert isinstance(loaded.net, SeamNet) and loaded.net.background.tolist() == pytest.approx([0.35, 0.6])
    assert loaded.net.shift.tolist() == [[1, -2], [0, 3]] and torch.equal(loaded.net.scale_mask, net.scale_mask)
    assert loaded.net.refine_mask.tolist() == [0.0, 1.0]
    old = {**net.state_dict(), "background": torch.tensor(0.4)}  # from before per-class scores: one for all
    del old["shift"], old["scale_mask"]  # and from before the shift: never shifted, every scale summed
    del old["refine_mask"]  # and from before refinement per class: every class as seam.refine says
    torch.save(old, tmp_path / "m" / "weights.pt")
    assert load_bundle(tmp_path / "m").net.background.tolist() == pytest.approx([0.4, 0.4])
    assert load_bundle(tmp_path / "m").net.shift.tolist() == [[0, 0], [0, 0]]
    assert load_bundle(tmp_path / "m").net.scale_mask.min() == 1
    assert load_bundle(tmp_path / "m").net.refine_mask.tolist() == [1.0, 1.0]
    torch.save({**old, "shift": torch.tensor([2, -1])}, tmp_path / "m" / "weights.pt")  # one shift for all classes
    assert load_bundle(tmp_path / "m").net.shift.tolist() == [[2, -1], [2, -1]]


def test_background_config_checks():
    with pytest.raises(ConfigError, match="seam.background must be a score in"):
        SeamConfig(background=(0.3, 1.2))
    with pytest.raises(ConfigError, match="seam.background has 3 scores for 2 foreground classes"):
        SeamNet(small(2), SeamConfig(background=(0.3, 0.4, 0.5)))
    assert SeamNet(small(2), SeamConfig(background=0.3)).background.tolist() == pytest.approx([0.3, 0.3])


def test_translate_moves_maps_and_fills_zeros() -> None:
    from seg.seam.network import translate

    x = torch.arange(1, 13, dtype=torch.float32).view(1, 1, 3, 4)
    moved = translate(x, (1, -2))
    assert moved[0, 0].tolist() == [[0, 0, 0, 0], [3, 4, 0, 0], [7, 8, 0, 0]]
    assert torch.equal(translate(x, (0, 0)), x)
    assert translate(x, (5, 0)).abs().sum() == 0  # beyond the map: nothing left


def test_scores_take_each_class_refined_or_not_as_its_mask_says() -> None:
    torch.manual_seed(0)
    net = SeamNet(small(2), SeamConfig(infer_scales=(1.0,))).eval()
    x, present = torch.randn(1, 1, 16, 16), torch.ones(1, 2)
    with torch.no_grad():
        cam, pcm = net.scores(x, present, refine=False), net.scores(x, present, refine=True)
        assert torch.allclose(net.scores(x, present), pcm)  # every class refined: the default
        net.refine_mask.copy_(torch.tensor([0.0, 1.0]))
        mixed = net.scores(x, present)
        both = net.scale_maps_both(x)
    assert torch.allclose(mixed[:, 1], cam[:, 1]) and torch.allclose(mixed[:, 2], pcm[:, 2])
    assert not torch.allclose(cam[:, 2], pcm[:, 2])
    assert torch.equal(both[0], net.scale_maps(x, refine=False)[0]) and torch.equal(both[1], net.scale_maps(x, True)[0])


def test_scores_sum_each_class_over_its_own_scales() -> None:
    """net.scale_mask picks, per class, the scales its map sums: a class on scale 1.0 alone gets the single-scale
    map; one on every scale the multi-scale one."""
    torch.manual_seed(0)
    net = SeamNet(small(2), SeamConfig(infer_scales=(0.5, 1.0))).eval()
    x, present = torch.randn(1, 1, 16, 16), torch.ones(1, 2)
    with torch.no_grad():
        both, single = net.scores(x, present), net.scores(x, present, scales=(1.0,))
        net.scale_mask.copy_(torch.tensor([[0.0, 1.0], [1.0, 1.0]]))
        mixed = net.scores(x, present)
    assert torch.allclose(mixed[:, 1], single[:, 1]) and torch.allclose(mixed[:, 2], both[:, 2])
    assert not torch.allclose(single[:, 1], both[:, 1])
