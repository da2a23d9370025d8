"""One case, start to finish, in three stages that `seg.infer.pipeline` overlaps across cases: read and preprocess
like training; predict; restore to the input's grid (label map, probabilities, attention maps one at a time), write
atomically (the label map in the format its path asks for, `seg.infer.label_files`) and score against the
reference. Any failure becomes a one-line error in the case's record; each stage's seconds go to its `timings`."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from seg.data.errors import DataError, EmptyImageError
from seg.data.geometry import Geometry, grid_mismatch, spacing_from_affine
from seg.data.io import read_image, write_image
from seg.data.preprocess import preprocess_image
from seg.data.properties import CaseProperties
from seg.data.resample import resample
from seg.data.restore import restore_to_original
from seg.files import write_json
from seg.infer.case_metrics import case_metrics
from seg.infer.cases import CaseOutputs, InferCase
from seg.infer.label_files import Segments, check_output_format, read_labels, write_labels
from seg.infer.maps import to_grid
from seg.infer.postprocess import Postprocessing
from seg.infer.predictor import EnsemblePredictor, Prediction, Predictor
from seg.infer.records import EXISTS, FAILED, OK, CaseRecord
from seg.model_folder import ModelBundle
from seg.models.maps import GATE, MapId

USER_ERRORS = (DataError, ValueError, RuntimeError, OSError, MemoryError)  # a case's failure, in one line


def restore_labels(pred: Prediction, props: CaseProperties) -> np.ndarray:
    """Label map in the input's voxel grid. When preprocessing resampled, probabilities are resampled (linear)
    and then arg-maxed, which is smoother than resampling labels by nearest neighbour: one class at a time, with a
    running maximum, so no (K, *input grid) array is ever held."""
    if not resampled(props):
        return restore_to_original(pred.labels()[None].numpy(), props, is_label=True)
    best, labels = None, np.zeros(props.cropped_shape, np.uint8)
    for k, probability in enumerate(pred.probabilities.numpy()):
        p = resample(probability[None], props.cropped_shape, 1)[0]
        if best is None:
            best = p
            continue
        higher = p > best  # strictly: ties keep the lower class, as argmax does
        labels[higher] = k
        np.maximum(best, p, out=best)
        del p, higher  # before the next class is resampled: two class maps at a time, not three
    del best
    return restore_to_original(labels[None], props, is_label=True, cropped=True)


def resampled(props: CaseProperties) -> bool:
    """Preprocessing resampled this case: restoring its label map needs the probabilities."""
    return tuple(props.resampled_shape) != tuple(props.cropped_shape)


@dataclass
class Job:
    """One case on its way through the stages: read, predict, write."""

    case: InferCase
    outputs: CaseOutputs
    record: CaseRecord
    started: float = field(default_factory=time.perf_counter)
    image: np.ndarray | None = None
    props: CaseProperties | None = None
    empty: Geometry | None = None  # an all-zero image: a background label map is written, with a warning
    pred: Prediction | None = None

    @property
    def pending(self) -> bool:
        """Still to be predicted and written (not skipped, not failed)."""
        return self.record.status == ""

    def fail(self, e: BaseException) -> None:
        self.record.status, self.record.error = FAILED, _one_line(e, self.case)
        self.image = self.pred = None

    def timed(self, stage: str, since: float) -> float:
        now = time.perf_counter()
        self.record.timings[stage] = round(self.record.timings.get(stage, 0.0) + now - since, 4)
        return now


def read_case(case: InferCase, outputs: CaseOutputs, model: ModelBundle, overwrite: bool = False) -> Job:
    """Stage 1: skip a case whose outputs exist, else read and preprocess it like training."""
    job = Job(case, outputs, CaseRecord(case.case_id, list(case.images), case.label, [str(p) for p in outputs.all()]))
    if not overwrite and all(p.is_file() for p in outputs.all()):
        job.record.status = EXISTS
        return job
    try:
        check_output_format(case, outputs)
        job.image, job.props = preprocess_image(list(case.images), model.fingerprint, job.record.timings)
        job.record.voxels = int(np.prod(job.props.geometry.spatial_shape))
    except EmptyImageError as e:  # a blank scan in a clinical batch still gets an output, and a warning
        job.empty = e.geometry
        job.record.voxels = int(np.prod(e.geometry.spatial_shape))
        job.record.warning = f"{e} Wrote an all-background label map; check the scan."
    except USER_ERRORS as e:
        job.fail(e)
    return job


def predict_case(job: Job, predictor: Predictor | EnsemblePredictor) -> Job:
    """Stage 2: the network over the case's windows. Probabilities are kept whole only when an output or the
    restoring needs them; otherwise only the label map is made, as the windows land."""
    if not job.pending or job.empty is not None:
        return job
    since = time.perf_counter()
    try:
        keep = job.outputs.probabilities is not None or resampled(job.props)
        job.pred = predictor.predict(
            job.image, maps=job.outputs.map_kinds, gates=bool(job.outputs.gates), probabilities=keep
        )
        if not job.pred.finite:
            raise ValueError(
                "the network produced non-finite probabilities; check the model and the input's intensities"
            )
    except USER_ERRORS as e:
        job.fail(e)
    job.image = None
    job.timed("network", since)
    return job


def write_case(
    job: Job, segments: Segments, postprocessing: Postprocessing | None = None, binary_255: bool = False
) -> CaseRecord:
    """Stage 3: restore to the input's grid, write atomically (the label map last: then the case is complete),
    score against the reference."""
    record = job.record
    try:
        if job.pending:
            if job.empty is not None:
                _write_background(job.empty, job.case, segments, job.outputs)
            else:
                _restore_and_write(job, segments, postprocessing)
            record.status = OK
            record.predict_seconds = round(time.perf_counter() - job.started, 3)
        if job.case.label and record.status in (OK, EXISTS):
            since = time.perf_counter()
            record.metrics = _score(job.case, job.outputs.labels, list(segments.class_names), binary_255)
            job.timed("score", since)
    except USER_ERRORS as e:
        job.fail(e)
    job.pred = None
    record.seconds = round(time.perf_counter() - job.started, 3)
    return record


def process_case(
    case: InferCase,
    predictor: Predictor | EnsemblePredictor,
    outputs: CaseOutputs,
    overwrite: bool = False,
    postprocessing: Postprocessing | None = None,
) -> CaseRecord:
    """Predict one case (one model or an ensemble) and write its outputs, the three stages one after the other; a
    bad input is a failed record (one-line error), not an exception."""
    model = predictor.model
    job = predict_case(read_case(case, outputs, model, overwrite), predictor)
    return write_case(job, Segments.of(model), postprocessing, model.fingerprint.preprocessing.binary_255)


def _restore_and_write(job: Job, segments: Segments, postprocessing: Postprocessing | None) -> None:
    pred, props, outputs = job.pred, job.props, job.outputs
    since = time.perf_counter()
    if outputs.probabilities is not None:
        k = pred.probabilities.shape[0]
        probs = restore_to_original(
            pred.probabilities.numpy(), props, is_label=False, background=[1.0] + [0.0] * (k - 1)
        )
        since = job.timed("restore", since)
        write_image(probs, props.geometry, outputs.probabilities, compression=outputs.compression)
        since = job.timed("write", since)
        del probs
    labels = restore_labels(pred, props)
    maps, channels, shape = pred.maps, pred.channels, pred.shape
    job.pred = pred = None  # the probabilities go before any map is brought to full size
    since = job.timed("restore", since)
    since = _write_maps(maps, channels, shape, props, outputs, job, since)
    if postprocessing is not None:  # decided on cross-validation predictions (seg.infer.postprocess)
        labels = postprocessing.apply(labels)
        since = job.timed("restore", since)
    write_labels(labels, props.geometry, job.case, segments, outputs)  # last: the case is complete
    job.timed("write", since)


def _write_maps(
    maps: dict[MapId, torch.Tensor],
    channels: dict[MapId, torch.Tensor],
    shape: tuple[int, ...],
    props: CaseProperties,
    outputs: CaseOutputs,
    job: Job,
    since: float,
) -> float:
    """Gate maps (gates/), spatial maps (maps/), each resampled from its own grid to the image grid and restored
    to the input's, one at a time; the channel weights as {map key: [weights]} (maps/<case>_channel.json)."""
    paths = [*((MapId(GATE, name), path) for name, path in outputs.gates.items()), *outputs.maps.items()]
    for map_id, path in paths:
        full = restore_to_original(to_grid(maps[map_id], shape).numpy(), props, is_label=False)
        since = job.timed("restore", since)
        write_image(full, props.geometry, path, compression=outputs.compression)
        since = job.timed("write", since)
        del full
    if outputs.channel_file is not None:
        write_json(outputs.channel_file, {m.key: channels[m].tolist() for m in outputs.channels})
    return since


def _write_background(geometry: Geometry, case: InferCase, segments: Segments, outputs: CaseOutputs) -> None:
    """The outputs of an all-zero image on its own grid: gates and spatial maps 0, channel weights null (the
    network never saw the scan), probability 1 for background, labels 0."""
    shape = geometry.spatial_shape
    for path in (*outputs.gates.values(), *outputs.maps.values()):
        write_image(np.zeros(shape, np.float32), geometry, path, compression=outputs.compression)
    if outputs.channel_file is not None:
        write_json(outputs.channel_file, {m.key: None for m in outputs.channels})
    if outputs.probabilities is not None:
        probs = np.zeros((*shape, len(segments.class_names)), np.float32)
        probs[..., 0] = 1.0
        write_image(probs, geometry, outputs.probabilities, compression=outputs.compression)
    write_labels(np.zeros(shape, np.uint8), geometry, case, segments, outputs)  # last: the case is complete


def _score(case: InferCase, pred_path: Path, class_names: list[str], binary_255: bool) -> dict:
    label_path = str(case.label)
    pred, geometry = read_labels(pred_path, case)
    ref, ref_geometry = read_image(label_path)
    mismatch = grid_mismatch(label_path, ref_geometry, geometry)
    if mismatch:
        raise DataError(mismatch)
    ref = (ref > 0).astype(np.int64) if binary_255 else np.rint(ref).astype(np.int64)  # 0/255 masks mean 0/1
    return case_metrics(pred, ref, spacing_from_affine(geometry.affine_array()), class_names)


def _one_line(e: BaseException, case: InferCase) -> str:
    text = " ".join(str(e).split()) or type(e).__name__
    if isinstance(e, DataError):
        return text  # already names the file, the problem and the fix
    return f"{case.images[0]}: {type(e).__name__}: {text[:300]}"
