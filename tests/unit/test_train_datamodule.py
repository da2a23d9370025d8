"""The data module: new patches every epoch, in workers too, and the default patch size."""

from __future__ import annotations

import numpy as np
import torch

from seg.data.cache import CachedCase as Case
from seg.train.datamodule import default_patch_size


def test_worker_processes_draw_new_patches_every_epoch():
    """Lightning builds the train loader once; a worker is started afresh every epoch and must not replay epoch 0."""
    from seg.config import AugmentConfig, TrainConfig
    from seg.train.datamodule import PatchDataset

    image = np.random.default_rng(0).random((1, 24, 24, 24), dtype=np.float32)
    label = np.zeros((1, 24, 24, 24), np.uint8)
    label[0, 10:14, 10:14, 10:14] = 1
    case = Case("c", image, label, np.argwhere(label[0] > 0))
    none = AugmentConfig(flip_prob=0, rot90_prob=0, affine_prob=0, intensity_prob=0, gamma_prob=0, noise_prob=0)
    dataset = PatchDataset([case], (8, 8, 8), 4, TrainConfig(augment=none), None)
    torch.manual_seed(0)
    loader = torch.utils.data.DataLoader(dataset, batch_size=4, num_workers=1)
    first, second = (next(iter(loader))["image"] for _ in range(2))
    assert not torch.equal(first, second)
    torch.manual_seed(0)
    assert torch.equal(next(iter(loader))["image"], first)  # and reproducible from the seed


def test_set_epoch_draws_that_epochs_patches_again():
    """The data module starts each epoch's patches with set_epoch: a new epoch is new, the same epoch replays."""
    from seg.config import TrainConfig
    from seg.train.datamodule import PatchDataset

    image = np.random.default_rng(0).random((1, 24, 24, 24), dtype=np.float32)
    label = np.zeros((1, 24, 24, 24), np.uint8)
    label[0, 10:14, 10:14, 10:14] = 1
    dataset = PatchDataset([Case("c", image, label, np.argwhere(label[0] > 0))], (8, 8, 8), 3, TrainConfig(), None)
    epoch = lambda: torch.stack([dataset[i]["image"] for i in range(len(dataset))])  # noqa: E731
    first = epoch()
    dataset.set_epoch(1)
    assert not torch.equal(epoch(), first)
    dataset.set_epoch(0)
    assert torch.equal(epoch(), first)  # augmentation included: it is reseeded from the same generator


def test_default_patch_size_rounds_to_nearest_multiple():
    assert default_patch_size([35, 50, 36], 3, (8, 8, 8)) == (32, 48, 40)
    assert default_patch_size([35, 50, 36], 3, (16, 16, 16)) == (32, 48, 32)
    assert default_patch_size([5, 40, 24], 3, (16, 16, 16)) == (16, 48, 32)
    assert default_patch_size([500, 500], 2, (16, 16), cap=256) == (256, 256)
