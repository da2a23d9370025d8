"""The dataset as training sees it: class names, the model/data check, the dataset name."""

from __future__ import annotations

import pytest
from cache_fixture import tiny_fingerprint

from seg.config import ModelConfig
from seg.train.dataset import check_model_fits_data, class_names


def test_model_must_fit_data():
    fp = tiny_fingerprint(3, num_channels=2, class_names=("bg", "a"))
    with pytest.raises(
        ValueError, match=r"model.in_channels=1 but cache/fingerprint.json has 2.*Set model.in_channels: 2"
    ):
        check_model_fits_data(ModelConfig(in_channels=1, out_channels=2), fp, "cache")
    with pytest.raises(ValueError, match=r"model.out_channels=3 .* has 2 classes.*Set model.out_channels: 2"):
        check_model_fits_data(ModelConfig(in_channels=2, out_channels=3), fp, "cache")
    assert class_names(fp, 2) == ["bg", "a"]


def test_the_dataset_name_comes_from_the_cache_not_from_the_config():
    import dataclasses

    from seg.tracking.model import registry_name
    from seg.train.dataset import dataset_name

    made_from = dataclasses.replace(tiny_fingerprint(), root="/data/Task04_Hippocampus")
    assert registry_name("auto", dataset_name(made_from)) == "seg-Task04_Hippocampus"  # data.root null in the config
    assert dataset_name(tiny_fingerprint()) == "test"  # no folder recorded: the dataset's own name
