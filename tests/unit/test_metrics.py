"""seg.metrics: Dice with nnU-Net's conventions for empty masks, HD95 against hand-computed distances, surface Dice
against MONAI's, the threshold sweep against thresholding and scoring each threshold one by one."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
import torch

from seg.metrics import (
    best_threshold,
    class_metrics,
    dice,
    dice_from_counts,
    dice_per_class,
    hd95,
    nanmean,
    surface_dice,
    threshold_sweep,
)

SPACING = (0.5, 1.0, 3.0)  # anisotropic: a voxel step along axis 2 is 6x one along axis 0


def _box(shape=(12, 10, 8), lo=(2, 2, 2), size=(6, 6, 4)) -> np.ndarray:
    a = np.zeros(shape, bool)
    a[tuple(slice(s, s + n) for s, n in zip(lo, size, strict=True))] = True
    return a


def _similar_blobs(rng: np.random.Generator, shape) -> tuple[np.ndarray, np.ndarray]:
    """(prediction, reference): smooth random blobs, the prediction's boundary moved by finer noise."""
    from scipy import ndimage

    smooth = ndimage.gaussian_filter(rng.random(shape), 2)
    return smooth + 0.3 * (ndimage.gaussian_filter(rng.random(shape), 1) - 0.5) > 0.51, smooth > 0.51


# --- Dice ---------------------------------------------------------------------------------------------------------


def test_dice_is_nnunets_formula_nan_when_both_are_empty_and_0_when_one_is():
    ref = _box()  # 6*6*4 = 144 voxels
    pred = np.roll(ref, 1, axis=0)  # one slab of 6*4 = 24 voxels moves out: TP 120, FP 24, FN 24
    m = class_metrics(pred, ref, SPACING)
    assert (m["tp"], m["fp"], m["fn"]) == (120, 24, 24)
    assert m["dice"] == dice(pred, ref) == 2 * 120 / (2 * 120 + 24 + 24)
    assert m["volume_ref"] == pytest.approx(144 * 0.5 * 1.0 * 3.0)
    empty = np.zeros_like(ref)
    assert math.isnan(dice(empty, empty)) and math.isnan(class_metrics(empty, empty, SPACING)["dice"])
    assert dice(empty, ref) == 0.0 == dice(ref, empty)
    one_sided = class_metrics(empty, ref, SPACING, tolerance=1.0)
    assert one_sided["dice"] == 0.0 and math.isnan(one_sided["hd95"]) and one_sided["surface_dice"] == 0.0


def test_dice_from_counts_of_numbers_arrays_and_tensors():
    assert dice_from_counts(3, 1, 1) == 0.75 and math.isnan(dice_from_counts(0, 0, 0))
    arrays = dice_from_counts(np.array([3, 0]), np.array([1, 0]), np.array([1, 0]))
    assert arrays[0] == 0.75 and math.isnan(arrays[1])
    tensors = dice_from_counts(torch.tensor([3, 0]), torch.tensor([1, 0]), torch.tensor([1, 0]))
    assert tensors[0].item() == 0.75 and math.isnan(tensors[1].item())


def test_dice_per_class_of_label_maps():
    """From one confusion count: class 1 shares 4 of its 8 reference voxels, class 2 is only predicted, class 3 is in
    neither map."""
    label = torch.zeros(1, 1, 4, 4, dtype=torch.long)
    label[..., :2, :] = 1
    pred = label.clone()
    pred[..., 0, :] = 2
    d = dice_per_class(pred, label, 4)
    assert d.dtype == torch.float32 and d.shape == (3,)
    assert d[0].item() == pytest.approx(2 * 4 / (4 + 8)) and d[1].item() == 0.0 and math.isnan(d[2].item())
    expected = [dice(pred == k, label == k) for k in (1, 2)]
    assert d[:2].tolist() == pytest.approx(expected)


def test_nanmean_leaves_undefined_values_out():
    assert nanmean([1.0, math.nan, None, 0.0]) == 0.5
    assert math.isnan(nanmean([math.nan, None])) and math.isnan(nanmean([]))


# --- distances ----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("axis,expected", [(0, 0.5), (1, 1.0), (2, 3.0)])
def test_hd95_uses_the_spacing(axis, expected):
    """A box moved one voxel along an axis: a face (36 or more of its surface voxels, >5%) is one voxel step away."""
    ref = _box()
    assert hd95(np.roll(ref, 1, axis=axis), ref, SPACING) == pytest.approx(expected)


def test_hd95_of_two_voxels_is_their_distance_in_mm():
    ref, pred = np.zeros((6, 6, 8), bool), np.zeros((6, 6, 8), bool)
    ref[2, 2, 1], pred[4, 2, 4] = True, True
    assert hd95(pred, ref, SPACING) == pytest.approx(math.hypot(2 * 0.5, 3 * 3.0))
    assert math.isnan(hd95(pred, np.zeros_like(ref), SPACING)) and math.isnan(hd95(ref & False, ref, SPACING))


def test_hd95_is_the_95th_percentile_not_the_maximum():
    """A 10x10 square and the same square with one far voxel added: the far voxel is 1 of the prediction's 37 edge
    voxels and 0 of the reference's 36, under 5% of either side, so HD95 stays 0 while the Hausdorff distance is 5."""
    ref = np.zeros((20, 12), bool)
    ref[1:11, 1:11] = True
    pred = ref.copy()
    pred[15, 5] = True  # 5 pixels below the square's last row
    assert hd95(pred, ref, (1.0, 1.0)) == 0.0


def _monai_surface_dice(pred: np.ndarray, ref: np.ndarray, spacing, tolerance: float) -> float:
    from monai.metrics import compute_surface_dice

    one_hot = lambda m: torch.from_numpy(np.stack([~m, m]))[None].float()  # noqa: E731  (1, 2, *spatial)
    with warnings.catch_warnings():  # MONAI warns of empty masks and of its own deprecated argument
        warnings.simplefilter("ignore")
        return float(compute_surface_dice(one_hot(pred), one_hot(ref), [tolerance], spacing=list(spacing))[0, 0])


@pytest.mark.parametrize("spatial_dims", (2, 3))
def test_surface_dice_agrees_with_monai(spatial_dims):
    rng = np.random.default_rng(spatial_dims)
    shape, spacing = ((40, 32), (0.7, 1.3)) if spatial_dims == 2 else ((24, 20, 10), (0.8, 1.1, 2.7))
    for trial in range(3):
        pred, ref = _similar_blobs(rng, shape)
        pred[0] |= trial == 2  # a mask on the array's border: border voxels are surface voxels in both
        for tolerance in (0.5, 1.0, 2.05, 4.0):
            ours = surface_dice(pred, ref, spacing, tolerance)
            assert ours == pytest.approx(_monai_surface_dice(pred, ref, spacing, tolerance), abs=1e-6)
            assert 0.0 <= ours <= 1.0


def test_surface_dice_known_values_and_empty_conventions():
    ref = _box()
    assert surface_dice(ref, ref, SPACING, 0.0) == 1.0
    moved = np.roll(ref, 1, axis=2)  # top and bottom faces 3 mm from the other surface, the sides 0 mm
    assert surface_dice(moved, ref, SPACING, 3.0) == 1.0
    below = surface_dice(moved, ref, SPACING, 2.9)
    assert below < 1.0 and below == pytest.approx(_monai_surface_dice(moved, ref, SPACING, 2.9))
    empty = np.zeros_like(moved)
    assert math.isnan(surface_dice(empty, empty, SPACING, 1.0))
    assert math.isnan(_monai_surface_dice(empty, empty, SPACING, 1.0))
    assert surface_dice(empty, moved, SPACING, 1.0) == 0.0 == _monai_surface_dice(empty, moved, SPACING, 1.0)
    with pytest.raises(ValueError, match="tolerance must be a finite number of mm >= 0, got -1"):
        surface_dice(moved, moved, SPACING, -1.0)


# --- the threshold sweep ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("inclusive", [False, True])
@pytest.mark.parametrize("spatial_dims", [2, 3])
def test_the_sweep_equals_thresholding_and_scoring_each_threshold(spatial_dims, inclusive):
    """Unsorted thresholds, scores exactly on a threshold (in only with `inclusive`), a channel whose reference is
    empty (NaN where nothing is predicted either) and voxels no threshold can select (-inf)."""
    gen = torch.Generator().manual_seed(spatial_dims)
    scores = torch.rand((3,) + (7,) * spatial_dims, generator=gen)
    scores[0, 0] = 0.5
    scores[1, 1] = -math.inf
    ref = torch.rand(scores.shape, generator=gen) > 0.6
    ref[2] = False
    thresholds = (0.5, 0.05, 0.95, 0.3, 0.99, 1.0)
    swept = threshold_sweep(scores, ref, thresholds, inclusive=inclusive)
    passes = (lambda s, t: s >= t) if inclusive else (lambda s, t: s > t)
    expected = torch.tensor(
        [[dice(passes(scores[c], torch.tensor(t)), ref[c]) for c in range(3)] for t in thresholds], dtype=torch.float64
    )
    assert swept.shape == (len(thresholds), 3)
    assert torch.allclose(swept, expected, equal_nan=True)
    assert swept[:, 2].isnan().any() and (swept[:, 2].nan_to_num(0) == 0).all()  # empty reference: NaN or 0
    assert not torch.equal(swept[0], threshold_sweep(scores, ref, (0.5,), inclusive=not inclusive)[0])


def test_best_threshold_per_channel_ignores_undefined_cases_and_takes_the_lowest_on_ties():
    nan = math.nan
    dice_cases = torch.tensor(
        [
            [[0.2, 0.9], [0.8, 0.9], [0.8, 0.1]],  # case 1: (3 thresholds, 2 channels)
            [[0.4, nan], [0.6, nan], [0.6, nan]],
        ]
    )  # case 2 lacks channel 2 in both maps
    chosen, mean = best_threshold(dice_cases, (0.1, 0.2, 0.3))
    assert chosen == (0.2, 0.1) and mean.tolist() == pytest.approx([0.7, 0.9])
    none_defined = torch.full((1, 2, 1), nan)
    chosen, mean = best_threshold(none_defined, (0.4, 0.6))
    assert chosen == (0.4,) and math.isnan(mean.item())
