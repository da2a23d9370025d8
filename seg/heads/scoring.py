"""Scoring a network on held-out cases in the preprocessed space: the mean Dice that validation during training
reports (sliding windows at the training patch, argmax, per class the mean over cases, then the mean over
classes), and the training loss over windows that tile each case, for gradients."""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass

import torch
from torch import nn

from seg.data.cache import Cache
from seg.metrics import dice_per_class
from seg.model_folder import ModelBundle
from seg.models.predict import sliding_window_logits
from seg.train.loss import DeepSupervisionLoss

SLICES_PER_BATCH = 8  # a 2D network on 3D cases: slices per backward pass of the gradient proxy


@dataclass
class ScoringCase:
    case_id: str
    image: torch.Tensor  # (1, C, *spatial) float32, preprocessed
    label: torch.Tensor  # (1, 1, *spatial) class ids


def held_out_cases(cache_dir: str, fold: int | str, max_cases: int | None = None) -> list[ScoringCase]:
    """The fold's evaluation cases from the preprocessed cache (validation fold; for "all", the test part)."""
    cache = Cache(cache_dir)
    ids = sorted(cache.evaluation_ids(fold))[: max_cases or None]
    cases = []
    for case_id in ids:
        c = cache.case(case_id, max_foreground=0)
        cases.append(ScoringCase(case_id, torch.from_numpy(c.image)[None], torch.from_numpy(c.label)[None].long()))
    return cases


@dataclass
class Scorer:
    """How a model is scored: its patch, overlap and slice axis, on fixed cases."""

    cases: list[ScoringCase]
    patch: tuple[int, ...]
    classes: int
    overlap: float = 0.5
    slice_axis: int | None = None

    @classmethod
    def for_model(cls, model: ModelBundle, cases: list[ScoringCase]) -> Scorer:
        return cls(cases, model.patch_size, len(model.class_names), model.config.train.val_overlap, model.slice_axis)

    @torch.no_grad()
    def dice(self, net: nn.Module) -> float:
        """Mean Dice over foreground classes of the per-class means over cases (classes in no case left out)."""
        per_case = []
        for case in self.cases:
            logits = sliding_window_logits(
                net, case.image, self.patch, self.overlap, 2, self.slice_axis if self.slice_axis is not None else 2
            )
            per_case.append(dice_per_class(logits.argmax(1), case.label[:, 0], self.classes))
        return float(torch.nanmean(torch.nanmean(torch.stack(per_case), dim=0)))

    def windows(self, net_dims: int) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """(image, label) batches that tile every case with patch-sized windows (the last one per axis moved back
        to end at the edge); a 2D network on 3D cases gets batches of slices."""
        for case in self.cases:
            image, label = case.image, case.label
            if image.ndim - 2 == net_dims + 1:  # slices along the slice axis become the batch
                axis = 2 + (self.slice_axis if self.slice_axis is not None else 2)
                image, label = image.movedim(axis, 0).squeeze(1), label.movedim(axis, 0).squeeze(1)
            for start in range(0, image.shape[0], SLICES_PER_BATCH):
                img, lab = image[start : start + SLICES_PER_BATCH], label[start : start + SLICES_PER_BATCH]
                for crop in _tiles(img.shape[2:], self.patch[-net_dims:]):
                    yield img[(slice(None), slice(None), *crop)], lab[(slice(None), slice(None), *crop)]

    def loss(self, net: nn.Module, image: torch.Tensor, label: torch.Tensor) -> torch.Tensor:
        """The training loss (Dice + cross-entropy) of the full-resolution logits."""
        return DeepSupervisionLoss().single(net(image), label)


def _tiles(shape, patch) -> Iterator[tuple[slice, ...]]:
    starts = [sorted({*range(0, max(n - p, 0) + 1, p), max(n - p, 0)}) for n, p in zip(shape, patch, strict=True)]
    grid = [[]]
    for axis_starts, p in zip(starts, patch, strict=True):
        grid = [g + [slice(s, s + p)] for g in grid for s in axis_starts]
    yield from (tuple(g) for g in grid)


def spearman(a: list[float], b: list[float]) -> float:
    """Spearman's rank correlation (average ranks for ties); NaN for fewer than 3 pairs or a constant side."""
    if len(a) < 3:
        return math.nan
    from scipy.stats import spearmanr

    rho = spearmanr(a, b).statistic
    return float(rho) if rho == rho else math.nan
