"""`train`: fit an Attention U-Net on the preprocessed cache with Lightning, tracked in MLflow, and write the
model folder that `seg infer --model` takes."""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import time
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import numpy as np
import torch

from seg.config import Config, ModelConfig, flatten
from seg.data.cache import Cache, Fingerprint
from seg.models.bundle import ModelMeta, checkpoint_record, save_bundle, update_meta
from seg.runtime import TrainSettings, describe_machine, resolve_device, threads_per_process, tune_training
from seg.runtime.quiet import quiet_lightning
from seg.runtime.tune import model_key
from seg.tracking.images import card_shaped
from seg.tracking.model import log_pytorch_model, register_model, registry_name
from seg.tracking.runs import log_tags, run_params, run_tags
from seg.tracking.uri import artifact_location, tracking_uri
from seg.train.average import weight_average
from seg.train.history import HistoryCallback
from seg.train.schedule import ValidationPlan, measure_and_plan

STATE_FILE = "run.json"


@dataclass
class TrainResult:
    model_dir: Path
    run_id: str
    metrics: dict
    best_checkpoint: Path | None


def class_names(fingerprint: Fingerprint, out_channels: int) -> list[str]:
    labels = fingerprint.class_names
    return [str(x) for x in labels] if len(labels) == out_channels else ["background", *map(str, range(1, out_channels))]


def check_model_fits_data(model: ModelConfig, fingerprint: Fingerprint, cache_dir: str) -> None:
    channels = fingerprint.num_channels
    if channels != model.in_channels:
        raise ValueError(
            f"model.in_channels={model.in_channels} but {cache_dir}/fingerprint.json has {channels} image channel(s). "
            f"Set model.in_channels: {channels}."
        )
    labels = fingerprint.class_names
    if len(labels) != model.out_channels:
        raise ValueError(
            f"model.out_channels={model.out_channels} but {cache_dir}/fingerprint.json has {len(labels)} classes "
            f"(with background). Set model.out_channels: {len(labels)}."
        )


def _gate_image_logger(logger, slice_axis: int | None, max_size, history: HistoryCallback, objective):
    """Gate-map images of the first validation case, one per gate level and validation. Their MLflow step is the
    validation's index (0, 1, ...), not the epoch: MLflow's image card starts its slider at step 0 and shows
    nothing for a run whose first images are at epoch 18 (validation by wall clock); the epoch is in the
    picture's title. A resumed run continues from the validations its (checkpointed) history holds."""
    from seg.train.gate_images import cam_images, gate_images

    logged: list[int] = []  # steps used so far in this process

    def log(module, batch) -> None:
        if module.global_rank != 0 or module.trainer.sanity_checking:
            return
        image, label = batch["image"], batch["label"]
        if slice_axis is not None:  # 2D network on a 3D case: the slice through the structure
            fg = np.argwhere(label[0, 0].cpu().numpy() > 0)
            idx = int(fg[:, slice_axis].mean()) if len(fg) else label.shape[2 + slice_axis] // 2
            image, label = image.select(2 + slice_axis, idx), label.select(2 + slice_axis, idx)
        title = f"{batch['case_id']} epoch {module.current_epoch}"
        if objective.name == "seam":  # SEAM: the classifier's CAM and its PCM refinement per class
            presence = objective.presence({"label": label, "case_id": batch["case_id"]}, len(module.class_names))
            pictures = cam_images(module.net, image.to(module.device), label, presence, max_size, title,
                                  module.class_names[1:])
        else:
            pictures = gate_images(module.net, image.to(module.device), label, max_size, title)
        step = logged[-1] + 1 if logged else history.validations()  # two validations may share an epoch's row
        logged.append(step)
        for name, rgb in pictures.items():
            key = name if objective.name == "seam" else f"gate_{name}"
            logger.experiment.log_image(logger.run_id, card_shaped(rgb), key=key, step=step)

    return log


def _runtime(settings: TrainSettings, threads: int, plan: ValidationPlan) -> dict:
    """What this run resolved on this machine: model.json, train.json and MLflow params record it."""
    return {"machine": describe_machine().line(), "precision": settings.precision,
            "channels_last": settings.channels_last, "num_threads": threads, "chosen_by": settings.chosen_by,
            "step_timings_s": {k: round(v, 4) for k, v in settings.timings.items()},
            "validation": plan.describe()}


def train(cfg: Config, resume: bool = False) -> TrainResult:
    """Train with `cfg` (sections data, model, train); `resume` continues the last checkpoint's MLflow run."""
    import lightning as L
    from lightning.pytorch.callbacks import ModelCheckpoint
    from lightning.pytorch.loggers import MLFlowLogger

    from seg.models.build import build_for
    from seg.train.datamodule import SegDataModule
    from seg.train.module import SegmentationModule
    from seg.train.objectives import FullSupervision, SeamSupervision
    from seg.train.progress import progress_callbacks

    if cfg.train.supervision == "seam":  # what SEAM trains with is what the model folder and MLflow record
        cfg = dataclasses.replace(cfg, train=dataclasses.replace(
            cfg.train, augment=cfg.seam.training_augment(cfg.train.augment)))
    tc = cfg.train
    quiet_lightning()
    threads = threads_per_process(tc.num_threads, tc.devices if resolve_device(tc.accelerator).type == "cpu" else 1)
    torch.set_num_threads(threads)
    L.seed_everything(tc.seed, workers=True, verbose=False)
    fingerprint = Cache(cfg.data.cache_dir).fingerprint
    check_model_fits_data(cfg.model, fingerprint, cfg.data.cache_dir)
    names = class_names(fingerprint, cfg.model.out_channels)
    seam = cfg.seam if tc.supervision == "seam" else None
    net = build_for(cfg)
    dm = SegDataModule(cfg.data, tc, cfg.model.spatial_dims, net.size_multiple, seam)
    settings = tune_training(net, dm.patch_size, cfg.model.in_channels, tc.batch_size, tc.precision,
                             tc.channels_last, resolve_device(tc.accelerator),
                             model_key(cfg.model) + (" seam" if seam else ""))  # another network: its own timing
    resolved = dataclasses.replace(tc, precision=settings.precision, channels_last=settings.channels_last,
                                   num_threads=threads)
    objective = SeamSupervision(seam, dm.case_labels()) if seam else FullSupervision(resolved)
    module = SegmentationModule(net, resolved, names, dm.patch_size, dm.slice_axis, objective)
    if seam and int(os.environ.get("LOCAL_RANK", "0")) == 0:
        from seg.train.presence import describe_presence

        print(f"seg train: {describe_presence(dm, tc.seed)}", flush=True)

    out_dir = Path(tc.output_dir)
    ckpt_dir = out_dir / "checkpoints"
    state_path = out_dir / STATE_FILE
    plan = measure_and_plan(tc, module, dm, settings, state_path)
    runtime = _runtime(settings, threads, plan)
    if int(os.environ.get("LOCAL_RANK", "0")) == 0:
        print(f"seg train: {tc.describe_limits()}; {settings.describe()}; num_threads {threads}; {plan.describe()}",
              flush=True)
    uri = tracking_uri(tc.tracking_uri)
    run_id, ckpt_path = None, None
    if resume:
        last = ckpt_dir / "last.ckpt"
        if not last.is_file() or not state_path.is_file():
            raise FileNotFoundError(f"{last}: no checkpoint to resume from. Run `seg train` without --resume first.")
        state = json.loads(state_path.read_text())
        run_id, uri, ckpt_path = state["run_id"], state["tracking_uri"], str(last)
    elif int(os.environ.get("LOCAL_RANK", "0")) == 0:
        shutil.rmtree(ckpt_dir, ignore_errors=True)  # our own previous run's checkpoints, not user data

    logger = MLFlowLogger(
        experiment_name=tc.experiment, tracking_uri=uri, run_id=run_id, run_name=tc.run_name,
        artifact_location=artifact_location(uri),
        tags=None if resume else run_tags(fingerprint.digest()), log_model=False,
    )
    validates = bool(dm.val_ids)  # data.fold "all": no validation, the model is the weights the budget ends with
    checkpoint = ModelCheckpoint(
        dirpath=ckpt_dir, filename="best", monitor="val/dice_mean" if validates else None, mode="max",
        save_last=True, save_top_k=1 if validates else 0, every_n_epochs=1,
    )
    history = HistoryCallback(Path(tc.metrics_dir), names[1:])
    progress, bar = progress_callbacks()
    callbacks = [checkpoint, history, *weight_average(tc), *progress]
    if tc.gate_images and (net.gate_names or seam):
        max_size = tuple(2 * p for p in dm.patch_size)
        module.val_callbacks.append(_gate_image_logger(logger, dm.slice_axis, max_size, history, objective))
    trainer = L.Trainer(
        max_epochs=tc.epoch_limit() or -1,  # -1: no epoch limit (Lightning would otherwise stop at 1000)
        max_time=timedelta(minutes=tc.max_time_minutes) if tc.max_time_minutes else None,
        accelerator=tc.accelerator, devices=tc.devices, strategy=tc.strategy, precision=settings.precision,
        logger=logger, callbacks=callbacks, gradient_clip_val=tc.grad_clip or None,
        num_sanity_val_steps=0, **plan.trainer_args(), log_every_n_steps=max(tc.steps_per_epoch // 2, 1),
        enable_progress_bar=bar, enable_model_summary=False,
        default_root_dir=str(out_dir), use_distributed_sampler=True,
    )
    meta = ModelMeta.for_training(cfg, names, dm.patch_size, dm.slice_axis, precision=settings.precision,
                                  mlflow_run_id=logger.run_id, tracking_uri=uri, runtime=runtime)
    module.export = checkpoint_record(cfg, fingerprint, meta)
    if trainer.global_rank == 0:
        out_dir.mkdir(parents=True, exist_ok=True)
        state_path.write_text(json.dumps({"run_id": logger.run_id, "tracking_uri": uri,
                                          "validation": dataclasses.asdict(plan)}))
        if not resume:
            params, tags = run_params(flatten(cfg), runtime, dataset_name(fingerprint))
            logger.log_hyperparams(params)
            log_tags(logger.experiment, logger.run_id, tags)
    start = time.time()
    trainer.fit(module, datamodule=dm, ckpt_path=ckpt_path)
    elapsed = time.time() - start

    best = Path(checkpoint.best_model_path) if checkpoint.best_model_path and validates else None
    if trainer.global_rank != 0:
        return TrainResult(Path(tc.model_dir), logger.run_id, {}, best)
    if best is not None and best.is_file():
        state = torch.load(best, map_location="cpu", weights_only=True)["state_dict"]
        net.load_state_dict({k.removeprefix("net."): v for k, v in state.items() if k.startswith("net.")})
    metrics = {**history.summary(elapsed, tc.batch_size * tc.steps_per_epoch * tc.devices), "runtime": runtime}
    if seam:
        from seg.train.seam_background import set_background

        metrics["seam"] = set_background(net, objective, dm, names, seam)
        chosen = metrics["seam"]
        classes = "; ".join(f"{n}: background score {v:g}, scales {chosen['scales'][n]}, "
                            f"{'PCM-refined' if chosen['refine'][n] else 'the classifier CAM'}, shifted by "
                            f"{chosen['shift'][n]} voxels" for n, v in chosen["background"].items())
        print(f"seg train: SEAM maps per class {classes} ({chosen['chosen_by']})", flush=True)
    meta = dataclasses.replace(meta, metrics=metrics)
    model_dir = save_bundle(tc.model_dir, net, cfg, fingerprint, meta)
    history.write_summary(metrics)
    client = logger.experiment
    client.log_metric(logger.run_id, "best/val_dice_mean", metrics.get("best_val_dice_mean", float("nan")))
    if best is not None and best.is_file():
        client.log_artifact(logger.run_id, str(best), "checkpoints")
    for png in Path(tc.metrics_dir).glob("*.png"):
        client.log_artifact(logger.run_id, str(png), "plots")
    model_uri = log_pytorch_model(net, cfg.model.in_channels, cfg.model.spatial_dims, logger.run_id, uri, model_dir)
    meta = dataclasses.replace(meta, mlflow_model_uri=model_uri)
    name = registry_name(tc.registered_model, dataset_name(fingerprint))
    if name:
        registration = register_model(model_uri, name, logger.run_id, uri, tc.champion_alias)
        meta = dataclasses.replace(meta, registered_model=registration.uri)
        print(f"seg train: {registration.describe()}", flush=True)
    update_meta(model_dir, meta)
    return TrainResult(model_dir, logger.run_id, metrics, best)


def dataset_name(fingerprint: Fingerprint) -> str:
    """The name of the dataset folder the cache was made from (`synthetic` for the embedded dataset), whatever the
    config's data.root says: MLflow's `dataset` param and the registry name."""
    return Path(fingerprint.root).name if fingerprint.root else fingerprint.dataset
