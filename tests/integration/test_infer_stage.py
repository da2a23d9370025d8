"""`seg infer` with a really trained model: the three ways to name a model agree, 2-process DDP writes every
case exactly once, real Hippocampus files come back with their geometry, and the DVC-stage default."""

from __future__ import annotations

import json
import os
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from train_helpers import run_seg, synthetic_project

from seg.metrics import dice

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("trained")
    cfg = synthetic_project(root, n_cases=6, gate_images=False, max_epochs=2, steps_per_epoch=4)
    res = run_seg("train", "--config", str(cfg))
    assert res.returncode == 0, res.stderr[-3000:]
    return root


def _labels(folder: Path) -> dict[str, np.ndarray]:
    return {p.name: np.asarray(nib.load(p).dataobj) for p in sorted(folder.glob("*.nii.gz"))}


def test_folder_checkpoint_and_mlflow_uri_give_the_same_segmentations(trained, tmp_path):
    meta = json.loads((trained / "model" / "model.json").read_text())
    images = str(trained / "synthetic" / "imagesTr" / "synth3d_00[0-1].nii.gz")
    os.environ["MLFLOW_TRACKING_URI"] = f"sqlite:///{trained / 'mlflow.db'}"
    try:
        results = {}
        for name, model in (
            ("folder", trained / "model"),
            ("ckpt", trained / "out" / "checkpoints" / "best.ckpt"),
            ("mlflow", f"runs:/{meta['mlflow_run_id']}/model"),
        ):
            res = run_seg(
                "infer",
                "--model",
                str(model),
                "--input",
                images,
                "--output",
                str(tmp_path / name),
                "--no-tta",
                "--precision",
                "32",
            )
            assert res.returncode == 0, (name, res.stderr[-2000:])
            results[name] = _labels(tmp_path / name)
    finally:
        del os.environ["MLFLOW_TRACKING_URI"]
    assert len(results["folder"]) == 2
    for name in ("ckpt", "mlflow"):
        assert all(np.array_equal(results["folder"][k], results[name][k]) for k in results["folder"]), name
    pred = json.loads((tmp_path / "mlflow" / "predictions.json").read_text())
    assert pred["model"]["mlflow_run_id"] == meta["mlflow_run_id"]


def test_ddp_two_processes_write_every_case_exactly_once(trained, tmp_path):
    out = tmp_path / "ddp"
    res = run_seg(
        "infer",
        "--model",
        str(trained / "model"),
        "--input",
        str(trained / "synthetic" / "imagesTr"),
        "--output",
        str(out),
        "--devices",
        "2",
        "--strategy",
        "ddp",
        "--accelerator",
        "cpu",
        "--no-tta",
        "--num-threads",
        "1",
    )
    assert res.returncode == 0, res.stderr[-3000:]
    pred = json.loads((out / "predictions.json").read_text())
    cases = pred["cases"]
    assert len(cases) == 6 and pred["settings"]["devices"] == 2
    ranks = [c["rank"] for c in cases.values()]
    assert sorted(ranks) == [0, 0, 0, 1, 1, 1]  # sharded, no case padded onto a second rank
    assert sorted(p.name for p in out.glob("*.nii.gz")) == sorted(f"{c}.nii.gz" for c in cases)


def test_real_hippocampus_files_keep_their_geometry(trained, shared_data, tmp_path):
    src = shared_data / "Task04_Hippocampus" / "imagesTr"
    files = sorted(p for p in src.glob("hippocampus_*.nii.gz") if not p.name.startswith("."))[:3]
    out = tmp_path / "hip"
    res = run_seg(
        "infer",
        "--model",
        str(trained / "model"),
        "--input",
        str(src / "hippocampus_00[0-9].nii.gz"),
        "--output",
        str(out),
        "--labels",
        str(shared_data / "Task04_Hippocampus" / "labelsTr"),
    )
    assert res.returncode == 0, res.stderr[-3000:]
    written = sorted(out.glob("*.nii.gz"))
    assert written
    for p in written:
        ref = nib.load(src / p.name)
        got = nib.load(p)
        assert got.shape == ref.shape and np.array_equal(got.affine, ref.affine)
        assert np.array_equal(got.header.get_sform(), ref.header.get_sform())
    assert files and json.loads((out / "metrics.json").read_text())["summary"]["cases"] == len(written)


def test_pipeline_default_scores_the_evaluation_cases(trained, tmp_path):
    cfg = trained / "params.yaml"
    res = run_seg(
        "infer",
        "--config",
        str(cfg),
        "--model",
        str(trained / "model"),
        "--output",
        str(tmp_path / "eval"),
        cwd=tmp_path,
    )
    assert res.returncode == 0, res.stderr[-3000:]
    metrics = json.loads((tmp_path / "metrics" / "infer.json").read_text())
    val = json.loads((trained / "cache" / "splits.json").read_text())[0]["val"]
    assert metrics["cases"] == len(val)
    assert metrics["dice_mean"] == pytest.approx((metrics["dice_head"] + metrics["dice_body"]) / 2)
    # eight steps learn the head class (Dice about 0.3 here); predicting it everywhere scores about 0.01
    labels = [np.rint(np.asarray(nib.load(trained / "synthetic" / "labelsTr" / f"{c}.nii.gz").dataobj)) for c in val]
    everywhere = np.mean([dice(np.ones_like(label, bool), label == 1) for label in labels])
    assert metrics["dice_head"] > 4 * everywhere, (metrics, everywhere)
