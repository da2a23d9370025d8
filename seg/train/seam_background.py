"""After SEAM training: the background scores of the pseudo masks, one per class, chosen on the validation cases
only (SEAM's own evaluation sweeps one on the ground truth it reports, a complaint in its issues #13 and #31), set on
the network and reported with the cases that chose them."""

from __future__ import annotations

import torch

from seg.models.seam import background_scores
from seg.train.objectives import BACKGROUNDS, SeamSupervision, choose_background


@torch.no_grad()
def set_background(net, objective: SeamSupervision, dm, class_names, fixed: float | tuple[float, ...] | None
                   ) -> dict:
    """Set `net.background` (one score per foreground class) and return the record for train.json / model.json:
    `background` {class: score}."""
    if fixed is not None:
        net.background.copy_(background_scores(fixed, len(class_names) - 1))
        return {"background": per_class(net.background, class_names), "cases": [],
                "chosen_by": "seam.background (fixed in the config)"}
    dm.setup("fit")
    if not dm.val_cases:
        return {"background": per_class(net.background, class_names), "cases": [],
                "chosen_by": "the default (no validation cases to choose on: data.fold all); set seam.background"}
    net.eval()
    dice = []
    for case in dm.val_cases:
        batch = {"image": torch.from_numpy(case.image)[None], "label": torch.from_numpy(case.label.astype("int64"))[None],
                 "case_id": case.case_id}
        dice.append(objective.validate(None, net, batch, len(class_names)))
    background, best = choose_background(torch.stack(dice))
    net.background.copy_(torch.tensor(background, dtype=net.background.dtype, device=net.background.device))
    curve = torch.stack(dice).float().mean(0)  # (backgrounds, K - 1) mean Dice
    return {"background": per_class(net.background, class_names),
            "chosen_by": f"per class, the best mean Dice over the {len(dm.val_cases)} validation cases",
            "cases": [c.case_id for c in dm.val_cases],
            "validation_dice": {n: round(float(d), 4) for n, d in zip(class_names[1:], best)},
            "curve": {n: {f"{t:.2f}": round(float(v), 4) for t, v in zip(BACKGROUNDS, curve[:, k])}
                      for k, n in enumerate(class_names[1:])}}


def per_class(background: torch.Tensor, class_names) -> dict[str, float]:
    """{class: score}, rounded (a float32 buffer: 0.05 reads 0.0500000007)."""
    return {n: round(float(v), 4) for n, v in zip(class_names[1:], background)}
