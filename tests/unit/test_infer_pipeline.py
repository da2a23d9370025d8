"""Batch inference as a pipeline (`seg.infer.pipeline`): the same files as one case after another, records in
order, a bad case one line while the batch goes on, bounded read-ahead, per-stage timings; label maps made without
holding probabilities; restoring a resampled case one class at a time; compression levels."""

from __future__ import annotations

import json
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import torch
from infer_fixture import tiny_model_folder

import seg.infer.pipeline as pipeline_module
from seg.cli import main
from seg.config import ConfigError, InferConfig
from seg.data.geometry import Geometry
from seg.data.io import read_image, write_image
from seg.data.preprocess import preprocess_image
from seg.data.restore import restore_to_original
from seg.infer.cases import find_cases, outputs_for
from seg.infer.model_io import load_model
from seg.infer.pipeline import CasePipeline
from seg.infer.predictor import Predictor
from seg.infer.process import resampled, restore_labels


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory, synthetic_3d) -> Path:
    return tiny_model_folder(tmp_path_factory.mktemp("pipeline"), synthetic_3d)


@pytest.fixture()
def inputs(synthetic_3d, tmp_path) -> Path:
    """Four cases, the third not an image."""
    folder = tmp_path / "in"
    folder.mkdir()
    for i, src in enumerate(sorted((synthetic_3d / "imagesTr").iterdir())[:3]):
        (folder / f"case{i if i < 2 else 3}.nii.gz").write_bytes(src.read_bytes())
    (folder / "case2.nii.gz").write_bytes(b"not a NIfTI file")
    return folder


def _infer(model_dir: Path, inputs: Path, out: Path, read_ahead: int, writers: int) -> dict:
    flags = ["--read-ahead", str(read_ahead), "--writer-threads", str(writers)]
    rc = main(["infer", "--model", str(model_dir), "--input", str(inputs), "--output", str(out), "--gates", *flags])
    assert rc == 1  # case2 failed, the others were written
    return json.loads((out / "predictions.json").read_text())


def test_pipelined_batch_writes_what_a_plain_loop_writes(model_dir, inputs, tmp_path, capsys):
    plain = _infer(model_dir, inputs, tmp_path / "plain", 0, 0)
    piped = _infer(model_dir, inputs, tmp_path / "piped", 2, 2)
    assert list(piped["cases"]) == ["case0", "case1", "case2", "case3"]
    assert piped["summary"]["failed"] == 1 and piped["summary"]["ok"] == 3
    (failure,) = piped["failures"]
    assert "case2.nii.gz" in failure and "\n" not in failure
    for case in ("case0", "case1", "case3"):
        for rel in (f"{case}.nii.gz", f"gates/{case}_level0.nii.gz"):
            a, b = nib.load(tmp_path / "plain" / rel), nib.load(tmp_path / "piped" / rel)
            assert np.array_equal(np.asarray(a.dataobj), np.asarray(b.dataobj)) and np.array_equal(a.affine, b.affine)
        timings = piped["cases"][case]["timings"]
        assert set(timings) == {"read", "preprocess", "network", "restore", "write"}
    summary = piped["summary"]
    assert summary["voxels_per_second"] > 0 and summary["network_voxels_per_second"] >= summary["voxels_per_second"]
    assert summary["stage_seconds"]["network"] > 0 and piped["settings"]["writer_threads"] == 2
    assert plain["summary"]["ok"] == 3
    assert not list((tmp_path / "piped").rglob(".tmp-*"))  # nothing half-written


def test_reads_stay_bounded_and_records_come_in_order(model_dir, synthetic_3d, tmp_path, monkeypatch):
    model = load_model(model_dir)
    predictor = Predictor(model, tta=False, precision="32", sw_batch_size=1)
    cases = find_cases(str(synthetic_3d / "imagesTr"))[:5]
    reads, seen = [], []
    real_read = pipeline_module.read_case

    def counted(case, *args):
        reads.append(case.case_id)
        return real_read(case, *args)

    real_predict = predictor.predict

    def predict(*args, **kwargs):
        seen.append(len(reads))
        return real_predict(*args, **kwargs)

    monkeypatch.setattr(pipeline_module, "read_case", counted)
    monkeypatch.setattr(predictor, "predict", predict)
    outputs_of = lambda case: outputs_for(case, tmp_path, False, [])  # noqa: E731
    records = list(CasePipeline(predictor, outputs_of, read_ahead=1, writers=1).run(cases))
    assert [r.case for r in records] == [c.case_id for c in cases]
    assert all(r.status == "ok" for r in records)
    assert all(n <= i + 2 for i, n in enumerate(seen))  # case i predicted with at most case i + 1 read ahead


def test_a_bug_in_a_stage_keeps_its_traceback(model_dir, synthetic_3d, tmp_path, monkeypatch):
    predictor = Predictor(load_model(model_dir), tta=False, precision="32", sw_batch_size=1)
    cases = find_cases(str(synthetic_3d / "imagesTr"))[:2]

    def broken(*args, **kwargs):
        raise TypeError("a bug")

    monkeypatch.setattr(pipeline_module, "write_case", broken)
    with pytest.raises(TypeError, match="a bug"):
        list(CasePipeline(predictor, lambda c: outputs_for(c, tmp_path, False, [])).run(cases))


def test_labels_without_probabilities_equal_the_argmax(model_dir, synthetic_3d):
    model = load_model(model_dir)
    predictor = Predictor(model, tta=True, precision="32", sw_batch_size=2)
    image, _ = preprocess_image([sorted((synthetic_3d / "imagesTr").iterdir())[0]], model.fingerprint)
    full = predictor.predict(image, gates=True)
    lean = predictor.predict(image, gates=True, probabilities=False)
    assert lean.probabilities is None and lean.finite
    assert torch.equal(lean.labels(), full.probabilities.argmax(0).to(torch.uint8))
    assert lean.maps.keys() == full.maps.keys()
    assert all(torch.equal(lean.maps[k], full.maps[k]) for k in full.maps)


def test_restoring_a_resampled_case_one_class_at_a_time_equals_the_whole_argmax(model_dir, synthetic_3d, tmp_path):
    model = load_model(model_dir)
    src = nib.load(sorted((synthetic_3d / "imagesTr").iterdir())[0])
    coarse = tmp_path / "coarse.nii.gz"
    nib.save(nib.Nifti1Image(np.asarray(src.dataobj), np.diag([1.7, 0.6, 1.3, 1.0])), coarse)
    image, props = preprocess_image([coarse], model.fingerprint)
    assert resampled(props)
    pred = Predictor(model, tta=False, precision="32", sw_batch_size=1).predict(image)
    k = pred.probabilities.shape[0]
    whole = restore_to_original(pred.probabilities.numpy(), props, is_label=False, background=[1.0] + [0.0] * (k - 1))
    expected = whole.argmax(-1).astype(np.uint8)
    got = restore_labels(pred, props)
    assert got.shape == expected.shape == src.shape and np.array_equal(got, expected)


def test_compression_level_sets_the_writers_level(tmp_path):
    rng = np.random.default_rng(0)
    labels = (rng.random((40, 40, 30)) > 0.7).astype(np.uint8) * 2
    geometry = _plain_geometry(tmp_path)
    sizes = {}
    for level in (0, 9):
        for suffix in (".nii.gz", ".nrrd"):
            path = write_image(labels, geometry, tmp_path / f"l{level}{suffix}", compression=level)
            back, _ = read_image(path)
            assert np.array_equal(back, labels)
            sizes[level, suffix] = path.stat().st_size
    assert sizes[9, ".nii.gz"] < sizes[0, ".nii.gz"] / 3 and sizes[9, ".nrrd"] < sizes[0, ".nrrd"] / 3


def _plain_geometry(tmp_path: Path) -> Geometry:
    path = tmp_path / "plain.nii.gz"
    nib.save(nib.Nifti1Image(np.zeros((40, 40, 30), np.uint8), np.eye(4)), path)
    return read_image(path)[1]


@pytest.mark.parametrize(("field", "value"), [("read_ahead", -1), ("writer_threads", 1.5), ("compression_level", 10)])
def test_pipeline_settings_are_checked(field, value):
    with pytest.raises(ConfigError, match=f"infer.{field}"):
        InferConfig(**{field: value})


def test_auto_overlaps_the_stages_on_a_gpu_only():
    from seg.infer.run import overlap_stages

    assert overlap_stages(InferConfig(), torch.device("cpu")) == (0, 0)
    assert overlap_stages(InferConfig(), torch.device("cuda", 0)) == (1, 1)
    assert overlap_stages(InferConfig(read_ahead=2, writer_threads=0), torch.device("cuda", 0)) == (2, 0)
    assert overlap_stages(InferConfig(read_ahead=1, writer_threads=1), torch.device("cpu")) == (1, 1)
