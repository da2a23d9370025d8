"""After SEAM training: the background score of the pseudo masks, chosen on the validation cases only (SEAM's own
evaluation sweeps it on the ground truth it reports, a complaint in its issues #13 and #31), set on the network
and reported with the cases that chose it."""

from __future__ import annotations

import torch

from seg.train.objectives import BACKGROUNDS, SeamSupervision, choose_background


@torch.no_grad()
def set_background(net, objective: SeamSupervision, dm, class_names, fixed: float | None) -> dict:
    """Set `net.background` and return the record for train.json / model.json."""
    if fixed is not None:
        net.background.fill_(fixed)
        return {"background": fixed, "chosen_by": "seam.background (fixed in the config)", "cases": []}
    dm.setup("fit")
    if not dm.val_cases:
        return {"background": float(net.background), "cases": [],
                "chosen_by": "the default (no validation cases to choose on: data.fold all); set seam.background"}
    net.eval()
    dice = []
    for case in dm.val_cases:
        batch = {"image": torch.from_numpy(case.image)[None], "label": torch.from_numpy(case.label.astype("int64"))[None],
                 "case_id": case.case_id}
        dice.append(objective.validate(None, net, batch, len(class_names)))
    background, best = choose_background(torch.stack(dice))
    net.background.fill_(background)
    curve = torch.stack(dice).float().mean(0).mean(1)  # (backgrounds,) mean Dice
    return {"background": background, "chosen_by": f"best mean Dice over the {len(dm.val_cases)} validation cases",
            "cases": [c.case_id for c in dm.val_cases],
            "validation_dice": {n: round(float(d), 4) for n, d in zip(class_names[1:], best)},
            "curve": {f"{t:.2f}": round(float(v), 4) for t, v in zip(BACKGROUNDS, curve)}}
