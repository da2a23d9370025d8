"""Scores of maps: Dice over thresholds, thresholds chosen on selection cases only, energy inside the mask,
Pearson correlation, and the flat metrics the stage writes."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from seg.explain.aggregate import choose_thresholds, summarize_analysis
from seg.explain.engine import CaseMaps
from seg.explain.keys import CAM, MapId
from seg.explain.measure import CaseResult
from seg.explain.scores import THRESHOLDS, choose_threshold, dice_at, dice_curve, energy_inside, min_max, pearson
from seg.explain.transforms import spatial_transforms
from seg.models import maps as maps_api


def test_thresholds_span_005_to_095():
    assert THRESHOLDS[0] == 0.05 and THRESHOLDS[-1] == 0.95 and len(THRESHOLDS) == 19


def test_dice_curve_of_a_graded_map():
    mask = torch.zeros(10, 10, dtype=torch.bool)
    mask[2:6, 2:6] = True
    cam = torch.zeros(10, 10)
    cam[mask] = 1.0
    cam[0, :] = 0.4  # a weaker false positive row: gone above t = 0.4
    curve = dice_curve(cam, mask)
    assert curve[THRESHOLDS.index(0.45)] == 1.0 and curve[THRESHOLDS.index(0.4)] == pytest.approx(2 * 16 / (26 + 16))
    assert choose_threshold([curve]) == 0.45  # the lowest of the best
    assert dice_at(curve, 0.7) == 1.0
    assert np.all(dice_curve(torch.zeros(10, 10), mask) == 0)  # a zero map finds nothing


def test_energy_inside_and_pearson():
    mask = torch.zeros(4, 4, dtype=torch.bool)
    mask[:2] = True
    heat = torch.ones(4, 4)
    assert energy_inside(heat, mask) == pytest.approx(0.5)  # uniform map: the mask fraction
    heat[2:] = 0
    assert energy_inside(heat, mask) == 1.0
    assert math.isnan(energy_inside(torch.zeros(4, 4), mask))
    a = torch.rand(5, 5)
    assert pearson(a, 2 * a + 1) == pytest.approx(1.0) and pearson(a, -a) == pytest.approx(-1.0)
    assert math.isnan(pearson(a, torch.ones(5, 5)))
    assert torch.equal(min_max(torch.full((3,), 2.0)), torch.zeros(3))


def _result(case_id: str, cam: torch.Tensor, mask: torch.Tensor) -> CaseResult:
    gate = {maps_api.MapId(maps_api.GATE, "level0"): cam.clone()}
    maps = CaseMaps(torch.zeros(2, *cam.shape), {"decoder.0": cam[None]}, None, None, [False], spatial=gate)
    r = CaseResult(case_id, maps, cam[None])
    r.curves_raw = {"fg": dice_curve(cam, mask)}
    r.curves_pcm = {"fg": dice_curve(cam, mask)}
    r.scores = {
        "cam.fg.energy_inside_raw": energy_inside(cam, mask),
        "cam.fg.fallback": 0.0,
        "cam.fg.gate_correlation.level0": float("nan"),
    }
    r.equivariance = {MapId(CAM, "fg"): {"flip0": 0.2, "flip1": 0.4, "rot90_01": 0.1}}
    return r


def test_thresholds_come_from_selection_cases_and_metrics_are_finite():
    mask = torch.zeros(8, 8, dtype=torch.bool)
    mask[2:5, 2:5] = True
    graded = torch.where(mask, 1.0, 0.0)
    graded[6, :] = 0.5  # selection case: a false positive row at 0.5, so t > 0.5 wins
    selection = [_result("sel", graded, mask)]
    scored_cam = torch.where(mask, 0.3, 0.0)
    scored_cam[0, 0] = 1.0  # scored case: its structure sits at 0.3, below the selected threshold
    scored = [_result("val", scored_cam, mask)]
    thresholds = choose_thresholds(selection, ["fg"])
    assert thresholds["raw"]["fg"] == 0.55
    metrics = summarize_analysis(scored, scored, thresholds, spatial_transforms((8, 8), ("flip", "rot90")), ["fg"])
    assert metrics["cam.fg.dice_raw"] == pytest.approx(0.0)  # honest: the threshold was not tuned on this case
    assert metrics["cam.fg.equivariance.flip"] == pytest.approx(0.3) and metrics["cam.fg.equivariance.rot90"] == 0.1
    assert metrics["cam.fg.fallback_cases"] == 0.0 and "cam.fg.gate_correlation.level0" not in metrics  # NaN left out
    assert all(math.isfinite(v) for v in metrics.values())


def test_pictures_for_mlflow_cards_are_padded_to_landscape_and_never_cropped():
    import numpy as np

    from seg.tracking.images import card_shaped

    tall = np.zeros((300, 200, 3), np.uint8)
    shaped = card_shaped(tall)
    assert shaped.shape == (300, 400, 3) and (shaped[:, :100] == 255).all() and (shaped[:, 100:300] == 0).all()
    wide = np.zeros((100, 300, 3), np.uint8)
    assert card_shaped(wide) is wide
