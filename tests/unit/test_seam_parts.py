"""SEAM as a training method: the network, the PCM, the loss terms, presence labels and the background choice, on
tiny tensors in 2D and 3D."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from seg.config import AugmentConfig, ConfigError, ModelConfig, SeamConfig, from_dict, Config
from seg.models.bundle import ModelMeta, load_bundle, save_bundle
from seg.models.pcm import pixel_correlation
from seg.models.seam import SeamNet, default_cam_level, max_norm
from seg.train.objectives import BACKGROUNDS, choose_background, sweep_backgrounds
from seg.train.presence import PresenceDataset, presence_of, read_labels_file
from seg.train.seam_loss import SeamLoss, rescale


def small(dims: int, **kw) -> ModelConfig:
    return ModelConfig(spatial_dims=dims, out_channels=3, channels=(4, 8, 16), strides=(2, 2), deep_supervision=0, **kw)


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
    """A few steps of SEAM's loss on blobs: the pooled CAM separates patches that hold the class from those that do not."""
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


def test_pcm_dense_equals_a_window_covering_everything_and_keeps_gradients():
    torch.manual_seed(0)
    cams, features = torch.rand(2, 3, 5, 6, 4), torch.randn(2, 4, 5, 6, 4, requires_grad=True)
    dense, windowed = pixel_correlation(cams, features, None), pixel_correlation(cams, features, 13)
    assert torch.allclose(dense, windowed, atol=1e-5)
    (g,) = torch.autograd.grad(windowed.sum() + dense.square().sum(), [features])
    assert torch.isfinite(g).all() and float(g.abs().sum()) > 0
    with pytest.raises(ValueError, match="odd number"):
        pixel_correlation(cams, features, 4)


def test_max_norm_per_sample_and_channel():
    p = torch.tensor([[[0.0, 2.0, 4.0]], [[-1.0, 1.0, 3.0]]])
    n = max_norm(p)
    assert torch.allclose(n.amax(-1), torch.ones(2, 1), atol=1e-4) and float(n.min()) == 0


def test_rescale_rounds_to_the_network_multiple():
    assert rescale(torch.zeros(1, 1, 24, 32, 16), 0.5, (4, 4, 4)).shape[2:] == (12, 16, 8)
    assert rescale(torch.zeros(1, 1, 12, 12), 0.3, (8, 8)).shape[2:] == (8, 8)  # at least one multiple


def test_presence_from_masks_and_a_labels_file(tmp_path):
    assert presence_of(np.array([[0, 2, 2]]), 3).tolist() == [0.0, 1.0]
    path = tmp_path / "labels.json"
    path.write_text(json.dumps({"a": ["anterior"], "b": [], "c": [1, 2]}))
    got = read_labels_file(path, ["background", "anterior", "posterior"], ["a", "b", "c"])
    assert got["a"].tolist() == [1.0, 0.0] and got["b"].tolist() == [0.0, 0.0] and got["c"].tolist() == [1.0, 1.0]
    with pytest.raises(ConfigError, match="no entry for training case 'd'"):
        read_labels_file(path, ["background", "anterior", "posterior"], ["a", "d"])
    path.write_text(json.dumps({"a": ["hippocampus"]}))
    with pytest.raises(ConfigError, match="lists 'hippocampus', not a foreground class"):
        read_labels_file(path, ["background", "anterior", "posterior"], ["a"])


def test_presence_dataset_drops_the_mask():
    class Patches(torch.utils.data.Dataset):
        def __len__(self):
            return 2

        def __getitem__(self, i):
            return {"image": torch.zeros(1, 4, 4), "label": torch.full((1, 4, 4), i * 2), "case_id": "x"}

    ds = PresenceDataset(Patches(), 3)
    assert set(ds[1]) == {"image", "presence"} and ds[1]["presence"].tolist() == [0.0, 1.0]


def test_background_sweep_and_choice():
    maps = torch.zeros(1, 2, 8, 8)
    maps[0, 0, :4] = 0.6  # class 1 in the top half at 0.6, noise of 0.2 at the bottom
    maps[0, 0, 4:] = 0.2
    label = torch.zeros(1, 1, 8, 8, dtype=torch.long)
    label[0, 0, :4] = 1
    dice = sweep_backgrounds(maps, label, 3)  # (T, 2)
    t, best = choose_background(dice[None])
    assert 0.2 <= t[0] < 0.6 and float(best[0]) == pytest.approx(1.0)
    assert float(dice[list(BACKGROUNDS).index(0.1), 0]) < 1.0  # a low background lets the noise in


def test_each_class_gets_its_own_background_score():
    """Class 1 is found at 0.9 over noise of 0.5, class 2 at 0.3 over nothing: no one score serves both (0.5 to 0.9
    loses class 2, below 0.5 lets class 1's noise in); one per class scores both perfectly, and the network applies
    them as the background channel of the winning class."""
    maps = torch.zeros(1, 2, 8, 8)
    maps[0, 0, :2], maps[0, 0, 2:4] = 0.9, 0.5
    maps[0, 1, 4:6] = 0.3
    label = torch.zeros(1, 1, 8, 8, dtype=torch.long)
    label[0, 0, :2], label[0, 0, 4:6] = 1, 2
    dice = sweep_backgrounds(maps, label, 3)
    shared = dice.mean(1).max()
    t, best = choose_background(dice[None])
    assert 0.5 <= t[0] < 0.9 and t[1] < 0.3 and best.tolist() == pytest.approx([1.0, 1.0]) and shared < 0.9
    net = SeamNet(small(2), SeamConfig(background=t)).eval()
    assert net.background.tolist() == pytest.approx(list(t))
    with torch.no_grad():
        scores = net.scores(torch.randn(1, 1, 16, 16), torch.ones(1, 2))
    winner = scores[:, 1:].argmax(1)
    assert torch.equal(scores[:, 0], torch.tensor(t)[winner].float())


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


def test_seam_trains_without_mirroring_or_rot90_unless_asked():
    """Presence survives mirroring and rot90, but where a structure lies is a class's cue in canonical volumes: SEAM's
    patches keep their orientation by default; the other augmentations stay as train.augment has them."""
    augment = AugmentConfig(flip_prob=0.5, rot90_prob=0.5, affine_prob=0.3, noise_prob=0.2)
    kept = SeamConfig().training_augment(augment)
    assert (kept.flip_prob, kept.rot90_prob) == (0.0, 0.0) and kept.mirrored_axes(3) == ()
    assert (kept.affine_prob, kept.noise_prob, kept.scale_range) == (0.3, 0.2, augment.scale_range)
    assert SeamConfig(orientation_augment=True).training_augment(augment) == augment


def test_bundle_round_trip_keeps_the_background(tmp_path):
    """A SEAM model folder loads as a SeamNet with its chosen background scores, shifts and scales (buffers in the
    weights); folders from before each of them load as they were made."""
    from cache_fixture import tiny_fingerprint

    cfg = from_dict(Config, {"model": {"spatial_dims": 2, "out_channels": 3, "channels": [4, 8, 16],
                                       "strides": [2, 2], "deep_supervision": 0},
                             "train": {"supervision": "seam"}})
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
    from seg.models.seam import translate

    x = torch.arange(1, 13, dtype=torch.float32).view(1, 1, 3, 4)
    moved = translate(x, (1, -2))
    assert moved[0, 0].tolist() == [[0, 0, 0, 0], [3, 4, 0, 0], [7, 8, 0, 0]]
    assert torch.equal(translate(x, (0, 0)), x)
    assert translate(x, (5, 0)).abs().sum() == 0  # beyond the map: nothing left


def two_structures(spatial_dims: int, cases: int = 4) -> list[torch.Tensor]:
    """Masks (1, 1, *24) with a cube of each of classes 1 and 2 at random places."""
    gen = torch.Generator().manual_seed(0)
    labels = []
    for _ in range(cases):
        label = torch.zeros((1, 1) + (24,) * spatial_dims, dtype=torch.long)
        for k in (1, 2):
            corner = torch.randint(4, 14, (spatial_dims,), generator=gen).tolist()
            label[(0, 0, *[slice(c, c + 5) for c in corner])] = k
        labels.append(label)
    return labels


@pytest.mark.parametrize("spatial_dims", [2, 3])
def test_the_search_moves_each_class_back_onto_its_structures(spatial_dims) -> None:
    """Maps that are each case's masks moved by a fixed offset per class: the search undoes each class's offset; maps
    that sit right stay (only a strict gain moves the search)."""
    from seg.models.seam import translate
    from seg.train.seam_background import calibrate

    offsets = [(2, -3, 1)[:spatial_dims], (-1, 0, 2)[:spatial_dims]]
    labels = two_structures(spatial_dims)
    raw = [torch.cat([translate((y == k).float() * 0.8, offsets[k - 1]) for k in (1, 2)], dim=1)[None]
           for y in labels]  # one scale: (1, 1, 2, *S)
    present = [torch.ones(1, 2)] * len(labels)
    found = calibrate(raw, present, labels, 3, max_shift=4)
    assert found.shift == [[-o for o in offsets[0]], [-o for o in offsets[1]]]
    assert found.dice.float().mean(0).max(0).values.min() > 0.99  # both classes exact once moved back
    aligned = [torch.cat([(y == k).float() * 0.8 for k in (1, 2)], dim=1)[None] for y in labels]
    assert calibrate(aligned, present, labels, 3, max_shift=4).shift == [[0] * spatial_dims] * 2
    assert calibrate(raw, present, labels, 3, max_shift=0).shift == [[0] * spatial_dims] * 2
    fixed = calibrate(raw, present, labels, 3, max_shift=4, shift=(1,) * spatial_dims)
    assert fixed.shift == [[1] * spatial_dims] * 2  # a fixed shift applies to every class


def test_the_search_keeps_per_class_the_scales_that_place_it() -> None:
    """Two scales: the first places class 1 right and class 2 off by 4 voxels, the second the other way round; the
    search keeps scale 0 for class 1 and scale 1 for class 2; without the choice every class sums both."""
    from seg.models.seam import translate
    from seg.train.seam_background import calibrate

    labels = two_structures(2)

    def maps(y, off1, off2):
        return torch.cat([translate((y == 1).float(), off1), translate((y == 2).float(), off2)], dim=1)

    raw = [torch.stack([maps(y, (0, 0), (4, 0)), maps(y, (4, 0), (0, 0))]) for y in labels]  # (2, 1, 2, 24, 24)
    present = [torch.ones(1, 2)] * len(labels)
    found = calibrate(raw, present, labels, 3, max_shift=0)
    assert found.scale_mask.tolist() == [[1.0, 0.0], [0.0, 1.0]]
    assert found.dice.float().mean(0).max(0).values.min() > 0.99
    assert calibrate(raw, present, labels, 3, max_shift=0, choose_scales=False).scale_mask.min() == 1


def test_the_search_takes_per_class_the_refined_maps_or_the_classifiers() -> None:
    """The classifier's maps place class 1 right and class 2 4 voxels off, the refined maps the other way round: with
    both given, the search keeps the classifier's maps for class 1 and the refined ones for class 2."""
    from seg.models.seam import translate
    from seg.train.seam_background import calibrate

    labels = two_structures(2)

    def maps(y, off1, off2):
        return torch.cat([translate((y == 1).float(), off1), translate((y == 2).float(), off2)], dim=1)[None]

    cams = [maps(y, (0, 0), (0, 4)) for y in labels]  # (1, 1, 2, 24, 24): one scale
    refined = [maps(y, (0, 4), (0, 0)) for y in labels]
    present = [torch.ones(1, 2)] * len(labels)
    found = calibrate(cams, present, labels, 3, max_shift=0, refined=refined)
    assert found.refine == [False, True] and found.dice.float().mean(0).max(0).values.min() > 0.99
    assert calibrate(cams, present, labels, 3, max_shift=0).refine is None  # not asked: not chosen
    same = calibrate(refined, present, labels, 3, max_shift=0, refined=refined)
    assert same.refine == [True, True]  # no gain from the other maps: the refined ones stay (SEAM's)


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


def test_set_background_keeps_what_the_config_fixes_and_chooses_the_rest() -> None:
    from types import SimpleNamespace

    from seg.train.objectives import SeamSupervision
    from seg.train.seam_background import set_background

    rng = np.random.default_rng(0)
    cases = [SimpleNamespace(case_id=f"c{i}", image=rng.random((1, 16, 16), dtype=np.float32),
                             label=((rng.random((1, 16, 16)) > 0.7) * (i % 2 + 1)).astype(np.uint8)) for i in range(3)]
    dm = SimpleNamespace(setup=lambda stage: None, val_cases=cases)
    names = ["background", "a", "b"]

    def run(seam: SeamConfig) -> dict:
        return set_background(SeamNet(small(2), SeamConfig()), SeamSupervision(seam), dm, names, seam)

    every = [0.5, 1.0, 1.5, 2.0]
    fixed = run(SeamConfig(background=0.3, shift=(1, 2), choose_scales=False, refine=True))
    assert (fixed["shift"], fixed["background"], fixed["cases"]) == ({"a": [1, 2], "b": [1, 2]}, {"a": 0.3, "b": 0.3},
                                                                      [])
    assert fixed["scales"] == {"a": every, "b": every} and fixed["refine"] == {"a": True, "b": True}
    refine_chosen = run(SeamConfig(background=0.3, shift=(1, 2), choose_scales=False))  # refine auto
    assert refine_chosen["cases"] == ["c0", "c1", "c2"] and "PCM or not" in refine_chosen["chosen_by"]
    assert set(refine_chosen["refine"]) == {"a", "b"} and refine_chosen["scales"] == {"a": every, "b": every}
    unrefined = run(SeamConfig(refine=False, max_shift=0))
    assert unrefined["refine"] == {"a": False, "b": False} and "PCM" not in unrefined["chosen_by"]
    scales_chosen = run(SeamConfig(background=0.3, shift=(1, 2)))
    assert scales_chosen["cases"] == ["c0", "c1", "c2"] and scales_chosen["shift"] == {"a": [1, 2], "b": [1, 2]}
    assert "the scales" in scales_chosen["chosen_by"] and "background" not in scales_chosen["chosen_by"]
    shift_fixed = run(SeamConfig(shift=(1, 2), choose_scales=False))
    assert shift_fixed["shift"] == {"a": [1, 2], "b": [1, 2]} and shift_fixed["cases"] == ["c0", "c1", "c2"]
    assert set(shift_fixed["curve"]) == {"a", "b"} and shift_fixed["scales"] == {"a": every, "b": every}
    background_fixed = run(SeamConfig(background=(0.3, 0.4), max_shift=0))
    assert background_fixed["shift"] == {"a": [0, 0], "b": [0, 0]}
    assert background_fixed["background"] == {"a": 0.3, "b": 0.4}
    assert set(background_fixed["validation_dice"]) == {"a", "b"} and "curve" not in background_fixed


@pytest.mark.parametrize("spatial_dims", [2, 3])
def test_the_counted_sweep_agrees_with_dice_per_threshold(spatial_dims) -> None:
    """sweep_backgrounds counts every threshold in one pass; it gives the Dice of thresholding and scoring each one
    (MONAI's compute_dice, 1 where both are empty), unsorted thresholds included."""
    from seg.train.objectives import dice_per_class

    gen = torch.Generator().manual_seed(spatial_dims)
    maps = torch.rand((1, 2) + (9,) * spatial_dims, generator=gen)
    maps[0, 1, 0] = 0.5  # scores exactly on a threshold: not above it
    label = torch.randint(0, 3, (1, 1) + (9,) * spatial_dims, generator=gen)
    label[label == 2] = 0  # class 2 absent from the truth
    thresholds = (0.5, 0.05, 0.95, 0.3, 0.99)
    best, cls = maps.max(1, keepdim=True)
    expected = torch.stack([dice_per_class(torch.where(best > t, cls + 1, torch.zeros_like(cls)), label, 3)
                            for t in thresholds])
    assert torch.allclose(sweep_backgrounds(maps, label, 3, thresholds), expected, atol=1e-6)
    assert float(sweep_backgrounds(torch.zeros_like(maps), torch.zeros_like(label), 3, (0.5,)).min()) == 1.0
