"""A tiny untrained model folder over a real preprocessed synthetic cache, for inference tests."""

from __future__ import annotations

from pathlib import Path

from seg.config import Config, DataConfig, ModelConfig, TrainConfig


def tiny_model_folder(
    root: Path,
    dataset: Path,
    spatial_dims: int = 3,
    seed: int = 0,
    name: str = "model",
    patch: int = 16,
    **model_options,
) -> Path:
    """Preprocess `dataset` into root/cache (once per root) and write root/<name> (weights, config, fingerprint,
    model.json) with weights drawn from `seed` and a `patch`-sized window; the same root gives ensemble members.
    `model_options`: further `ModelConfig` fields (attention modules)."""
    import torch

    from seg.data.cache import Cache
    from seg.data.preprocess import preprocess_dataset
    from seg.model_folder import ModelMeta, save_bundle
    from seg.models import build_model

    data = DataConfig(root=str(dataset), cache_dir=str(root / "cache"), num_workers=0, folds=2)
    cache = root / "cache"
    if not (cache / "fingerprint.json").is_file():
        cache = preprocess_dataset(data, progress=False).out_dir
    model = ModelConfig(
        spatial_dims=spatial_dims, channels=(4, 8, 8), strides=(2, 2), deep_supervision=0, **model_options
    )
    cfg = Config(model=model, data=data, train=TrainConfig(patch_size=(patch,) * spatial_dims))
    torch.manual_seed(seed)
    net = build_model(model)
    meta = ModelMeta.for_training(cfg, ["background", "head", "body"], [patch] * spatial_dims, None)
    return save_bundle(root / name, net, cfg, Cache(cache).fingerprint, meta)
