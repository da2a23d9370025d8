"""After SEAM training: the shift of the maps and the background scores of the pseudo masks (one per class), chosen
on the validation cases only (SEAM's own evaluation sweeps its score on the ground truth it reports, a complaint in
its issues #13 and #31), set on the network and reported with the cases that chose them.

The shift: a classifier learns that a class is in a patch, not exactly where; its maps may sit a few voxels off the
structures, the same way on every case of a model. Per axis in turn (twice over the axes), the shift in
-max_shift..max_shift whose best mean Dice over the validation cases (each class at its best background score) is
the highest; ties go to the smaller shift, so maps that sit right stay where they are.
"""

from __future__ import annotations

import torch

from seg.config import SeamConfig
from seg.models.seam import background_scores, translate
from seg.train.objectives import BACKGROUNDS, SeamSupervision, choose_background, sweep_backgrounds


def search_shift(maps: list[torch.Tensor], labels: list[torch.Tensor], num_classes: int, max_shift: int,
                 backgrounds=BACKGROUNDS, fixed: list[int] | None = None, rounds: int = 2
                 ) -> tuple[tuple[int, ...], torch.Tensor]:
    """maps: per case (1, K - 1, *S) scores in [0, 1]; labels: (1, 1, *S) masks. The shift (voxels per axis) and the
    sweep at it: (cases, len(backgrounds), K - 1) Dice. `fixed`: per class, the index of its own (fixed) background
    score in `backgrounds`; else each class at its best."""
    dims = maps[0].ndim - 2

    def sweep(shift) -> torch.Tensor:
        return torch.stack([sweep_backgrounds(translate(m, shift), y, num_classes, backgrounds)
                            for m, y in zip(maps, labels)])

    def value(dice: torch.Tensor) -> float:  # the classes' mean Dice, averaged
        mean = dice.float().mean(0)
        return float(mean.max(0).values.mean() if fixed is None else mean[fixed, range(mean.shape[1])].mean())

    shift = [0] * dims
    best = sweep(shift)
    for _ in range(rounds if max_shift > 0 else 0):
        for axis in range(dims):
            for step in sorted(range(-max_shift, max_shift + 1), key=abs):
                trial = [*shift[:axis], step, *shift[axis + 1:]]
                if trial == shift:
                    continue
                dice = sweep(trial)
                if value(dice) > value(best) + 1e-6:
                    shift, best = trial, dice
    return tuple(shift), best


@torch.no_grad()
def set_background(net, objective: SeamSupervision, dm, class_names, seam: SeamConfig) -> dict:
    """Set `net.shift` and `net.background` (one score per foreground class) and return the record for train.json /
    model.json: `background` {class: score}, `shift` [voxels per axis]."""
    k = len(class_names)
    if seam.background is not None:
        net.background.copy_(background_scores(seam.background, k - 1))
    if seam.shift is not None:
        net.shift.copy_(torch.tensor(seam.shift, dtype=net.shift.dtype))
    if seam.background is not None and seam.shift is not None:
        return {"background": per_class(net.background, class_names), "shift": net.shift.tolist(), "cases": [],
                "chosen_by": "seam.background and seam.shift (fixed in the config)"}
    dm.setup("fit")
    if not dm.val_cases:
        return {"background": per_class(net.background, class_names), "shift": net.shift.tolist(), "cases": [],
                "chosen_by": "the defaults (no validation cases to choose on: data.fold all); set seam.background "
                             "and seam.shift"}
    net.eval()
    net.shift.zero_()  # the maps as the network makes them
    maps, labels = [], []
    for case in dm.val_cases:
        image = torch.from_numpy(case.image)[None]
        label = torch.from_numpy(case.label.astype("int64"))[None]
        presence = objective.presence({"label": label, "case_id": case.case_id}, k)
        maps.append(net.scores(image, presence.to(image.device))[:, 1:].cpu())
        labels.append(label)
    fixed = seam.background is not None
    backgrounds = tuple(sorted({float(v) for v in net.background.tolist()})) if fixed else BACKGROUNDS
    own = [backgrounds.index(float(v)) for v in net.background.tolist()] if fixed else None
    if seam.shift is None:
        shift, dice = search_shift(maps, labels, k, seam.max_shift, backgrounds, own)
    else:
        shift, dice = tuple(seam.shift), torch.stack([
            sweep_backgrounds(translate(m, seam.shift), y, k, backgrounds) for m, y in zip(maps, labels)])
    net.shift.copy_(torch.tensor(shift, dtype=net.shift.dtype))
    if fixed:  # each class at its own fixed score
        best = dice.float().mean(0)[own, range(k - 1)]
    else:
        background, best = choose_background(dice)
        net.background.copy_(torch.tensor(background, dtype=net.background.dtype, device=net.background.device))
    what = "the shift" if fixed else "the shift and, per class, the background score"
    out = {"background": per_class(net.background, class_names), "shift": list(shift),
           "chosen_by": f"{what} with the best mean Dice over the {len(dm.val_cases)} validation cases",
           "cases": [c.case_id for c in dm.val_cases],
           "validation_dice": {n: round(float(d), 4) for n, d in zip(class_names[1:], best)}}
    if not fixed:
        curve = dice.float().mean(0)  # (backgrounds, K - 1) mean Dice at the chosen shift
        out["curve"] = {n: {f"{t:.2f}": round(float(v), 4) for t, v in zip(BACKGROUNDS, curve[:, c])}
                        for c, n in enumerate(class_names[1:])}
    return out


def per_class(background: torch.Tensor, class_names) -> dict[str, float]:
    """{class: score}, rounded (a float32 buffer: 0.05 reads 0.0500000007)."""
    return {n: round(float(v), 4) for n, v in zip(class_names[1:], background)}
