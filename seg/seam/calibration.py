"""After SEAM training: per class, which of seam.infer_scales its map sums, the shift of its map, whether the PCM
refines it and its background score (the pseudo masks' threshold), chosen on the validation cases only (SEAM's own
evaluation sweeps its score on the ground truth it reports, a complaint in its issues #13 and #31), set on the
network and reported with the cases that chose them.

The shift: a classifier learns that a class is in a patch, not exactly where; its maps may sit a few voxels off the
structures, the same way on every case of a model. The scales: each scale's maps place a class differently (one
class best placed by the small scales, another by the large ones), so one sum for all classes trades one class
against another.

The PCM: it helps some models and not others and blurs classes that look alike,
so with `seam.refine: auto` each class takes the PCM-refined maps or the classifier's, whichever scores better: the
search below runs from the refined maps of every class and from the classifier's, and the better result is kept.

The search, coordinate-wise from every scale and no shift: per class in turn (twice over the classes), the subset of
scales, then per axis the shift in -max_shift..max_shift, then (auto) the other maps, that raises the objective, the
classes' mean Dice over the validation cases with each class at its best background score. Only a strict gain moves
the search, so maps that sit right stay where they are and every scale stays summed unless dropping some helps.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass

import torch

from seg.config import SeamConfig
from seg.seam.network import background_scores, combine, pick
from seg.seam.sweep import BACKGROUNDS, choose_background, sweep_backgrounds


@dataclass
class Calibration:
    scale_mask: torch.Tensor  # (K - 1, S): 1 where class k sums scale s
    shift: list[list[int]]  # per class, voxels per axis
    refine: list[bool] | None  # per class, PCM-refined maps (True) or the classifier's; None: not chosen
    dice: torch.Tensor  # (cases, len(backgrounds), K - 1) Dice at these scales and shifts


def calibrate(
    raw: list[torch.Tensor],
    presence: list[torch.Tensor],
    labels: list[torch.Tensor],
    num_classes: int,
    max_shift: int,
    backgrounds=BACKGROUNDS,
    fixed: list[int] | None = None,
    shift: tuple[int, ...] | None = None,
    choose_scales: bool = True,
    rounds: int = 2,
    refined: list[torch.Tensor] | None = None,
) -> Calibration:
    """raw: per case (S, 1, K - 1, *size) per-scale maps (`SeamNet.scale_maps`); presence: per case (1, K - 1);
    labels: per case (1, 1, *size) masks. `fixed`: per class, the index of its own (fixed) background score in
    `backgrounds`, else each class at its best; `shift`: one fixed shift for every class, else chosen. `refined`
    given (the PCM-refined maps, raw the classifier's; `SeamNet.scale_maps_both`): per class, which of them, too, in a
    search from the refined maps of every class (SEAM's; kept on a tie) and one from the classifier's."""
    classes, scales, dims = raw[0].shape[2], raw[0].shape[0], raw[0].ndim - 3
    subsets = [
        torch.tensor([float(s in chosen) for s in range(scales)])
        for n in range(1, scales + 1)
        for chosen in itertools.combinations(range(scales), n)
    ]

    def maps(use: list[bool] | None) -> list[torch.Tensor]:
        return raw if use is None else [pick(c, r, use) for c, r in zip(raw, refined, strict=True)]

    def sweep(mask: torch.Tensor, shifts: list[list[int]], use: list[bool] | None) -> torch.Tensor:
        return torch.stack(
            [
                sweep_backgrounds(combine(r, mask, shifts, p), y, num_classes, backgrounds)
                for r, p, y in zip(maps(use), presence, labels, strict=True)
            ]
        )

    def value(dice: torch.Tensor) -> float:  # the classes' mean Dice, averaged
        mean = torch.nanmean(dice.double(), 0).nan_to_num(-math.inf)  # a score no case defines never wins
        return float(mean.max(0).values.mean() if fixed is None else mean[fixed, range(mean.shape[1])].mean())

    def search(use: list[bool] | None) -> Calibration:
        mask = torch.ones(classes, scales)
        shifts = [list(shift or (0,) * dims) for _ in range(classes)]
        best = sweep(mask, shifts, use)

        def trials(k: int):  # class k's options, each built on what the search holds when it is tried
            for row in subsets if choose_scales and scales > 1 else []:
                yield torch.cat([mask[:k], row[None], mask[k + 1 :]]), shifts, use
            for axis in range(dims if shift is None else 0):
                for step in sorted(range(-max_shift, max_shift + 1), key=abs):
                    yield mask, [*shifts[:k], [*shifts[k][:axis], step, *shifts[k][axis + 1 :]], *shifts[k + 1 :]], use
            if use is not None:  # last: the other maps at the scales and shift found for these
                yield mask, shifts, [*use[:k], not use[k], *use[k + 1 :]]

        for _ in range(rounds):
            for k in range(classes):
                for trial in trials(k):
                    if torch.equal(trial[0], mask) and trial[1:] == (shifts, use):
                        continue
                    dice = sweep(*trial)
                    if value(dice) > value(best) + 1e-6:
                        (mask, shifts, use), best = trial, dice
        return Calibration(mask, shifts, use, best)

    if refined is None:
        return search(None)
    # scales and shifts found for one kind of maps need not suit the other: a search from each, the better kept
    return max((search([start] * classes) for start in (True, False)), key=lambda found: value(found.dice))


@dataclass
class CaseMaps:
    """One validation case as the calibration reads it: per-scale maps (`SeamNet.scale_maps`, (S, 1, K - 1, *size))
    of the classifier and of the PCM, whichever `seam.refine` needs (None: not computed), its presence (1, K - 1) and
    its mask (1, 1, *size)."""

    cam: torch.Tensor | None
    refined: torch.Tensor | None
    presence: torch.Tensor
    label: torch.Tensor


@torch.no_grad()
def case_maps(net, image: torch.Tensor, label: torch.Tensor, presence: torch.Tensor, refine: bool | str) -> CaseMaps:
    """The maps `choose_maps` needs with `seam.refine` = `refine` (auto: both kinds, from one pass)."""
    if refine == "auto":
        cam, refined, _ = net.scale_maps_both(image)
        return CaseMaps(cam.cpu(), refined.cpu(), presence.cpu(), label)
    maps = net.scale_maps(image, refine=bool(refine))[0].cpu()
    return CaseMaps(None if refine else maps, maps if refine else None, presence.cpu(), label)


@dataclass
class MapChoice:
    scale_mask: torch.Tensor  # (K - 1, S): 1 where class k sums scale s
    shift: list[list[int]]  # per class, voxels per axis
    refine: list[bool]  # per class, PCM-refined maps (True) or the classifier's
    background: tuple[float, ...]  # per class
    dice: torch.Tensor  # (cases, backgrounds swept, K - 1) Dice at these scales and shifts
    best: torch.Tensor  # (K - 1,) mean Dice over the cases at each class's background score

    def maps(self, cam: torch.Tensor, refined: torch.Tensor, presence: torch.Tensor) -> torch.Tensor:
        """A case's (B, K - 1, *size) class scores under this choice, from both kinds of per-scale maps."""
        return combine(pick(cam, refined, self.refine), self.scale_mask, self.shift, presence)


def choose_maps(
    cases: list[CaseMaps], num_classes: int, seam: SeamConfig, background: tuple[float, ...] | None = None
) -> MapChoice:
    """Per class, the scales, shift, PCM or not (`seam.refine` auto) and background score with the best mean Dice over
    `cases`, as `seg train` chooses them; `seam.shift` and `background` (one score per class), where given, stay
    fixed. The one calibration: training and the SEAM benchmark both choose with it."""
    backgrounds = tuple(sorted(set(background))) if background is not None else BACKGROUNDS
    own = [backgrounds.index(v) for v in background] if background is not None else None
    presence, labels = [c.presence for c in cases], [c.label for c in cases]
    cams, refined = [c.cam for c in cases], [c.refined for c in cases]
    choose_scales = seam.choose_scales and len(seam.infer_scales) > 1
    auto = seam.refine == "auto"  # per class, refined or not, chosen too: the search starts from both
    found = calibrate(
        cams if auto or not seam.refine else refined,
        presence,
        labels,
        num_classes,
        seam.max_shift,
        backgrounds,
        own,
        seam.shift,
        choose_scales,
        refined=refined if auto else None,
    )
    if background is not None:  # each class at its own fixed score
        chosen, best = background, torch.nanmean(found.dice.double(), 0)[own, range(num_classes - 1)]
    else:
        chosen, best = choose_background(found.dice)
    refine = found.refine if found.refine is not None else [bool(seam.refine)] * (num_classes - 1)
    return MapChoice(found.scale_mask, found.shift, refine, chosen, found.dice, best)


@torch.no_grad()
def calibrate_network(net, objective, dm, class_names, seam: SeamConfig) -> dict:
    """Set `net.scale_mask`, `net.shift`, `net.refine_mask` and `net.background` (per foreground class), chosen on the
    validation cases of `dm` with their presence as `objective` reads it, and return the record for train.json /
    model.json (`calibration_record`, plus how and on which cases they were chosen)."""
    k = len(class_names)
    if seam.background is not None:
        net.background.copy_(background_scores(seam.background, k - 1))
    if seam.shift is not None:
        net.shift.copy_(torch.tensor([list(seam.shift)] * (k - 1), dtype=net.shift.dtype))
    choose_scales = seam.choose_scales and len(seam.infer_scales) > 1
    if seam.refine != "auto":
        net.refine_mask.fill_(float(seam.refine))
    if seam.background is not None and seam.shift is not None and not choose_scales and seam.refine != "auto":
        return {
            **calibration_record(net, class_names),
            "cases": [],
            "chosen_by": "seam.background, seam.shift and seam.refine (fixed in the config), every scale summed",
        }
    dm.setup("fit")
    if not dm.val_cases:
        return {
            **calibration_record(net, class_names),
            "cases": [],
            "chosen_by": "the defaults (no validation cases to choose on: data.fold all); set seam.background, "
            "seam.shift and seam.refine",
        }
    net.eval()
    cases = []
    for case in dm.val_cases:
        label = torch.from_numpy(case.label.astype("int64"))[None]
        presence = objective.presence({"label": label, "case_id": case.case_id}, k)
        cases.append(case_maps(net, torch.from_numpy(case.image)[None], label, presence, seam.refine))
    fixed = tuple(float(v) for v in net.background.tolist()) if seam.background is not None else None
    found = choose_maps(cases, k, seam, fixed)
    net.scale_mask.copy_(found.scale_mask)
    net.shift.copy_(torch.tensor(found.shift, dtype=net.shift.dtype))
    net.refine_mask.copy_(torch.tensor(found.refine, dtype=net.refine_mask.dtype))
    net.background.copy_(torch.tensor(found.background, dtype=net.background.dtype, device=net.background.device))
    chosen = [
        *(["the scales"] if choose_scales else []),
        *(["the shift"] if seam.shift is None else []),
        *(["PCM or not"] if seam.refine == "auto" else []),
        *([] if fixed else ["the background score"]),
    ]
    out = {
        **calibration_record(net, class_names),
        "chosen_by": f"per class, {join(chosen)} with the best mean Dice over the {len(dm.val_cases)} validation cases",
        "cases": [c.case_id for c in dm.val_cases],
        "validation_dice": {n: round(float(d), 4) for n, d in zip(class_names[1:], found.best, strict=True)},
    }
    if not fixed:
        curve = torch.nanmean(found.dice.double(), 0)  # (backgrounds, K - 1) mean Dice, chosen scales and shifts
        out["curve"] = {
            n: {f"{t:.2f}": round(float(v), 4) for t, v in zip(BACKGROUNDS, curve[:, c], strict=True)}
            for c, n in enumerate(class_names[1:])
        }
    return out


def calibration_record(net, class_names) -> dict:
    """Per class: `background` score, `shift` [voxels per axis], `scales` (of seam.infer_scales) its map sums and
    `refine` (PCM-refined maps or the classifier's)."""
    names = class_names[1:]
    return {
        "background": per_class(net.background, class_names),
        "shift": dict(zip(names, net.shift.tolist(), strict=True)),
        "scales": chosen_scales(net.seam.infer_scales, net.scale_mask, names),
        "refine": {n: bool(v) for n, v in zip(names, net.refine_mask.tolist(), strict=True)},
    }


def chosen_scales(scales, mask: torch.Tensor, names) -> dict[str, list[float]]:
    """{class: the scales its map sums} from a (K - 1, S) scale mask."""
    return {
        n: [s for s, on in zip(scales, row, strict=True) if on] for n, row in zip(names, mask.tolist(), strict=True)
    }


def join(parts: list[str]) -> str:
    return parts[0] if len(parts) == 1 else ", ".join(parts[:-1]) + " and " + parts[-1]


def per_class(background: torch.Tensor, class_names) -> dict[str, float]:
    """{class: score}, rounded (a float32 buffer: 0.05 reads 0.0500000007)."""
    return {n: round(float(v), 4) for n, v in zip(class_names[1:], background, strict=True)}
