"""`train`: fit an Attention U-Net on the preprocessed cache with Lightning, tracked in MLflow, and write the
model folder that `seg infer --model` takes."""

from __future__ import annotations

import dataclasses
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import torch

from seg.config import Config, TrainConfig, flatten
from seg.data.cache import Cache, Fingerprint
from seg.files import write_json
from seg.model_folder import ModelMeta, checkpoint_record, save_bundle, update_meta
from seg.runtime import (
    TrainSettings,
    describe_machine,
    is_rank_zero,
    resolve_device,
    threads_per_process,
    tune_training,
)
from seg.runtime.quiet import quiet_lightning
from seg.tracking.model import log_pytorch_model, register_model, registry_name
from seg.tracking.runs import log_tags, run_params, run_tags
from seg.tracking.uri import artifact_location, tracking_uri
from seg.train.average import weight_average
from seg.train.checkpoints import STATE_FILE, checkpoint_to_resume
from seg.train.dataset import check_model_fits_data, class_names, dataset_name
from seg.train.history import HistoryCallback
from seg.train.objectives import Objective, objective_for
from seg.train.schedule import ValidationPlan, measure_and_plan
from seg.train.shards import write_shards
from seg.train.trainer import build_trainer
from seg.train.validation_images import validation_image_logger

if TYPE_CHECKING:
    from lightning import Trainer
    from lightning.pytorch.callbacks import ModelCheckpoint
    from lightning.pytorch.loggers import MLFlowLogger

    from seg.train.datamodule import SegDataModule
    from seg.train.module import SegmentationModule


@dataclass
class TrainResult:
    model_dir: Path
    run_id: str
    metrics: dict
    best_checkpoint: Path | None


@dataclass
class Prepared:
    """What a run trains, and with what: the config as trained, the data, the network and its objective."""

    cfg: Config
    fingerprint: Fingerprint
    names: list[str]
    net: torch.nn.Module
    dm: SegDataModule
    objective: Objective
    module: SegmentationModule
    settings: TrainSettings
    runtime: dict
    plan: ValidationPlan


@dataclass
class Fitted:
    """A finished `trainer.fit` and what recorded it."""

    trainer: Trainer
    logger: MLFlowLogger
    checkpoint: ModelCheckpoint
    history: HistoryCallback
    meta: ModelMeta
    uri: str
    seconds: float


def _runtime(tc: TrainConfig, settings: TrainSettings, threads: int, plan: ValidationPlan) -> dict:
    """What this run resolved on this machine: model.json, train.json and MLflow params record it."""
    return {
        "machine": describe_machine().line(),
        "world_size": tc.world_size(),
        "num_nodes": tc.num_nodes,
        "precision": settings.precision,
        "channels_last": settings.channels_last,
        "num_threads": threads,
        "chosen_by": settings.chosen_by,
        "step_timings_s": {k: round(v, 4) for k, v in settings.timings.items()},
        "validation": plan.describe(),
    }


def train(cfg: Config, resume: bool = False) -> TrainResult:
    """Train with `cfg` (sections data, model, train; seam with `train.supervision: seam`); `resume` continues the
    last checkpoint's MLflow run."""
    job = prepare(cfg)
    fitted = fit(job, resume)
    return finish(job, fitted)


def prepare(cfg: Config) -> Prepared:
    """The objective, data, network, tuned settings and validation plan of a run; prints the start line."""
    import lightning as L

    from seg.models.build import build_for
    from seg.train.datamodule import SegDataModule
    from seg.train.module import SegmentationModule

    objective = objective_for(cfg)
    cfg = objective.training_config(cfg)
    tc = cfg.train
    quiet_lightning()
    # a machine's cores are shared by the processes on it: train.devices of them, whatever train.num_nodes is
    threads = threads_per_process(tc.num_threads, tc.devices if resolve_device(tc.accelerator).type == "cpu" else 1)
    torch.set_num_threads(threads)
    L.seed_everything(tc.seed, workers=True, verbose=False)
    fingerprint = Cache(cfg.data.cache_dir).fingerprint
    check_model_fits_data(cfg.model, fingerprint, cfg.data.cache_dir)
    names = class_names(fingerprint, cfg.model.out_channels)
    net = build_for(cfg)
    dm = SegDataModule(cfg.data, tc, cfg.model.spatial_dims, net.size_multiple, objective.sampling)
    settings = tune_training(
        net,
        dm.patch_size,
        cfg.model.in_channels,
        tc.batch_size,
        tc.precision,
        tc.channels_last,
        resolve_device(tc.accelerator),
        objective.timing_key(cfg.model),
    )
    resolved = dataclasses.replace(
        tc, precision=settings.precision, channels_last=settings.channels_last, num_threads=threads
    )
    module = SegmentationModule(net, resolved, names, dm.patch_size, dm.slice_axis, objective)
    line = objective.describe_data(dm, tc.seed) if is_rank_zero() else None
    if line:
        print(f"seg train: {line}", flush=True)
    plan = measure_and_plan(tc, module, dm, settings, Path(tc.output_dir) / STATE_FILE)
    if is_rank_zero():
        print(
            f"seg train: {tc.describe_limits()}; {settings.describe()}; num_threads {threads}; {plan.describe()}",
            flush=True,
        )
    return Prepared(
        cfg, fingerprint, names, net, dm, objective, module, settings, _runtime(tc, settings, threads, plan), plan
    )


def fit(job: Prepared, resume: bool) -> Fitted:
    """The MLflow run (new, or the resumed one), checkpoints, callbacks and trainer; then `trainer.fit`."""
    from lightning.pytorch.callbacks import ModelCheckpoint
    from lightning.pytorch.loggers import MLFlowLogger

    from seg.train.clock import SharedClock
    from seg.train.progress import progress_callbacks

    tc = job.cfg.train
    out_dir = Path(tc.output_dir)
    uri = tracking_uri(tc.tracking_uri)
    run_id, ckpt_path = None, None
    if resume:
        run_id, uri, ckpt_path = checkpoint_to_resume(out_dir)
    logger = MLFlowLogger(
        experiment_name=tc.experiment,
        tracking_uri=uri,
        run_id=run_id,
        run_name=tc.run_name,
        artifact_location=artifact_location(uri),
        tags=None if resume else run_tags(job.fingerprint.digest()),
        log_model=False,
    )
    validates = bool(job.dm.val_ids)  # data.fold "all": no validation, the model is the weights the budget ends with
    checkpoint = ModelCheckpoint(
        dirpath=out_dir / "checkpoints",
        filename="best",
        monitor="val/dice_mean" if validates else None,
        mode="max",
        save_last=True,
        save_top_k=1 if validates else 0,
        every_n_epochs=1,
    )
    history = HistoryCallback(Path(tc.metrics_dir), job.names[1:])
    progress, bar = progress_callbacks()
    if tc.gate_images and (job.net.map_ids() or job.objective.logs_images(job.net)):
        job.module.val_callbacks.append(validation_image_logger(logger, job.dm, history, job.objective))
    callbacks = [checkpoint, history, *weight_average(tc), *progress, SharedClock(job.plan)]
    trainer = build_trainer(tc, job.settings.precision, job.plan, logger, callbacks, bar)
    meta = ModelMeta.for_training(
        job.cfg,
        job.names,
        job.dm.patch_size,
        job.dm.slice_axis,
        precision=job.settings.precision,
        mlflow_run_id=logger.run_id,
        tracking_uri=uri,
        runtime=job.runtime,
    )
    job.module.export = checkpoint_record(job.cfg, job.fingerprint, meta)
    if trainer.global_rank == 0:  # of all machines: node 1's first process is local rank 0 too
        if not resume:
            shutil.rmtree(out_dir / "checkpoints", ignore_errors=True)  # our previous run's checkpoints, no user data
        _record_start(job, logger, uri, resume)
    start = time.time()
    trainer.fit(job.module, datamodule=job.dm, ckpt_path=ckpt_path)
    return Fitted(trainer, logger, checkpoint, history, meta, uri, time.time() - start)


def _record_start(job: Prepared, logger, uri: str, resume: bool) -> None:
    """The run state `--resume` and DDP ranks read; a new run's params and tags in MLflow."""
    out_dir = Path(job.cfg.train.output_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    write_json(
        out_dir / STATE_FILE, {"run_id": logger.run_id, "tracking_uri": uri, "validation": dataclasses.asdict(job.plan)}
    )
    if not resume:
        params, tags = run_params(flatten(job.cfg), job.runtime, dataset_name(job.fingerprint))
        logger.log_hyperparams(params)
        log_tags(logger.experiment, logger.run_id, tags)


def finish(job: Prepared, fitted: Fitted) -> TrainResult:
    """The best weights back, the objective's work after fitting, the model folder saved, logged and registered."""
    tc = job.cfg.train
    validates = bool(job.dm.val_ids)
    path = fitted.checkpoint.best_model_path
    best = Path(path) if path and validates else None
    if fitted.trainer.global_rank != 0:
        return TrainResult(Path(tc.model_dir), fitted.logger.run_id, {}, best)
    if best is not None and best.is_file():
        state = torch.load(best, map_location="cpu", weights_only=True)["state_dict"]
        job.net.load_state_dict({k.removeprefix("net."): v for k, v in state.items() if k.startswith("net.")})
    samples = fitted.trainer.num_training_batches * tc.batch_size * fitted.trainer.world_size  # DDP shares an epoch
    runtime = {**job.runtime, "cases_per_rank": write_shards(job.dm.shards, Path(tc.output_dir))}
    metrics = {**fitted.history.summary(fitted.seconds, samples), "runtime": runtime}
    record, line = job.objective.after_fit(job.net, job.dm, job.names)
    metrics.update(record)
    if line:
        print(f"seg train: {line}", flush=True)
    meta = dataclasses.replace(fitted.meta, metrics=metrics, runtime=runtime)
    model_dir = save_bundle(tc.model_dir, job.net, job.cfg, job.fingerprint, meta)
    fitted.history.write_summary(metrics)
    meta = _log_and_register(job, fitted, meta, model_dir, metrics, best)
    update_meta(model_dir, meta)
    return TrainResult(model_dir, fitted.logger.run_id, metrics, best)


def _log_and_register(
    job: Prepared, fitted: Fitted, meta: ModelMeta, model_dir: Path, metrics: dict, best: Path | None
) -> ModelMeta:
    """The best score, checkpoint, plots and model in the MLflow run; the model registered when asked. Returns
    `meta` with where MLflow holds the model."""
    tc, run_id, client = job.cfg.train, fitted.logger.run_id, fitted.logger.experiment
    client.log_metric(run_id, "best/val_dice_mean", metrics.get("best_val_dice_mean", float("nan")))
    client.set_tag(run_id, "runtime.cases_per_rank", str(metrics["runtime"]["cases_per_rank"]))
    if best is not None and best.is_file():
        client.log_artifact(run_id, str(best), "checkpoints")
    for png in Path(tc.metrics_dir).glob("*.png"):
        client.log_artifact(run_id, str(png), "plots")
    model_uri = log_pytorch_model(
        job.net, job.cfg.model.in_channels, job.cfg.model.spatial_dims, run_id, fitted.uri, model_dir
    )
    meta = dataclasses.replace(meta, mlflow_model_uri=model_uri)
    name = registry_name(tc.registered_model, dataset_name(job.fingerprint))
    if name:
        registration = register_model(model_uri, name, run_id, fitted.uri, tc.champion_alias)
        meta = dataclasses.replace(meta, registered_model=registration.uri)
        print(f"seg train: {registration.describe()}", flush=True)
    return meta
