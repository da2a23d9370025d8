"""One case, start to finish: read and preprocess like training, predict, restore to the input's grid (label
map, probabilities, attention maps one at a time), write atomically (the label map in the format its path asks
for, `seg.infer.label_files`), score against the reference. Any failure becomes a one-line error in the case's
record."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import torch

from seg.data.errors import DataError, EmptyImageError
from seg.data.geometry import Geometry, grid_mismatch, spacing_from_affine
from seg.data.io import read_image, write_image
from seg.data.preprocess import preprocess_image
from seg.data.properties import CaseProperties
from seg.data.restore import restore_to_original
from seg.files import write_json
from seg.infer.case_metrics import case_metrics
from seg.infer.cases import CaseOutputs, InferCase
from seg.infer.label_files import Segments, check_output_format, read_labels, write_labels
from seg.infer.maps import to_grid
from seg.infer.postprocess import Postprocessing
from seg.infer.predictor import EnsemblePredictor, Prediction, Predictor
from seg.infer.records import EXISTS, FAILED, OK, CaseRecord
from seg.models.maps import GATE, MapId


def restore_labels(pred: Prediction, props: CaseProperties) -> np.ndarray:
    """Label map in the input's voxel grid. When preprocessing resampled, probabilities are resampled (linear)
    and then arg-maxed, which is smoother than resampling labels by nearest neighbour."""
    if tuple(props.resampled_shape) == tuple(props.cropped_shape):
        return restore_to_original(pred.labels()[None].numpy(), props, is_label=True)
    k = pred.probabilities.shape[0]
    probs = restore_to_original(pred.probabilities.numpy(), props, is_label=False, background=[1.0] + [0.0] * (k - 1))
    return probs.argmax(-1).astype(np.uint8)


def process_case(
    case: InferCase,
    predictor: Predictor | EnsemblePredictor,
    outputs: CaseOutputs,
    overwrite: bool = False,
    postprocessing: Postprocessing | None = None,
) -> CaseRecord:
    """Predict one case (one model or an ensemble) and write its outputs; a bad input is a failed record (one-line
    error), not an exception."""
    record = CaseRecord(case.case_id, list(case.images), case.label, [str(p) for p in outputs.all()])
    start = time.perf_counter()
    try:
        if not overwrite and all(p.is_file() for p in outputs.all()):
            record.status = EXISTS
        else:
            check_output_format(case, outputs)
            _predict_and_write(case, predictor, outputs, record, postprocessing)
            record.status = OK
            record.predict_seconds = round(time.perf_counter() - start, 3)
        if case.label:
            binary_255 = predictor.model.fingerprint.preprocessing.binary_255
            record.metrics = _score(case, outputs.labels, predictor.model.class_names, binary_255)
    except (DataError, ValueError, RuntimeError, OSError, MemoryError) as e:
        record.status, record.error = FAILED, _one_line(e, case)
    record.seconds = round(time.perf_counter() - start, 3)
    return record


def _predict_and_write(
    case: InferCase,
    predictor: Predictor | EnsemblePredictor,
    outputs: CaseOutputs,
    record: CaseRecord,
    postprocessing: Postprocessing | None = None,
) -> None:
    try:
        image, props = preprocess_image(list(case.images), predictor.model.fingerprint)
    except EmptyImageError as e:  # a blank scan in a clinical batch still gets an output, and a warning
        _write_background(e.geometry, case, Segments.of(predictor.model), outputs)
        record.voxels = int(np.prod(e.geometry.spatial_shape))
        record.warning = f"{e} Wrote an all-background label map; check the scan."
        return
    record.voxels = int(np.prod(props.geometry.spatial_shape))
    pred = predictor.predict(image, maps=outputs.map_kinds, gates=bool(outputs.gates))
    del image
    if not torch.isfinite(pred.probabilities).all():
        raise ValueError("the network produced non-finite probabilities; check the model and the input's intensities")
    if outputs.probabilities is not None:
        k = pred.probabilities.shape[0]
        probs = restore_to_original(
            pred.probabilities.numpy(), props, is_label=False, background=[1.0] + [0.0] * (k - 1)
        )
        write_image(probs, props.geometry, outputs.probabilities)
        del probs
    labels = restore_labels(pred, props)
    maps, channels, shape = pred.maps, pred.channels, pred.shape
    del pred  # the probabilities go before any map is brought to full size
    _write_maps(maps, channels, shape, props, outputs)
    if postprocessing is not None:  # decided on cross-validation predictions (seg.infer.postprocess)
        labels = postprocessing.apply(labels)
    write_labels(labels, props.geometry, case, Segments.of(predictor.model), outputs)  # last: the case is complete


def _write_maps(
    maps: dict[MapId, torch.Tensor],
    channels: dict[MapId, torch.Tensor],
    shape: tuple[int, ...],
    props: CaseProperties,
    outputs: CaseOutputs,
) -> None:
    """Gate maps (gates/), spatial maps (maps/), each resampled from its own grid to the image grid and restored
    to the input's, one at a time; the channel weights as {map key: [weights]} (maps/<case>_channel.json)."""
    paths = [*((MapId(GATE, name), path) for name, path in outputs.gates.items()), *outputs.maps.items()]
    for map_id, path in paths:
        full = to_grid(maps[map_id], shape).numpy()  # (1, *preprocessed grid)
        write_image(restore_to_original(full, props, is_label=False), props.geometry, path)
        del full
    if outputs.channel_file is not None:
        write_json(outputs.channel_file, {m.key: channels[m].tolist() for m in outputs.channels})


def _write_background(geometry: Geometry, case: InferCase, segments: Segments, outputs: CaseOutputs) -> None:
    """The outputs of an all-zero image on its own grid: gates and spatial maps 0, channel weights null (the
    network never saw the scan), probability 1 for background, labels 0."""
    shape = geometry.spatial_shape
    for path in (*outputs.gates.values(), *outputs.maps.values()):
        write_image(np.zeros(shape, np.float32), geometry, path)
    if outputs.channel_file is not None:
        write_json(outputs.channel_file, {m.key: None for m in outputs.channels})
    if outputs.probabilities is not None:
        probs = np.zeros((*shape, len(segments.class_names)), np.float32)
        probs[..., 0] = 1.0
        write_image(probs, geometry, outputs.probabilities)
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
