"""Largest-component postprocessing is kept only where it raises mean Dice on the cases it is decided on."""

from __future__ import annotations

import numpy as np

from seg.infer.postprocess import Postprocessing, decide, largest_component


def _case(spurious: bool) -> tuple[np.ndarray, np.ndarray]:
    ref = np.zeros((20, 20, 20), np.uint8)
    ref[4:10, 4:10, 4:10] = 1
    ref[10:14, 4:10, 4:10] = 2
    pred = ref.copy()
    if spurious:
        pred[17:19, 17:19, 17:19] = 1  # a false island of class 1, far from the structure
    return pred, ref


def test_largest_component_keeps_the_biggest_island():
    mask = np.zeros((10, 10), bool)
    mask[0:3, 0:3] = True
    mask[6:8, 6:8] = True
    kept = largest_component(mask)
    assert kept.sum() == 9 and kept[1, 1] and not kept[7, 7]
    assert largest_component(np.zeros((4, 4), bool)).sum() == 0


def test_islands_are_removed_where_that_raises_dice_and_kept_where_it_does_not():
    pairs = [_case(spurious=True), _case(spurious=False)]
    plan = decide(pairs, [1, 2])
    assert plan.whole_foreground  # the island lowers class 1's Dice; removing it raises the mean
    assert plan.per_class == ()  # after that nothing is left to gain per class
    assert plan.evidence["whole_foreground"][1] == 1.0 and plan.evidence["none"][1] < 1.0
    fixed = plan.apply(pairs[0][0])
    assert np.array_equal(fixed, pairs[0][1])


def test_a_structure_made_of_two_parts_is_not_cut():
    """Two separate true components of class 2 (as left and right structures): the largest-component step would
    delete one of them, which lowers Dice, so it is not kept."""
    ref = np.zeros((20, 20, 20), np.uint8)
    ref[2:6, 2:6, 2:6] = 2
    ref[14:18, 14:18, 14:18] = 2
    ref[8:12, 8:12, 8:12] = 1
    plan = decide([(ref.copy(), ref)], [1, 2])
    assert plan.is_identity and "no postprocessing" in plan.describe()
    assert Postprocessing.from_dict(plan.to_dict()) == plan
