"""Postprocessing decided on data, as nnU-Net decides it: keeping only the largest connected component, for the
whole foreground and then per class, is tried on cross-validation predictions and kept only where it raises the
mean Dice. The decision is a small JSON record applied to every label map `seg infer` writes."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field

import numpy as np

from seg.metrics import dice, nanmean

FILE = "postprocessing.json"  # beside the model folders it was decided for


@dataclass(frozen=True)
class Postprocessing:
    whole_foreground: bool = False  # keep the largest component of all foreground classes together
    per_class: tuple[int, ...] = ()  # class ids whose largest component alone is kept
    evidence: dict = field(default_factory=dict, compare=False)  # mean Dice before/after per step, cases used

    @property
    def is_identity(self) -> bool:
        return not self.whole_foreground and not self.per_class

    def apply(self, labels: np.ndarray) -> np.ndarray:
        """`labels` (*spatial) integer class ids -> the same with the decided components removed (to 0)."""
        out = labels
        if self.whole_foreground:
            out = np.where(largest_component(out > 0), out, 0).astype(labels.dtype)
        for k in self.per_class:
            mask = out == k
            out = np.where(mask & ~largest_component(mask), 0, out).astype(labels.dtype)
        return out

    def to_dict(self) -> dict:
        d = asdict(self)
        d["per_class"] = list(self.per_class)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> Postprocessing:
        return cls(
            bool(d.get("whole_foreground", False)),
            tuple(int(k) for k in d.get("per_class", ())),
            dict(d.get("evidence", {})),
        )

    def describe(self) -> str:
        if self.is_identity:
            return "no postprocessing (keeping the largest component raised no mean Dice)"
        parts = ["largest foreground component"] if self.whole_foreground else []
        parts += [f"largest component of class {k}" for k in self.per_class]
        return "keep " + ", ".join(parts)


def largest_component(mask: np.ndarray) -> np.ndarray:
    """The largest face-connected component of a boolean mask (the mask itself when it has at most one)."""
    from scipy import ndimage

    components, n = ndimage.label(mask)
    if n <= 1:
        return mask.astype(bool)
    sizes = np.bincount(components.ravel())
    sizes[0] = 0
    return components == int(np.argmax(sizes))


def mean_dice(
    pairs: Sequence[tuple[np.ndarray, np.ndarray]], classes: Sequence[int], plan: Postprocessing
) -> dict[int, float]:
    """Per class: the mean Dice over the cases where the class is in the reference or the prediction."""
    values: dict[int, list[float]] = {k: [] for k in classes}
    for pred, ref in pairs:
        post = plan.apply(pred)
        for k in classes:
            values[k].append(dice(post == k, ref == k))
    return {k: nanmean(v) for k, v in values.items()}


def decide(pairs: Sequence[tuple[np.ndarray, np.ndarray]], classes: Sequence[int]) -> Postprocessing:
    """Try the whole-foreground step, then each class's, keeping a step only where it raises the mean Dice (over
    the foreground classes for the first, of that class for the others) on `pairs` (prediction, reference)."""
    base = mean_dice(pairs, classes, Postprocessing())
    evidence: dict = {"cases": len(pairs), "none": base}
    plan = Postprocessing()
    trial = Postprocessing(whole_foreground=True)
    after = mean_dice(pairs, classes, trial)
    evidence["whole_foreground"] = after
    if np.nanmean(list(after.values())) > np.nanmean(list(base.values())):
        plan, base = trial, after
    keep = []
    for k in classes:
        trial = Postprocessing(plan.whole_foreground, (*keep, k))
        after = mean_dice(pairs, classes, trial)
        evidence[f"class_{k}"] = after
        if after[k] > base[k]:
            keep.append(k)
            base = after
    return Postprocessing(plan.whole_foreground, tuple(keep), evidence)
