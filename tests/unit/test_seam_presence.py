"""Presence labels (`seg.seam.presence`): from masks or a labels file, and the training items that carry them."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from seg.config import ConfigError, SeamConfig
from seg.seam.presence import PresenceDataset, PresenceSampling, presence_of, read_labels_file


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


def test_seam_sampling_halves_the_patch_or_takes_seam_patch_size_and_refuses_slices(tmp_path):
    """SEAM's data module samples patches anywhere, half the network's patch (presence varies between them) unless
    seam.patch_size says; a 2D network on 3D slices is refused; a labels file makes every sample a whole case."""
    sampling = PresenceSampling(SeamConfig())
    assert sampling.patch_size((32, 48, 30), (4, 4, 4)) == (16, 24, 16) and sampling.foreground_fraction == 0.0
    assert PresenceSampling(SeamConfig(patch_size=(8, 8, 8))).patch_size((32, 48, 32), (4, 4, 4)) == (8, 8, 8)
    with pytest.raises(ValueError, match="set model.spatial_dims: 3"):
        sampling.check(2, 3, 0)
    sampling.check(3, 3, None)
    assert not sampling.whole_cases and sampling.read_case_labels(["background", "a"], ["x"]) is None
    path = tmp_path / "labels.json"
    path.write_text(json.dumps({"x": ["a"]}))
    from_file = PresenceSampling(SeamConfig(labels_file=str(path)))
    assert from_file.whole_cases and from_file.read_case_labels(["background", "a"], ["x"])["x"].tolist() == [1.0]
    assert from_file.case_labels is not None  # kept: validation reads the cases' presence from it too
