"""Training parts on tiny arrays: loss, patch sampling, Dice, config/data checks."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from cache_fixture import tiny_fingerprint

from seg.config import ModelConfig
from seg.data.cache import CachedCase as Case
from seg.train.datamodule import default_patch_size
from seg.train.dataset import check_model_fits_data, class_names
from seg.train.loss import DeepSupervisionLoss, soft_dice_loss
from seg.train.objectives import dice_per_class
from seg.train.sampling import crop_patch, sample_patch


@pytest.mark.parametrize("spatial_dims", [2, 3])
def test_dice_loss_low_for_perfect_and_high_for_wrong(spatial_dims):
    target = torch.randint(0, 3, (2, 1, *(8,) * spatial_dims))
    perfect = torch.zeros(2, 3, *(8,) * spatial_dims).scatter_(1, target, 20.0)
    wrong = torch.zeros(2, 3, *(8,) * spatial_dims).scatter_(1, (target + 1) % 3, 20.0)
    assert soft_dice_loss(perfect, target) < 1e-3
    assert soft_dice_loss(wrong, target) > 0.99


def test_deep_supervision_loss_uses_downsampled_targets():
    target = torch.zeros(1, 1, 8, 8, 8, dtype=torch.long)
    target[..., :4, :, :] = 1
    full = torch.zeros(1, 2, 8, 8, 8).scatter_(1, target, 20.0)
    half = torch.zeros(1, 2, 4, 4, 4).scatter_(1, target[..., ::2, ::2, ::2], 20.0)
    loss = DeepSupervisionLoss()
    assert loss(full, [half], target) < 1e-3
    assert loss(full, [half.flip(2)], target) > 0.3  # the coarse head counts, with weight 1/3


def test_crop_patch_pads_outside_the_volume():
    a = np.arange(16, dtype=np.float32).reshape(1, 4, 4)
    p = crop_patch(a, [-1, 2], [3, 3])
    assert p.shape == (1, 3, 3)
    assert p[0, 0].tolist() == [0, 0, 0] and p[0, 1].tolist() == [2, 3, 0]


@pytest.mark.parametrize("spatial_dims", [2, 3])
def test_foreground_patches_contain_foreground(spatial_dims):
    label = np.zeros((1, *(32,) * spatial_dims), np.uint8)
    label[(0, *(slice(20, 23),) * spatial_dims)] = 1
    case = Case("c", label.astype(np.float32), label, np.argwhere(label[0] > 0))
    rng = np.random.default_rng(0)
    for _ in range(20):
        image, lab = sample_patch(case, (12,) * spatial_dims, rng, foreground_fraction=1.0)
        assert image.shape == (1, *(12,) * spatial_dims) and lab.any()


def test_patches_pad_only_along_axes_where_the_volume_is_smaller():
    """Foreground at the corner of a (20, 9) volume, patch (12, 12): axis 0 never pads (the patch shifts inwards
    and still holds the voxel), axis 1 pads exactly the 3 voxels the volume lacks."""
    label = np.zeros((1, 20, 9), np.uint8)
    label[0, 0, 0] = 1
    case = Case("c", np.ones((1, 20, 9), np.float32), label, np.argwhere(label[0] > 0))
    rng = np.random.default_rng(0)
    for fraction in (1.0, 0.0):
        for _ in range(50):
            image, lab = sample_patch(case, (12, 12), rng, foreground_fraction=fraction)
            assert image[0].any(axis=0).sum() == 9  # all 9 columns of the volume, 3 of padding
            assert image[0].any(axis=1).all()  # no row of padding along axis 0
            if fraction:
                assert lab.any()


def _affine_only(spatial_dims: int):
    from seg.config import AugmentConfig
    from seg.train.augment import build_augmentation

    cfg = AugmentConfig(
        affine_prob=1.0, scale_range=(0.8, 1.2), flip_prob=0, rot90_prob=0, intensity_prob=0, gamma_prob=0, noise_prob=0
    )
    return build_augmentation(cfg, (8,) * spatial_dims).transforms[0]


@pytest.mark.parametrize("spatial_dims", [2, 3])
def test_affine_scale_is_one_factor_for_all_axes_over_the_configured_range(spatial_dims):
    """MONAI's RandAffined draws a factor per axis; ours draws one from scale_range, and rotates about each axis."""
    import math
    import pickle

    affine = pickle.loads(pickle.dumps(_affine_only(spatial_dims)))  # picklable for loader workers
    affine.set_random_state(0)
    factors, angles = [], []
    for _ in range(200):
        affine.randomize()
        factors.append(affine.scale)
        angles += affine.rotate_params
        assert len(affine.rotate_params) == (1 if spatial_dims == 2 else 3)
    assert 0.8 <= min(factors) < 0.83 and 1.17 < max(factors) <= 1.2
    assert math.radians(14) < max(map(abs, angles)) <= math.radians(15)


@pytest.mark.parametrize("spatial_dims", [2, 3])
def test_affine_keeps_a_sphere_a_sphere_in_one_resampling_like_monai_affined(spatial_dims):
    """The label of a ball keeps equal semi-axes of radius / scale; image and label match MONAI's Affined at the
    drawn parameters (bilinear image, nearest label, zeros outside)."""
    from monai.transforms import Affined

    size, radius = (48, 14) if spatial_dims == 2 else (32, 9)
    centred = np.meshgrid(*[np.arange(size) - (size - 1) / 2] * spatial_dims, indexing="ij")
    ball = torch.from_numpy((sum(c**2 for c in centred) <= radius**2)[None].astype(np.float32))  # (1, *spatial)
    image = torch.from_numpy(np.random.default_rng(0).random(ball.shape, dtype=np.float32))
    affine = _affine_only(spatial_dims)
    affine.set_random_state(1)
    for _ in range(4):
        out = affine({"image": image, "label": ball})
        points = np.argwhere(np.asarray(out["label"][0]) > 0.5).astype(float)
        semi_axes = np.sqrt((spatial_dims + 2) * np.linalg.eigvalsh(np.cov(points.T)))  # of a solid ellipsoid
        assert semi_axes.max() / semi_axes.min() < 1.05
        assert semi_axes.mean() == pytest.approx(radius / affine.scale, rel=0.04)
        monai = Affined(
            ["image", "label"],
            rotate_params=affine.rotate_params,
            scale_params=(affine.scale,) * spatial_dims,
            mode=("bilinear", "nearest"),
            padding_mode="zeros",
            dtype=np.float64,
        )
        expected = monai({"image": image, "label": ball})
        assert torch.allclose(torch.as_tensor(out["image"]), torch.as_tensor(expected["image"]), atol=1e-5)
        assert (torch.as_tensor(out["label"]) != torch.as_tensor(expected["label"])).float().mean() < 1e-3


@pytest.mark.parametrize("spatial_dims", [2, 3])
def test_mirroring_flips_only_the_configured_axes_and_rejects_missing_ones(spatial_dims):
    from seg.config import AugmentConfig, Config, ConfigError, ModelConfig, TrainConfig
    from seg.train.augment import build_augmentation

    off = {"affine_prob": 0, "rot90_prob": 0, "intensity_prob": 0, "gamma_prob": 0, "noise_prob": 0}
    image = torch.arange(8.0**spatial_dims).reshape(1, *(8,) * spatial_dims)
    aug = build_augmentation(AugmentConfig(flip_prob=1.0, flip_axes=(1,), **off), (8,) * spatial_dims)
    out = aug({"image": image, "label": image.long()})
    assert torch.equal(torch.as_tensor(out["image"]), image.flip(2))  # spatial axis 1 only, label alike
    assert torch.equal(torch.as_tensor(out["label"]), image.long().flip(2))
    assert AugmentConfig(flip_prob=0.0).mirrored_axes(spatial_dims) == ()  # never mirrored: no axis for TTA
    assert AugmentConfig().mirrored_axes(spatial_dims) == tuple(range(spatial_dims))
    with pytest.raises(ConfigError, match="the 2D patches do not have"):
        Config(model=ModelConfig(spatial_dims=2), train=TrainConfig(augment=AugmentConfig(flip_axes=(0, 2))))
    with pytest.raises(ConfigError, match="distinct spatial axes"):
        AugmentConfig(flip_axes=(0, 0))


def test_training_patches_are_plain_tensors_after_monai_augmentation():
    """MONAI transforms return MetaTensors; one reaching the network would tax every op with metadata handling."""
    from seg.config import AugmentConfig, TrainConfig
    from seg.train.datamodule import PatchDataset

    label = np.zeros((1, 16, 16, 16), np.uint8)
    label[0, 6:9, 6:9, 6:9] = 1
    case = Case("c", np.random.rand(1, 16, 16, 16).astype(np.float32), label, np.argwhere(label[0] > 0))
    always = AugmentConfig(flip_prob=1.0, affine_prob=1.0, intensity_prob=1.0, gamma_prob=1.0, noise_prob=1.0)
    item = PatchDataset([case], (8, 8, 8), 2, TrainConfig(augment=always), None)[0]
    assert type(item["image"]) is torch.Tensor and type(item["label"]) is torch.Tensor
    assert item["image"].dtype == torch.float32 and item["label"].dtype == torch.int64


def test_worker_processes_draw_new_patches_every_epoch():
    """Lightning builds the train loader once; a worker is started afresh every epoch and must not replay epoch 0."""
    from seg.config import AugmentConfig, TrainConfig
    from seg.train.datamodule import PatchDataset

    image = np.random.default_rng(0).random((1, 24, 24, 24), dtype=np.float32)
    label = np.zeros((1, 24, 24, 24), np.uint8)
    label[0, 10:14, 10:14, 10:14] = 1
    case = Case("c", image, label, np.argwhere(label[0] > 0))
    none = AugmentConfig(flip_prob=0, rot90_prob=0, affine_prob=0, intensity_prob=0, gamma_prob=0, noise_prob=0)
    dataset = PatchDataset([case], (8, 8, 8), 4, TrainConfig(augment=none), None)
    torch.manual_seed(0)
    loader = torch.utils.data.DataLoader(dataset, batch_size=4, num_workers=1)
    first, second = (next(iter(loader))["image"] for _ in range(2))
    assert not torch.equal(first, second)
    torch.manual_seed(0)
    assert torch.equal(next(iter(loader))["image"], first)  # and reproducible from the seed


def test_set_epoch_draws_that_epochs_patches_again():
    """The data module starts each epoch's patches with set_epoch: a new epoch is new, the same epoch replays."""
    from seg.config import TrainConfig
    from seg.train.datamodule import PatchDataset

    image = np.random.default_rng(0).random((1, 24, 24, 24), dtype=np.float32)
    label = np.zeros((1, 24, 24, 24), np.uint8)
    label[0, 10:14, 10:14, 10:14] = 1
    dataset = PatchDataset([Case("c", image, label, np.argwhere(label[0] > 0))], (8, 8, 8), 3, TrainConfig(), None)
    epoch = lambda: torch.stack([dataset[i]["image"] for i in range(len(dataset))])  # noqa: E731
    first = epoch()
    dataset.set_epoch(1)
    assert not torch.equal(epoch(), first)
    dataset.set_epoch(0)
    assert torch.equal(epoch(), first)  # augmentation included: it is reseeded from the same generator


def test_slices_of_3d_volume_for_2d_training():
    label = np.zeros((1, 10, 12, 14), np.uint8)
    label[0, 5, 6, 7] = 1
    case = Case("c", label.astype(np.float32), label, np.argwhere(label[0] > 0))
    image, lab = sample_patch(case, (8, 8), np.random.default_rng(0), 1.0, slice_axis=2)
    assert image.shape == (1, 8, 8) and lab.sum() == 1


def test_dice_per_class():
    label = torch.zeros(1, 1, 4, 4, dtype=torch.long)
    label[..., :2, :] = 1
    pred = label.clone()
    pred[..., 0, :] = 2
    d = dice_per_class(pred, label, 3)
    assert d[0].item() == pytest.approx(2 * 4 / (4 + 8))
    assert d[1].item() == 0.0


def test_model_must_fit_data():
    fp = tiny_fingerprint(3, num_channels=2, class_names=("bg", "a"))
    with pytest.raises(
        ValueError, match=r"model.in_channels=1 but cache/fingerprint.json has 2.*Set model.in_channels: 2"
    ):
        check_model_fits_data(ModelConfig(in_channels=1, out_channels=2), fp, "cache")
    with pytest.raises(ValueError, match=r"model.out_channels=3 .* has 2 classes.*Set model.out_channels: 2"):
        check_model_fits_data(ModelConfig(in_channels=2, out_channels=3), fp, "cache")
    assert class_names(fp, 2) == ["bg", "a"]


def test_default_patch_size_rounds_to_nearest_multiple():
    assert default_patch_size([35, 50, 36], 3, (8, 8, 8)) == (32, 48, 40)
    assert default_patch_size([35, 50, 36], 3, (16, 16, 16)) == (32, 48, 32)
    assert default_patch_size([5, 40, 24], 3, (16, 16, 16)) == (16, 48, 32)
    assert default_patch_size([500, 500], 2, (16, 16), cap=256) == (256, 256)


def test_history_counts_epochs_with_and_without_validation(tmp_path):
    import math
    from types import SimpleNamespace

    import torch

    from seg.train.history import HistoryCallback

    history = HistoryCallback(tmp_path, ["a"])
    trainer = SimpleNamespace(sanity_checking=False, global_rank=0, current_epoch=0, global_step=5, callback_metrics={})
    trainer.callback_metrics = {"val/dice_mean": torch.tensor(0.5), "val/dice_a": torch.tensor(0.5)}
    history.on_validation_end(trainer, None)  # Lightning validates before the epoch's end hooks
    trainer.callback_metrics = {**trainer.callback_metrics, "train/loss": torch.tensor(1.5)}
    history.on_train_epoch_end(trainer, None)
    trainer.current_epoch, trainer.global_step, trainer.callback_metrics = 1, 10, {"train/loss": torch.tensor(0.9)}
    history.on_train_epoch_end(trainer, None)  # an epoch without validation
    assert [(r["epoch"], r["train_loss"]) for r in history.rows] == [(0, 1.5), (1, pytest.approx(0.9))]
    assert math.isnan(history.rows[1]["val_dice_mean"])
    summary = history.summary(elapsed_s=10.0, samples_per_epoch=4)
    assert summary["epochs"] == 2 and summary["best_epoch"] == 0 and summary["best_val_dice_mean"] == 0.5
    assert summary["samples_per_s"] == 0.8 and (tmp_path / "train_history.csv").is_file()


def test_history_plots_at_most_once_a_minute_and_always_at_the_end(tmp_path, monkeypatch):
    from types import SimpleNamespace

    from seg.train.history import HistoryCallback

    history, plots = HistoryCallback(tmp_path, ["a"]), []
    monkeypatch.setattr(history, "_plot", lambda: plots.append(len(history.rows)))
    trainer = SimpleNamespace(
        sanity_checking=False,
        global_rank=0,
        current_epoch=0,
        global_step=1,
        callback_metrics={"train/loss": torch.tensor(1.0)},
    )
    for epoch in range(3):
        trainer.current_epoch = epoch
        history.on_train_epoch_end(trainer, None)
    history.on_train_end(trainer, None)
    assert plots == [1, 3]  # the first epoch, then the end; the CSV has every epoch
    assert len((tmp_path / "train_history.csv").read_text().splitlines()) == 4


def _fit_on(images: list[torch.Tensor], limit: int = 20, callbacks: list | None = None):
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


def test_nonfinite_step_is_skipped_and_weights_stay_finite():
    good = [torch.randn(1, 1, 8, 8) for _ in range(4)]
    module = _fit_on(good[:2] + [torch.full((1, 1, 8, 8), float("nan"))] + good[2:])
    assert module.skipped_steps == 1
    assert all(torch.isfinite(p).all() for p in module.net.parameters())


def test_persistent_nonfinite_gradients_stop_training_with_a_clear_error():
    with pytest.raises(FloatingPointError, match=r"3 consecutive training steps had non-finite gradients.*train.lr"):
        _fit_on([torch.full((1, 1, 8, 8), float("inf"))] * 5, limit=3)


def test_finite_gradients_are_clipped_to_the_configured_norm():
    from seg.config import TrainConfig
    from seg.models import AttentionUNet
    from seg.train.module import SegmentationModule

    net = AttentionUNet(
        spatial_dims=2, in_channels=1, out_channels=2, channels=(4, 8), strides=(2,), deep_supervision=0
    )
    module = SegmentationModule(net, TrainConfig(), ["bg", "fg"], (8, 8))
    for p in net.parameters():
        p.grad = torch.full_like(p, 3.0)
    module.configure_gradient_clipping(torch.optim.SGD(net.parameters(), lr=0.1), 1.0, "norm")
    assert float(torch.nn.utils.get_total_norm([p.grad for p in net.parameters()])) == pytest.approx(1.0, rel=1e-4)
    assert module.skipped_steps == 0


def test_training_runs_channels_last_and_hands_back_a_contiguous_network(monkeypatch):
    from seg.train.module import SegmentationModule

    seen, original = [], SegmentationModule.training_step

    def spy(self, batch, batch_idx):
        convs = [p for p in self.net.parameters() if p.ndim == 4 and p.shape[1] > 1 and p.shape[2] > 1]
        seen.append(all(p.is_contiguous(memory_format=torch.channels_last) and not p.is_contiguous() for p in convs))
        return original(self, batch, batch_idx)

    monkeypatch.setattr(SegmentationModule, "training_step", spy)
    module = _fit_on([torch.randn(1, 1, 8, 8) for _ in range(2)])
    assert seen == [True, True]
    assert all(p.is_contiguous() for p in module.net.parameters())


def test_time_based_validation_also_scores_the_weights_the_budget_ends_with():
    import time

    import lightning as L

    from seg.config import TrainConfig
    from seg.train.schedule import plan_validation

    def validation_schedule(tc):
        unused = lambda: pytest.fail("a given schedule is not measured")  # noqa: E731
        return plan_validation(tc, unused, unused).trainer_args()

    class Tiny(L.LightningModule):
        def __init__(self):
            super().__init__()
            self.lin, self.validated_at = torch.nn.Linear(2, 1), []

        def training_step(self, batch, batch_idx):
            time.sleep(0.02)
            return self.lin(batch).sum()

        def validation_step(self, batch, batch_idx):
            self.validated_at.append(self.global_step)

        def configure_optimizers(self):
            return torch.optim.SGD(self.parameters(), lr=0.01)

    assert validation_schedule(TrainConfig(val_every=3)) == {"check_val_every_n_epoch": 3}
    data = torch.utils.data.DataLoader(torch.randn(10_000, 2), batch_size=1)
    module = Tiny()
    trainer = L.Trainer(
        max_time={"seconds": 2},
        max_epochs=1,
        accelerator="cpu",
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        num_sanity_val_steps=0,
        limit_val_batches=1,
        **validation_schedule(TrainConfig(val_every_minutes=0.01)),
    )  # every 0.6 s
    trainer.fit(module, data, data)
    assert len(module.validated_at) >= 2 and module.validated_at[-1] == module.global_step < 10_000


def test_auto_validation_keeps_every_epoch_while_it_fits_the_share_and_thins_out_past_it():
    from seg.config import TrainConfig
    from seg.train.schedule import plan_validation

    cheap = plan_validation(TrainConfig(steps_per_epoch=20), lambda: 0.1, lambda: 0.1)  # 0.1 s against 2 s
    assert cheap.trainer_args() == {"check_val_every_n_epoch": 1}
    # Task04-like: one validation (7 s) costs about one 50-step epoch: every epoch would be half the time
    costly = plan_validation(TrainConfig(steps_per_epoch=50), lambda: 7.0, lambda: 0.14)
    n = costly.trainer_args()["check_val_every_n_epoch"]
    assert n == 9 and 7.0 / (n * 50 * 0.14 + 7.0) <= 0.1 < 7.0 / ((n - 1) * 50 * 0.14 + 7.0)
    budget = plan_validation(TrainConfig(steps_per_epoch=50, max_time_minutes=10), lambda: 7.0, lambda: 0.14)
    assert budget.trainer_args()["check_val_every_n_epoch"] is None
    assert budget.every_minutes == pytest.approx(7.0 * 9 / 60, abs=1e-3)  # 63 s of training per 7 s validation
    assert "one validation 7.0 s" in budget.describe()


def test_measured_validation_time_scales_one_timed_case_to_all_and_shares_it_over_processes():
    import time as clock

    from seg.train.schedule import time_validation

    calls = []

    def predict(x):
        calls.append(x.shape)
        clock.sleep(0.02 * x.numel() / 1000)

    images = [torch.zeros(1, 1, 10, 10, 10), torch.zeros(1, 1, 10, 10, 5)]
    seconds = time_validation(predict, images, processes=1)
    assert calls == [(1, 1, 10, 10, 10)] * 2  # the largest case, once untimed and once timed
    assert 0.028 <= seconds <= 0.045  # 0.02 s for 1000 voxels, scaled to 1500
    assert time_validation(predict, images, processes=2) == pytest.approx(seconds / 2, rel=0.5)
    assert time_validation(predict, [], processes=1) == 0.0


def test_ema_decay_ramps_up_from_the_first_steps_and_is_capped():
    from seg.train.average import ema_with_warmup

    update = ema_with_warmup(0.9)
    early, late = [torch.zeros(3)], [torch.zeros(3)]
    update(early, [torch.ones(3)], torch.tensor(1))  # after 1 update the decay is (1 + 1) / (10 + 1)
    update(late, [torch.ones(3)], torch.tensor(1000))  # the ramp would pass 0.99; the cap holds 0.9
    assert torch.allclose(early[0], torch.full((3,), 9 / 11)) and torch.allclose(late[0], torch.full((3,), 0.1))


def test_ema_is_off_by_request_and_rejects_a_decay_of_one():
    from lightning.pytorch.callbacks import WeightAveraging

    from seg.config import ConfigError, TrainConfig
    from seg.train.average import weight_average

    assert weight_average(TrainConfig(ema_decay=0.0)) == []
    assert isinstance(weight_average(TrainConfig(ema_decay=0.99))[0], WeightAveraging)
    with pytest.raises(ConfigError, match=r"train.ema_decay must be in \[0, 1\).*got 1.0"):
        TrainConfig(ema_decay=1.0)


def test_training_with_ema_hands_back_the_average_of_the_weights_it_stepped_through():
    import lightning as L

    from seg.config import TrainConfig
    from seg.train.average import weight_average

    class Spy(L.Callback):  # runs before the averaging callback: sees each step's raw weights
        def __init__(self):
            self.steps = []

        def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx):
            self.steps.append([p.detach().clone() for p in module.parameters()])

    spy = Spy()
    images = [torch.randn(1, 1, 8, 8) for _ in range(4)]
    module = _fit_on(images, callbacks=[spy, *weight_average(TrainConfig(ema_decay=0.5))])
    expected = spy.steps[0]
    for n, raw in enumerate(spy.steps[1:], start=1):
        beta = min(0.5, (1 + n) / (10 + n))
        expected = [(1 - beta) * w + beta * e for e, w in zip(expected, raw, strict=True)]
    final = [p.detach() for p in module.parameters()]
    assert all(torch.allclose(f, e, atol=1e-6) for f, e in zip(final, expected, strict=True))
    assert not all(
        torch.allclose(f, w) for f, w in zip(final, spy.steps[-1], strict=True)
    )  # not simply the last weights


def test_a_time_budget_alone_is_the_budget_and_the_schedule_decays_over_it():
    from seg.config import ConfigError, TrainConfig
    from seg.train.module import SegmentationModule

    assert TrainConfig(max_time_minutes=10).epoch_limit() is None  # no hidden epoch cap ends a budgeted run
    assert TrainConfig().epoch_limit() == 100  # neither limit given: 100 epochs
    both = TrainConfig(max_epochs=5, max_time_minutes=10)
    assert both.epoch_limit() == 5 and "whichever comes first" in both.describe_limits()
    assert "for 10 min (no epoch limit)" in TrainConfig(max_time_minutes=10).describe_limits()
    with pytest.raises(ConfigError, match="max_epochs must be an int >= 1, or null"):
        TrainConfig(max_epochs=0)
    module = SegmentationModule(
        torch.nn.Conv3d(1, 2, 1), TrainConfig(max_time_minutes=10, steps_per_epoch=50), ["bg", "fg"], (8, 8, 8)
    )
    assert module.total_steps is None and module.progress(10**6) == 0.0  # steps alone never end a budgeted run
    limited = SegmentationModule(torch.nn.Conv3d(1, 2, 1), both, ["bg", "fg"], (8, 8, 8))
    assert limited.total_steps == 250 and limited.progress(125) == 0.5


def test_the_dataset_name_comes_from_the_cache_not_from_the_config():
    import dataclasses

    from seg.tracking.model import registry_name
    from seg.train.dataset import dataset_name

    made_from = dataclasses.replace(tiny_fingerprint(), root="/data/Task04_Hippocampus")
    assert registry_name("auto", dataset_name(made_from)) == "seg-Task04_Hippocampus"  # data.root null in the config
    assert dataset_name(tiny_fingerprint()) == "test"  # no folder recorded: the dataset's own name
