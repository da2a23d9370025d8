"""Image-level labels for SEAM training: which foreground classes a patch (or a whole case) holds. The training
samples carry these labels and the image, never the mask.

- From masks (the default): a random patch's presence is read off its label patch, and the label is dropped.
  Patches smaller than the case (`seam.patch_size`) make presence informative: some hold one class, some none.
- From a labels file (`seam.labels_file`, JSON `{case id: [class names or indices present]}`), for users who only
  have presence labels: the sample is the whole case, so its presence is the file's entry.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch
from torch.utils.data import Dataset

from seg.config import ConfigError
from seg.errors import ModelDataMismatch

if TYPE_CHECKING:
    from seg.config import SeamConfig


def presence_of(label: np.ndarray | torch.Tensor, num_classes: int) -> torch.Tensor:
    """(K - 1,) float: 1 where the label map holds class k (k = 1..K-1)."""
    values = torch.as_tensor(np.asarray(label)).long().flatten()
    counts = torch.bincount(values, minlength=num_classes)[1:num_classes]
    return (counts > 0).float()


def read_labels_file(path: str | Path, class_names: Sequence[str], case_ids: Sequence[str]) -> dict[str, torch.Tensor]:
    """{case id: (K - 1,) presence} for `case_ids` from a JSON file; one-line errors name the file and the case."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(
            f"seam.labels_file {path}: not found. Write JSON {{case id: [classes present]}}, or set "
            f"seam.labels_file: null to take presence from the masks."
        )
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise ConfigError(f"seam.labels_file {path}: not valid JSON ({e.msg}, line {e.lineno}).") from None
    if not isinstance(data, Mapping):
        raise ConfigError(
            f"seam.labels_file {path}: expected an object {{case id: [classes present]}}, got {type(data).__name__}."
        )
    names = list(class_names)
    out = {}
    for case_id in case_ids:
        if case_id not in data:
            raise ConfigError(
                f"seam.labels_file {path}: no entry for training case {case_id!r}; add one "
                f"(an empty list for a case with no foreground)."
            )
        vec = torch.zeros(len(names) - 1)
        for c in data[case_id]:
            k = names.index(c) if c in names else c
            if not isinstance(k, int) or not 1 <= k < len(names):
                raise ConfigError(
                    f"seam.labels_file {path}: case {case_id!r} lists {c!r}, not a foreground class; "
                    f"use one of {names[1:]} or 1..{len(names) - 1}."
                )
            vec[k - 1] = 1.0
        out[case_id] = vec
    return out


class PresenceSampling:
    """How the training data module samples for SEAM: patches anywhere (foreground oversampling would place them by
    the masks, which SEAM does not have), half the network's patch unless `seam.patch_size` says (presence varies
    between patches), or whole cases with a labels file; each item {"image", "presence"}."""

    foreground_fraction = 0.0

    def __init__(self, seam: SeamConfig):
        self.seam = seam
        self.case_labels: dict[str, torch.Tensor] | None = None  # from the labels file, once read

    @property
    def whole_cases(self) -> bool:
        """A labels file labels whole cases: each sample is one."""
        return bool(self.seam.labels_file)

    def check(self, spatial_dims: int, data_dims: int, slice_axis: int | None) -> None:
        if slice_axis is not None:
            raise ModelDataMismatch(
                f"train.supervision seam trains on whole {data_dims}D patches and labels; set "
                f"model.spatial_dims: {data_dims} (a {spatial_dims}D network on slices is not supported)."
            )

    def patch_size(self, network_patch: Sequence[int], size_multiple: Sequence[int]) -> tuple[int, ...]:
        if self.seam.patch_size:
            return tuple(self.seam.patch_size)
        return tuple(max(m, int(round(p / 2 / m)) * m) for p, m in zip(network_patch, size_multiple, strict=True))

    def read_case_labels(self, class_names: Sequence[str], train_ids: Sequence[str]) -> dict[str, torch.Tensor] | None:
        """Presence per training case from `seam.labels_file` (None: from each patch's mask)."""
        if self.whole_cases and self.case_labels is None:
            self.case_labels = read_labels_file(self.seam.labels_file, class_names, train_ids)
        return self.case_labels

    def dataset(self, patches: Dataset, class_names: Sequence[str], train_ids: Sequence[str]) -> PresenceDataset:
        return PresenceDataset(patches, len(class_names), self.read_case_labels(class_names, train_ids))


class PresenceDataset(Dataset):
    """Wraps the patch dataset: each item is {"image", "presence"} (the label patch only decides presence)."""

    def __init__(self, patches: Dataset, num_classes: int, case_labels: Mapping[str, torch.Tensor] | None = None):
        self.patches, self.num_classes, self.case_labels = patches, num_classes, case_labels

    def __len__(self) -> int:
        return len(self.patches)

    def set_epoch(self, epoch: int) -> None:
        self.patches.set_epoch(epoch)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        item = self.patches[index]
        if self.case_labels is not None:
            presence = self.case_labels[item["case_id"]]
        else:
            presence = presence_of(item["label"], self.num_classes)
        return {"image": item["image"], "presence": presence}


def presence_counts(dataset: PresenceDataset, samples: int) -> dict[str, int]:
    """How many of `samples` drawn patches hold no class, one class, or several (reported: presence must vary)."""
    counts = {"none": 0, "one": 0, "several": 0}
    for i in range(samples):
        n = int(dataset[i]["presence"].sum())
        counts["none" if n == 0 else "one" if n == 1 else "several"] += 1
    return counts


def describe_presence(dm, seed: int, samples: int = 200) -> str:
    """One line on how varied the presence labels are (they teach nothing when nearly every patch holds every
    class), with the fix when they are not; the draws are seeded and leave training's own patches unchanged."""
    dm.setup("fit")
    dataset = dm.train_set
    dataset.set_epoch(10**9 + seed)  # its own stream; training starts afresh from set_epoch(0)
    counts = presence_counts(dataset, samples)
    dataset.set_epoch(0)
    line = (
        f"SEAM presence labels of {samples} drawn {'cases' if dataset.case_labels else 'patches'} "
        f"{list(dm.patch_size)}: {counts['none']} with no class, {counts['one']} with one, "
        f"{counts['several']} with several"
    )
    if counts["several"] > 0.9 * samples and dataset.case_labels is None:
        line += "; nearly every patch holds every class, so presence says little: set a smaller seam.patch_size"
    return line
