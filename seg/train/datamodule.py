"""LightningDataModule over the preprocessed cache: random patches for training, whole volumes for validation."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence

import lightning as L
import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, get_worker_info

from seg.config import DataConfig, TrainConfig
from seg.data.cache import Cache, CachedCase
from seg.errors import ModelDataMismatch
from seg.train.augment import build_augmentation
from seg.train.sampling import sample_patch
from seg.train.shards import check_shards, gather_shards, shard


def default_patch_size(
    median: Sequence[float] | None, spatial_dims: int, multiple: Sequence[int], cap: int = 160
) -> tuple[int, ...]:
    """The dataset's median (preprocessed) shape, capped, rounded to the nearest multiple of the network's size
    multiple (at least one multiple). Nearest, not up: with a multiple of 16, rounding 35 up to 48 would spend
    60% more voxels per patch on padding; a patch a little smaller than the median volume loses nothing, since
    inference slides the window over the whole volume."""
    if median is None:
        raise ModelDataMismatch("fingerprint.json has no median shape; rerun `seg preprocess` or set train.patch_size.")
    median = list(median)[-spatial_dims:]
    return tuple(int(max(1, math.floor(min(m, cap) / k + 0.5)) * k) for m, k in zip(median, multiple, strict=True))


class PatchDataset(Dataset):
    """`length` random patches per epoch (index-independent), reproducible per seed, epoch and worker."""

    def __init__(
        self, cases: list[CachedCase], patch: Sequence[int], length: int, cfg: TrainConfig, slice_axis: int | None
    ):
        self.cases, self.patch, self.length, self.cfg, self.slice_axis = cases, tuple(patch), length, cfg, slice_axis
        self.augment = build_augmentation(cfg.augment, patch)
        self.epoch = 0
        self._rng: np.random.Generator | None = None

    def __len__(self) -> int:
        return self.length

    def set_epoch(self, epoch: int) -> None:
        """Start the patches of `epoch` afresh, reproducible from (seed, epoch, rank, worker stream)."""
        self.epoch, self._rng = epoch, None

    def _generator(self) -> np.random.Generator:
        if self._rng is None:
            worker = get_worker_info()
            rank = torch.distributed.get_rank() if torch.distributed.is_initialized() else 0
            # a worker process starts afresh every epoch with a copy of this dataset; its seed, which the DataLoader
            # draws from the (seeded) main process every epoch, keeps each epoch's patches new and reproducible
            stream = worker.seed if worker else 0
            self._rng = np.random.default_rng([self.cfg.seed, self.epoch, rank, stream])
            self.augment.set_random_state(seed=int(self._rng.integers(2**31)))
        return self._rng

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        rng = self._generator()
        case = self.cases[int(rng.integers(len(self.cases)))]
        image, label = sample_patch(case, self.patch, rng, self.cfg.foreground_fraction, self.slice_axis)
        out = self.augment({"image": torch.from_numpy(image), "label": torch.from_numpy(label.astype(np.float32))})
        # plain tensors: a MONAI MetaTensor would route every op of the network through its __torch_function__
        image, label = (torch.as_tensor(out[k]).as_subclass(torch.Tensor) for k in ("image", "label"))
        return {"image": image.float(), "label": label.round().long(), "case_id": case.case_id}


class VolumeDataset(Dataset):
    def __init__(self, cases: list[CachedCase]):
        self.cases = cases

    def __len__(self) -> int:
        return len(self.cases)

    def __getitem__(self, index: int) -> dict:
        c = self.cases[index]
        return {
            "image": torch.from_numpy(c.image),
            "label": torch.from_numpy(c.label.astype(np.int64)),
            "case_id": c.case_id,
        }


class SegDataModule(L.LightningDataModule):
    """`sampling` (the objective's; None: patches with their masks) changes how training samples: SEAM's
    (`seg.seam.presence.PresenceSampling`) yields {"image", "presence"} items."""

    def __init__(
        self, data: DataConfig, train: TrainConfig, spatial_dims: int, size_multiple: Sequence[int], sampling=None
    ):
        super().__init__()
        self.data_cfg, self.cfg, self.sampling = data, train, sampling
        self.cache_dir = data.cache_dir
        self.cache = Cache(data.cache_dir)
        self.fingerprint = self.cache.fingerprint
        data_dims = self.fingerprint.spatial_dims
        if spatial_dims not in (data_dims, data_dims - 1):
            raise ModelDataMismatch(
                f"model.spatial_dims={spatial_dims} does not fit {data_dims}D data in {self.cache_dir}. "
                f"Use spatial_dims={data_dims} (or {data_dims - 1} to train on slices)."
            )
        self.slice_axis = train.slice_axis if spatial_dims == data_dims - 1 else None
        if sampling is not None:
            sampling.check(spatial_dims, data_dims, self.slice_axis)
        self.patch_size = tuple(
            train.patch_size
            or default_patch_size(self.fingerprint.median_shape_after_preprocessing, spatial_dims, size_multiple)
        )
        if sampling is not None:
            self.patch_size = sampling.patch_size(self.patch_size, size_multiple)
        if len(self.patch_size) != spatial_dims:
            raise ModelDataMismatch(
                f"train.patch_size {list(self.patch_size)} needs {spatial_dims} entries for a {spatial_dims}D model."
            )
        split = self.cache.split(data.fold)
        self.train_ids, self.val_ids = list(split.train), list(split.val)
        self.shards = [self.train_ids]  # the training cases of each DDP rank, by global rank (set up by `setup`)
        self.train_cases: list[CachedCase] = []  # this rank's
        self.val_cases: list[CachedCase] = []
        if sampling is not None and sampling.whole_cases:
            self.setup()
            self.patch_size = self.whole_case_patch(size_multiple)

    def setup(self, stage: str | None = None) -> None:
        """This rank's training cases and its patch dataset; all validation cases (Lightning shards them). Before
        the trainer exists (timing, planning) the process counts as the only one."""
        rank, world = (self.trainer.global_rank, self.trainer.world_size) if self.trainer else (0, 1)
        self._take_shard(rank, world)
        if not self.val_cases:
            self.val_cases = [self.cache.case(i, seed=self.cfg.seed) for i in self.val_ids]
        cfg = self.cfg
        if self.sampling is not None:
            cfg = dataclasses.replace(cfg, foreground_fraction=self.sampling.foreground_fraction)
        self.train_set = PatchDataset(
            self.train_cases, self.patch_size, self.cfg.steps_per_epoch * self.cfg.batch_size, cfg, self.slice_axis
        )
        if self.sampling is not None:
            self.train_set = self.sampling.dataset(self.train_set, self.fingerprint.class_names, self.train_ids)

    def _take_shard(self, rank: int, world: int) -> None:
        """Rank `rank` of `world` trains on its own share of the training cases (see `seg.train.shards`); with
        several ranks each says how many, and every rank learns every rank's share."""
        own = shard(self.train_ids, rank, world)
        loaded = {c.case_id: c for c in self.train_cases}
        self.train_cases = [loaded.get(i) or self.cache.case(i, seed=self.cfg.seed) for i in own]
        self.shards = gather_shards(own, world)
        check_shards(self.shards, self.train_ids)
        if world > 1:
            print(f"seg train: rank {rank} of {world} trains on {len(own)} of {len(self.train_ids)} cases", flush=True)

    def whole_case_patch(self, size_multiple: Sequence[int]) -> tuple[int, ...]:
        """With a labels file each sample is a whole case: the largest training case, rounded up to the multiple."""
        shapes = np.array([c.image.shape[1:] for c in self.train_cases])
        return tuple(int(math.ceil(s / m) * m) for s, m in zip(shapes.max(0), size_multiple, strict=True))

    def train_dataloader(self) -> DataLoader:
        self.train_set.set_epoch(self.trainer.current_epoch if self.trainer else 0)
        return DataLoader(
            self.train_set,
            batch_size=self.cfg.batch_size,
            num_workers=self.cfg.num_workers,
            persistent_workers=False,
            drop_last=True,
        )

    def val_dataloader(self) -> DataLoader:
        return DataLoader(VolumeDataset(self.val_cases), batch_size=1, num_workers=0, collate_fn=_one)


def _one(items: list[dict]) -> dict:
    item = items[0]
    return {"image": item["image"][None], "label": item["label"][None], "case_id": item["case_id"]}
