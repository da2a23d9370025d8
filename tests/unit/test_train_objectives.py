"""The objective interface training calls (`seg.train.objectives.Objective`): every objective a config can name
implements all of it, and each decides what its validation logs and records."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from seg.config import AugmentConfig, Config, TrainConfig, from_dict
from seg.train.objectives import OBJECTIVES, FullSupervision, Objective, dice_per_class, objective_for

MEMBERS = [name for name in dir(Objective) if not name.startswith("_")] + list(Objective.__annotations__)


@pytest.mark.parametrize("supervision", sorted(OBJECTIVES))
def test_every_objective_implements_the_whole_interface(supervision):
    cfg = from_dict(Config, {"train": {"supervision": supervision}})
    objective = objective_for(cfg)
    missing = [name for name in MEMBERS if not hasattr(objective, name)]
    assert not missing, f"{type(objective).__name__} lacks {missing}"
    assert set(MEMBERS) >= {"loss", "validate", "after_fit", "training_config", "sampling", "validation_images"}


def test_full_supervision_averages_the_cases_that_define_a_class_and_changes_nothing_after_fit():
    objective = FullSupervision(TrainConfig())
    cfg = Config()
    assert objective.training_config(cfg) is cfg and objective.sampling is None
    assert objective.after_fit(None, None, ["background", "a"]) == ({}, None)
    cases = torch.tensor([[1.0, 0.5], [0.0, 0.5], [float("nan"), 0.2]])  # class a in neither map of the third case
    dice, extra = objective.score_validation(cases, ["background", "a", "b"])
    assert dice.tolist() == pytest.approx([0.5, 0.4]) and extra == {}


def test_seam_trains_with_its_own_augment_and_logs_the_background_scores_it_chooses():
    augment = AugmentConfig(flip_prob=0.5, rot90_prob=0.5)
    cfg = from_dict(Config, {"train": {"supervision": "seam"}})
    cfg = dataclasses.replace(cfg, train=dataclasses.replace(cfg.train, augment=augment))
    objective = objective_for(cfg)
    trained = objective.training_config(cfg)
    assert (trained.train.augment.flip_prob, trained.train.augment.rot90_prob) == (0.0, 0.0)
    assert objective.sampling is not None
    assert objective.timing_key(cfg.model) != objective_for(Config()).timing_key(cfg.model)  # its own timing
    dice = torch.zeros(2, 23, 2)  # (cases, backgrounds, classes)
    dice[:, 3, 0], dice[:, 7, 1] = 0.8, 0.6
    best, extra = objective.score_validation(dice, ["background", "a", "b"])
    assert best.tolist() == pytest.approx([0.8, 0.6])
    assert extra == {"val/background_a": 0.04, "val/background_b": pytest.approx(0.2)}


def test_full_supervision_scores_a_case_with_the_dice_of_each_foreground_class():
    label = torch.zeros(1, 1, 4, 4, dtype=torch.long)
    label[..., :2, :] = 1
    pred = label.clone()
    pred[..., 0, :] = 2
    d = dice_per_class(pred, label, 3)
    assert d[0].item() == pytest.approx(2 * 4 / (4 + 8))
    assert d[1].item() == 0.0
