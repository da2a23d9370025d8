"""`seg infer`: a batch of cases through Lightning's predict loop, so `--devices N --strategy ddp` shards the
cases over processes (each case on exactly one rank) with the same code as a single process. One model or an
ensemble (its members' softmax averaged): the same loop, outputs and failure handling."""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch

from seg.case_progress import CaseProgress
from seg.config import InferConfig
from seg.files import write_json
from seg.infer.case_metrics import write_metrics
from seg.infer.cases import InferCase, outputs_for
from seg.infer.pipeline import CasePipeline
from seg.infer.postprocess import Postprocessing
from seg.infer.records import EXISTS, OK, STAGES, CaseRecord
from seg.model_folder import ModelBundle
from seg.runtime import InferSettings, describe_machine, resolve_device, threads_per_process
from seg.runtime.quiet import quiet_lightning

PREDICTIONS_FILE = "predictions.json"


@dataclass
class InferSummary:
    out_dir: Path
    records: list[CaseRecord]
    metrics: dict | None
    seconds: float
    rank: int = 0

    @property
    def failed(self) -> list[CaseRecord]:
        return [r for r in self.records if r.failed]


def _module(
    models: list[ModelBundle],
    cfg: InferConfig,
    cases: list[InferCase],
    out_dir: Path,
    log,
    postprocessing: Postprocessing | None,
):
    import lightning as L

    from seg.infer.predictor import make_predictor

    class InferModule(L.LightningModule):
        def __init__(self) -> None:
            super().__init__()
            self.nets = torch.nn.ModuleList(m.net for m in models)  # Lightning places them on the device
            self.records: list[CaseRecord] = []
            self.all_records: list[CaseRecord] = []
            self.seconds = 0.0  # this rank's case loop, first read to last write
            self.all_seconds = 0.0  # the longest rank's

        def predict_dataloader(self):
            rank, world = self.trainer.global_rank, self.trainer.world_size
            shard = list(range(rank, len(cases), world))  # each case on exactly one rank, no padding
            return torch.utils.data.DataLoader([shard], batch_size=None, collate_fn=lambda i: i)  # one step: a shard

        def transfer_batch_to_device(self, batch, device, dataloader_idx):
            return batch  # case indices; the case's tensors are made on the device inside the step

        def on_predict_start(self) -> None:
            self.predictor = make_predictor(models, cfg.overlap, cfg.tta, cfg.precision, cfg.sw_batch_size, self.device)
            if self.global_rank == 0:
                print(f"seg infer: {self.predictor.describe()}; num_threads {torch.get_num_threads()}", flush=True)
            self.predictor.warm_up()  # kernel selection on the first window is not any case's time
            rank, world = self.trainer.global_rank, self.trainer.world_size
            self.progress = CaseProgress(len(range(rank, len(cases), world)), "seg infer")
            gates = self.predictor.gate_names if cfg.gates else []
            maps = self.predictor.map_ids(cfg.maps)
            if cfg.maps and not maps and self.global_rank == 0:
                print(f"seg infer: warning: the model has no maps of kinds {', '.join(cfg.maps)}", file=sys.stderr)
            self.outputs_of = lambda case: outputs_for(
                case, out_dir, cfg.probabilities, gates, maps, cfg.output_format, cfg.compression_level
            )

        def predict_step(self, shard: list[int], batch_idx: int):
            self.overlap = overlap_stages(cfg, self.device)
            pipeline = CasePipeline(self.predictor, self.outputs_of, cfg.overwrite, postprocessing, *self.overlap)
            for record in pipeline.run([cases[i] for i in shard]):
                record.rank = self.global_rank
                (log or self._print)(record)
                self.records.append(record)
            self.seconds = pipeline.seconds

        def _print(self, record: CaseRecord) -> None:
            line = _record_line(record)
            self.progress.done(line, sys.stderr if record.failed else sys.stdout, tag=not record.failed)
            if record.warning:
                print(f"warning: {record.warning}", file=sys.stderr, flush=True)

        def on_predict_end(self) -> None:
            self.progress.close()

        def on_predict_epoch_end(self) -> None:
            import torch.distributed as dist

            if dist.is_available() and dist.is_initialized():
                gathered: list = [None] * dist.get_world_size()
                dist.all_gather_object(gathered, (self.records, self.seconds))
                self.all_records = [r for part, _ in gathered for r in part]
                self.all_seconds = max(seconds for _, seconds in gathered)
            else:
                self.all_records, self.all_seconds = list(self.records), self.seconds

    return InferModule()


def infer(
    model: ModelBundle | Sequence[ModelBundle],
    cases: list[InferCase],
    cfg: InferConfig,
    log=None,
    postprocessing: Postprocessing | None = None,
) -> InferSummary:
    """Predict `cases` with `model` (one, or an ensemble's members from `load_models`) into `cfg.output`; writes
    predictions.json (and metrics with labels). `postprocessing` (`model_io.postprocessing_for`) is applied to every
    label map."""
    import lightning as L

    models = [model] if isinstance(model, ModelBundle) else list(model)

    quiet_lightning()
    cpu = resolve_device(cfg.accelerator).type == "cpu"
    torch.set_num_threads(threads_per_process(cfg.num_threads, cfg.devices if cpu else 1))
    out_dir = Path(cfg.output)
    out_dir.mkdir(parents=True, exist_ok=True)
    module = _module(models, cfg, cases, out_dir, log, postprocessing)
    trainer = L.Trainer(
        accelerator=cfg.accelerator,
        devices=cfg.devices,
        strategy=cfg.strategy,
        precision="32-true",
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        use_distributed_sampler=False,
        inference_mode=True,
    )
    start = time.perf_counter()
    trainer.predict(module, return_predictions=False)
    seconds = time.perf_counter() - start
    records = sorted(module.all_records, key=lambda r: r.case)
    if trainer.global_rank != 0:
        return InferSummary(out_dir, records, None, seconds, trainer.global_rank)
    metrics = write_metrics(out_dir, records, models[0].class_names, cfg.metrics_file)
    predictor = getattr(module, "predictor", None)  # absent when there was no case to predict
    settings = predictor.settings if predictor is not None else None
    write_json(
        out_dir / PREDICTIONS_FILE,
        _predictions(
            models,
            cfg,
            settings,
            records,
            metrics,
            seconds,
            module.all_seconds,
            trainer.world_size,
            postprocessing,
            getattr(module, "overlap", (cfg.read_ahead, cfg.writer_threads)),
        ),
    )
    return InferSummary(out_dir, records, metrics, seconds)


def _predictions(
    models: list[ModelBundle],
    cfg: InferConfig,
    settings: InferSettings | None,
    records: list[CaseRecord],
    metrics,
    seconds: float,
    loop_seconds: float,
    world: int,
    postprocessing: Postprocessing | None = None,
    overlap: tuple[int | str, int | str] = ("auto", "auto"),
) -> dict:
    """The batch's record. `model` describes the first (or only) member at its top level, as before ensembles,
    and every member under `members`; `settings` are the first member's (each keeps its window and mirrors).
    `loop_seconds`: the case loop's wall time (first read to last write; the longest rank's), without loading the
    model and tuning: what `voxels_per_second` divides by; `stage_seconds` sums each stage over the cases."""
    import seg

    model = models[0]

    ok = [r for r in records if r.status == OK]
    voxels = sum(r.voxels or 0 for r in ok)
    stages = {s: round(sum(r.timings.get(s, 0.0) for r in records), 3) for s in STAGES}
    return {
        "model": {
            "source": model.source,
            "mlflow_run_id": model.meta.mlflow_run_id,
            "tracking_uri": model.meta.tracking_uri,
            "config_hash": model.config_hash,
            "trained_with": model.meta.seg_version,
            "class_names": model.class_names,
            "members": [_member(m, cfg.tta) for m in models],
        },
        "seg_version": seg.__version__,
        "settings": {
            "tta": cfg.tta,
            "tta_mirror_axes": list(model.mirrored_axes) if cfg.tta else [],
            "postprocessing": postprocessing.to_dict() if postprocessing else None,
            "maps": list(cfg.maps),
            "overlap": cfg.overlap,
            "read_ahead": overlap[0],
            "writer_threads": overlap[1],
            "compression_level": cfg.compression_level,
            "backend": cfg.backend,
            "precision": settings.precision if settings else cfg.precision,
            "precision_requested": cfg.precision,
            "sw_batch_size": settings.sw_batch_size if settings else cfg.sw_batch_size,
            "devices": world,
            "patch_size": list(model.patch_size),
            "num_threads": torch.get_num_threads(),
            "machine": describe_machine().line(),
            "speed_settings": settings.describe() if settings else None,
        },
        "summary": {
            "cases": len(records),
            "ok": len(ok),
            "exists": sum(r.status == EXISTS for r in records),
            "failed": sum(r.failed for r in records),
            "seconds": round(seconds, 2),
            "loop_seconds": round(loop_seconds, 2),
            "voxels_per_second": round(voxels / loop_seconds) if voxels and loop_seconds else None,
            "network_voxels_per_second": round(voxels / stages["network"]) if voxels and stages["network"] else None,
            "stage_seconds": stages,
        },
        "metrics": metrics,
        "failures": [r.error for r in records if r.failed],
        "warnings": [r.warning for r in records if r.warning],
        "cases": {r.case: r.to_dict() for r in records},
    }


def overlap_stages(cfg: InferConfig, device: torch.device) -> tuple[int, int]:
    """(read_ahead, writer_threads) with `auto` resolved: overlap reading and writing with the network on a GPU,
    whose work leaves the CPU free; one stage after the other on a CPU, where they compete for the cores the network
    uses (on 2 cores overlapping was no faster, and holds one more case in memory: docs/benchmarks.md)."""
    on_gpu = device.type != "cpu"
    resolve = lambda value: int(on_gpu) if value == "auto" else int(value)  # noqa: E731
    return resolve(cfg.read_ahead), resolve(cfg.writer_threads)


def _member(model: ModelBundle, tta: bool) -> dict:
    return {
        "source": model.source,
        "mlflow_run_id": model.meta.mlflow_run_id,
        "config_hash": model.config_hash,
        "patch_size": list(model.patch_size),
        "tta_mirror_axes": list(model.mirrored_axes) if tta else [],
    }


def _record_line(record: CaseRecord) -> str:
    if record.failed:
        return f"failed: {record.error}"
    dice = ""
    if record.metrics:
        dice = "  dice " + " ".join(f"{k}={_number(v['dice'])}" for k, v in record.metrics.items())
    return f"{record.status:>6}  {record.case}  {record.seconds:.1f} s{dice}"


def _number(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3f}"  # None: the class is in neither map


def read_predictions(out_dir: str | Path) -> dict:
    return json.loads((Path(out_dir) / PREDICTIONS_FILE).read_text())
