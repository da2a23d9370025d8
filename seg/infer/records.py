"""What happened to one case of a batch (`predictions.json["cases"][<id>]`): its status, outputs, timing, error
or warning, and its metrics when a reference label was given."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

OK, EXISTS, FAILED = "ok", "exists", "failed"  # predicted now / outputs already there (kept) / not predicted
OPTIONAL = ("predict_seconds", "voxels", "error", "warning", "metrics", "timings")  # written only when set
STAGES = ("read", "preprocess", "network", "restore", "write", "score")  # `timings` keys, in the order they happen


@dataclass
class CaseRecord:
    case: str
    images: list[str]
    label: str | None
    outputs: list[str]
    status: str = ""  # OK, EXISTS or FAILED
    seconds: float = 0.0  # read to scored (other cases' stages may overlap it: `seg.infer.pipeline`)
    rank: int = 0  # the process that predicted it (sharded inference)
    predict_seconds: float | None = None  # read to written, without scoring
    voxels: int | None = None  # of the input image
    error: str | None = None  # one line: file, problem, fix
    warning: str | None = None  # one line: the output exists, but something about the input deserves a look
    metrics: dict[str, Any] | None = field(default=None)  # per class: dice, hd95, volume_pred, volume_ref
    timings: dict[str, float] = field(default_factory=dict)  # seconds per stage (STAGES) of this case

    @property
    def failed(self) -> bool:
        return self.status == FAILED

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        return {k: v for k, v in d.items() if not (k in OPTIONAL and not v and v != 0)}
