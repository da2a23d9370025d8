"""A tiny untrained model folder over a real preprocessed synthetic cache, for inference tests."""

from __future__ import annotations

from pathlib import Path

from seg.config import Config, DataConfig, ModelConfig, TrainConfig


def tiny_model_folder(root: Path, dataset: Path, spatial_dims: int = 3) -> Path:
    """Preprocess `dataset` into root/cache and write root/model (weights, config, fingerprint, model.json)."""
    import torch

    from seg.data.cache import Cache
    from seg.data.preprocess import preprocess_dataset
    from seg.models import build_model
    from seg.models.bundle import ModelMeta, save_bundle

    data = DataConfig(root=str(dataset), cache_dir=str(root / "cache"), num_workers=0, folds=2)
    result = preprocess_dataset(data, progress=False)
    model = ModelConfig(spatial_dims=spatial_dims, channels=(4, 8, 8), strides=(2, 2), deep_supervision=0)
    cfg = Config(model=model, data=data, train=TrainConfig(patch_size=(16,) * spatial_dims))
    torch.manual_seed(0)
    net = build_model(model)
    meta = ModelMeta.for_training(cfg, ["background", "head", "body"], [16] * spatial_dims, None)
    return save_bundle(root / "model", net, cfg, Cache(result.out_dir).fingerprint, meta)
