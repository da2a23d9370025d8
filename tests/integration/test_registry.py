"""The model registry against a real `mlflow server`: `seg train` registers each model as a version of
seg-<dataset> and points the `champion` alias at the best validation Dice; `seg infer --model
models:/<name>@champion` runs that version."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from train_helpers import MlflowServer, run_seg, seg_env, synthetic_project

pytestmark = pytest.mark.slow


def _train(cfg, *sets: str) -> dict:
    res = run_seg("train", "--config", str(cfg), *(a for s in sets for a in ("--set", s)))
    assert res.returncode == 0, res.stderr[-3000:]
    return json.loads((cfg.parent / "model" / "model.json").read_text()) | {"stdout": res.stdout}


def test_train_registers_versions_and_the_champion_follows_validation_dice(tmp_path):
    cfg = synthetic_project(tmp_path, max_epochs=8, steps_per_epoch=8, gate_images=False)
    first = _train(cfg)
    second = _train(cfg, "train.lr=1e-9", "train.max_epochs=1")  # newer, but it has not learnt anything
    assert (
        first["registered_model"] == "models:/seg-synthetic/1"
        and second["registered_model"] == "models:/seg-synthetic/2"
    )
    assert "champion -> version 1" in second["stdout"]

    with MlflowServer(tmp_path / "mlflow.db") as server:
        dice = {}
        for meta in (first, second):
            run = server.get("/api/2.0/mlflow/runs/get", run_id=meta["mlflow_run_id"])["run"]
            dice[meta["mlflow_run_id"]] = {m["key"]: m["value"] for m in run["data"]["metrics"]}["best/val_dice_mean"]
        assert dice[first["mlflow_run_id"]] > dice[second["mlflow_run_id"]]  # the premise: the newest is worse
        alias = server.get("/api/2.0/mlflow/registered-models/alias", name="seg-synthetic", alias="champion")
        assert alias["model_version"]["version"] == "1" and alias["model_version"]["run_id"] == first["mlflow_run_id"]

        case = sorted((tmp_path / "synthetic" / "imagesTr").iterdir())[0]
        env = {**seg_env(), "MLFLOW_TRACKING_URI": server.url}
        out = tmp_path / "pred"
        res = subprocess.run(
            [
                sys.executable,
                "-m",
                "seg.cli",
                "infer",
                "--model",
                "models:/seg-synthetic@champion",
                "--input",
                str(case),
                "--output",
                str(out),
                "--no-tta",
            ],
            capture_output=True,
            text=True,
            timeout=600,
            env=env,
            cwd=tmp_path,
        )
        assert res.returncode == 0, res.stderr[-3000:]
    predictions = json.loads((out / "predictions.json").read_text())
    assert predictions["model"]["source"] == "models:/seg-synthetic@champion"
    assert predictions["model"]["mlflow_run_id"] == first["mlflow_run_id"]  # the champion's weights, not the newest
    assert predictions["summary"]["ok"] == 1 and (out / case.name).is_file()


def test_registration_can_be_switched_off(tmp_path):
    cfg = synthetic_project(tmp_path, max_epochs=1, steps_per_epoch=2, gate_images=False)
    meta = _train(cfg, "train.registered_model=null")
    assert meta["registered_model"] is None and "registered" not in meta["stdout"]
    assert os.path.isfile(tmp_path / "mlflow.db")
