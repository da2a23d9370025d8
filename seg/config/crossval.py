"""The `crossval` section: which folds `dvc repro crossval/dvc.yaml` trains and predicts, and where."""

from __future__ import annotations

from dataclasses import dataclass

from seg.config.checks import ConfigError
from seg.config.fields import doc


@dataclass(frozen=True)
class CrossvalConfig:
    """Cross-validation (`dvc repro crossval/dvc.yaml`): train and predict each listed fold, then gather."""

    folds: tuple[int, ...] = doc((), "the folds to train and predict, e.g. [0, 1, 2, 3, 4]; empty: none")
    models: str = doc("models/folds", "fold k's model is <models>/fold_<k>; the folder is their ensemble")
    predictions: str = doc("outputs/crossval", "fold k's validation predictions are <predictions>/fold_<k>")
    metrics_file: str = doc(
        "metrics/crossval.json", "per class mean and sd of Dice and HD95, the postprocessing chosen"
    )

    def __post_init__(self) -> None:
        if len(set(self.folds)) != len(self.folds) or any(not isinstance(k, int) or k < 0 for k in self.folds):
            raise ConfigError(f"crossval.folds must be distinct fold numbers >= 0, got {list(self.folds)}.")
