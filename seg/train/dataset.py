"""The dataset as training sees it, read from the cache's fingerprint: the class names, whether the model fits the
data, and the dataset's name (MLflow's `dataset` param, the registry name)."""

from __future__ import annotations

from pathlib import Path

from seg.config import ModelConfig
from seg.data.cache import Fingerprint
from seg.errors import ModelDataMismatch


def class_names(fingerprint: Fingerprint, out_channels: int) -> list[str]:
    labels = fingerprint.class_names
    return (
        [str(x) for x in labels] if len(labels) == out_channels else ["background", *map(str, range(1, out_channels))]
    )


def check_model_fits_data(model: ModelConfig, fingerprint: Fingerprint, cache_dir: str) -> None:
    channels = fingerprint.num_channels
    if channels != model.in_channels:
        raise ModelDataMismatch(
            f"model.in_channels={model.in_channels} but {cache_dir}/fingerprint.json has {channels} image channel(s). "
            f"Set model.in_channels: {channels}."
        )
    labels = fingerprint.class_names
    if len(labels) != model.out_channels:
        raise ModelDataMismatch(
            f"model.out_channels={model.out_channels} but {cache_dir}/fingerprint.json has {len(labels)} classes "
            f"(with background). Set model.out_channels: {len(labels)}."
        )


def dataset_name(fingerprint: Fingerprint) -> str:
    """The name of the dataset folder the cache was made from (`synthetic` for the embedded dataset), whatever the
    config's data.root says: MLflow's `dataset` param and the registry name."""
    return Path(fingerprint.root).name if fingerprint.root else fingerprint.dataset
