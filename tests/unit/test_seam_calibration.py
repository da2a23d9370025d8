"""The calibration after SEAM training (`seg.seam.calibration`): the search per class for shift, scales and PCM or
not, and what the config fixes."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch
from seam_fixture import small

from seg.config import SeamConfig
from seg.seam.network import SeamNet


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
    from seg.seam.calibration import calibrate
    from seg.seam.network import translate

    offsets = [(2, -3, 1)[:spatial_dims], (-1, 0, 2)[:spatial_dims]]
    labels = two_structures(spatial_dims)
    raw = [
        torch.cat([translate((y == k).float() * 0.8, offsets[k - 1]) for k in (1, 2)], dim=1)[None] for y in labels
    ]  # one scale: (1, 1, 2, *S)
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
    from seg.seam.calibration import calibrate
    from seg.seam.network import translate

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
    from seg.seam.calibration import calibrate
    from seg.seam.network import translate

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


def test_calibrate_network_keeps_what_the_config_fixes_and_chooses_the_rest() -> None:
    from types import SimpleNamespace

    from seg.seam.calibration import calibrate_network
    from seg.seam.objective import SeamSupervision

    rng = np.random.default_rng(0)
    cases = [
        SimpleNamespace(
            case_id=f"c{i}",
            image=rng.random((1, 16, 16), dtype=np.float32),
            label=((rng.random((1, 16, 16)) > 0.7) * (i % 2 + 1)).astype(np.uint8),
        )
        for i in range(3)
    ]
    dm = SimpleNamespace(setup=lambda stage: None, val_cases=cases)
    names = ["background", "a", "b"]

    def run(seam: SeamConfig) -> dict:
        return calibrate_network(SeamNet(small(2), SeamConfig()), SeamSupervision(seam), dm, names, seam)

    every = [0.5, 1.0, 1.5, 2.0]
    fixed = run(SeamConfig(background=0.3, shift=(1, 2), choose_scales=False, refine=True))
    assert (fixed["shift"], fixed["background"], fixed["cases"]) == (
        {"a": [1, 2], "b": [1, 2]},
        {"a": 0.3, "b": 0.3},
        [],
    )
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


def test_choose_maps_is_the_search_with_each_class_at_its_best_score() -> None:
    """The one calibration (training's and the benchmark's): with seam.refine auto it is the search over both kinds of
    maps and each class's best background score; fixed, it searches the kind seam.refine names; the choice applied to
    a case gives the maps the search scored."""
    from seg.seam.calibration import CaseMaps, calibrate, choose_maps
    from seg.seam.network import translate
    from seg.seam.sweep import choose_background, sweep_backgrounds

    labels = two_structures(2)

    def maps(y, off1, off2):
        return torch.cat([translate((y == 1).float(), off1), translate((y == 2).float(), off2)], dim=1)[None]

    cams = [maps(y, (0, 0), (0, 4)) for y in labels]
    refined = [maps(y, (0, 4), (0, 0)) for y in labels]
    present = [torch.ones(1, 2)] * len(labels)
    cases = [CaseMaps(c, r, p, y) for c, r, p, y in zip(cams, refined, present, labels, strict=True)]
    seam = SeamConfig(infer_scales=(1.0,), max_shift=0)
    found = choose_maps(cases, 3, seam)
    search = calibrate(cams, present, labels, 3, max_shift=0, choose_scales=False, refined=refined)
    assert found.refine == search.refine == [False, True] and torch.equal(found.dice, search.dice)
    assert (found.background, found.best.tolist()) == (
        choose_background(search.dice)[0],
        choose_background(search.dice)[1].tolist(),
    )
    only_cams = choose_maps(cases, 3, dataclasses.replace(seam, refine=False))
    assert only_cams.refine == [False, False] and float(only_cams.best[1]) < 0.99  # class 2 stays 4 voxels off
    again = torch.stack([sweep_backgrounds(found.maps(c.cam, c.refined, c.presence), c.label, 3) for c in cases])
    assert torch.equal(again, found.dice)
    fixed = choose_maps(cases, 3, seam, background=(0.3, 0.5))
    assert fixed.background == (0.3, 0.5) and fixed.dice.shape == (len(labels), 2, 2)
