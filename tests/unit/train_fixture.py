"""A tiny segmentation module fitted for real with Lightning, shared by the training tests."""

from __future__ import annotations

import torch


def fit_on(images: list[torch.Tensor], limit: int = 20, callbacks: list | None = None):
    """A tiny 2D model trained one step per image through Lightning (bf16-free, CPU), with clipping on."""
    import lightning as L

    from seg.config import TrainConfig
    from seg.models import AttentionUNet
    from seg.train.module import SegmentationModule

    torch.manual_seed(0)
    net = AttentionUNet(
        spatial_dims=2, in_channels=1, out_channels=2, channels=(4, 8), strides=(2,), deep_supervision=0, stem_stride=1
    )
    module = SegmentationModule(net, TrainConfig(max_epochs=1, steps_per_epoch=len(images)), ["bg", "fg"], (8, 8))
    module.nonfinite_limit = limit
    label = (torch.rand(1, 1, 8, 8) > 0.5).long()
    batches = [{"image": im, "label": label} for im in images]
    trainer = L.Trainer(
        max_epochs=1,
        accelerator="cpu",
        devices=1,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        gradient_clip_val=12.0,
        callbacks=callbacks,
    )
    trainer.fit(module, train_dataloaders=torch.utils.data.DataLoader(batches, batch_size=None))
    return module
