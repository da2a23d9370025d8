"""`seg train` for real on a tiny cache: model folder, DVC metrics, MLflow run read back through a real server,
resume after a kill, 2D on slices, and 2-process DDP on CPU."""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time

import pytest
import torch
from train_helpers import MlflowServer, run_seg, seg_env, tiny_project

pytestmark = pytest.mark.slow


def test_train_writes_model_metrics_and_mlflow_run(tmp_path):
    cfg = tiny_project(tmp_path)
    res = run_seg("train", "--config", str(cfg))
    assert res.returncode == 0, res.stderr[-3000:]
    model = tmp_path / "model"
    meta = json.loads((model / "model.json").read_text())
    state = torch.load(model / "weights.pt", weights_only=True)
    assert any(k.startswith("gates.level0") for k in state)
    assert meta["class_names"] == ["background", "bright", "dim"] and meta["patch_size"] == [16, 16, 16]
    metrics = json.loads((tmp_path / "metrics" / "train.json").read_text())
    rows = list(csv.DictReader((tmp_path / "metrics" / "train_history.csv").read_text().splitlines()))
    assert [int(r["epoch"]) for r in rows] == [0, 1] and metrics["epochs"] == 2
    assert metrics["best_val_dice_mean"] == pytest.approx(max(float(r["val_dice_mean"]) for r in rows))
    # six steps learn the bright class (Dice about 0.27 here); predicting it everywhere scores about 0.02
    everywhere = _dice_of_predicting_everywhere(tmp_path / "cache", 1)
    assert metrics["best_val_dice_bright"] > 4 * everywhere, (metrics, everywhere)

    with MlflowServer(tmp_path / "mlflow.db") as server:
        run = server.get("/api/2.0/mlflow/runs/get", run_id=meta["mlflow_run_id"])["run"]
        metric_keys = {m["key"] for m in run["data"]["metrics"]}
        assert {"val/dice_mean", "val/dice_bright", "train/loss"} <= metric_keys
        tags = {t["key"]: t["value"] for t in run["data"]["tags"]}
        assert {"git_commit", "data_fingerprint", "dvc_stage"} <= set(tags)
        params = {p["key"]: p["value"] for p in run["data"]["params"]}
        assert "litlogger" not in res.stderr and "LeafSpec" not in res.stderr  # no foreign noise
        # two lines above each image card's picture; the dataset is the folder the cache was made from, whatever
        # data.root says (the config here leaves it null)
        assert params == {"dataset": "cache_raw", "train.lr": "0.003"}
        assert tags["config.model.channels"] == "[8, 16, 32]" and tags["runtime.precision"] == "32"
        listing = server.get("/api/2.0/mlflow/artifacts/list", run_id=meta["mlflow_run_id"], path="images")
        pngs = [f["path"] for f in listing["files"] if f["path"].endswith(".png")]
        for level in ("gate_level0", "gate_level1"):
            steps = sorted(int(p.split("+step+")[1].split("+")[0]) for p in pngs if f"/{level}+" in p)
            assert steps == [0, 1], pngs  # one image per validation epoch
        png = server.get("/get-artifact", run_uuid=meta["mlflow_run_id"], path=pngs[0])
        assert png[:8] == b"\x89PNG\r\n\x1a\n"
        top = {f["path"] for f in server.get("/api/2.0/mlflow/artifacts/list", run_id=meta["mlflow_run_id"])["files"]}
        assert {"checkpoints", "model_folder", "plots"} <= top

    import mlflow

    mlflow.set_tracking_uri(f"sqlite:///{tmp_path / 'mlflow.db'}")
    meta = json.loads((model / "model.json").read_text())
    loaded = mlflow.pytorch.load_model(meta["mlflow_model_uri"])
    with torch.no_grad():
        assert loaded(torch.randn(1, 1, 13, 17, 11)).shape == (1, 3, 13, 17, 11)  # any spatial size


@pytest.mark.parametrize("ema_decay", [0.0, 0.9], ids=["raw", "ema"])
def test_resume_after_kill_continues_same_run(tmp_path, ema_decay):
    cfg = tiny_project(tmp_path, max_epochs=6, steps_per_epoch=4, gate_images=False, ema_decay=ema_decay)
    proc = subprocess.Popen(
        [sys.executable, "-m", "seg.cli", "train", "--config", str(cfg)],
        env=seg_env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    history = tmp_path / "metrics" / "train_history.csv"
    deadline = time.time() + 300
    while time.time() < deadline and proc.poll() is None:
        if history.is_file() and len(list(csv.DictReader(history.read_text().splitlines()))) >= 2:
            break
        time.sleep(0.2)
    assert proc.poll() is None, "training ended before it could be killed; raise max_epochs"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    epochs_before = len(list(csv.DictReader(history.read_text().splitlines())))
    run_before = json.loads((tmp_path / "out" / "run.json").read_text())["run_id"]

    res = run_seg("train", "--config", str(cfg), "--resume")
    assert res.returncode == 0, res.stderr[-3000:]
    rows = list(csv.DictReader(history.read_text().splitlines()))
    assert [int(r["epoch"]) for r in rows] == list(range(6))  # nothing lost, nothing repeated
    meta = json.loads((tmp_path / "model" / "model.json").read_text())
    assert meta["mlflow_run_id"] == run_before and epochs_before >= 2

    import mlflow

    client = mlflow.MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    steps = sorted({m.step for m in client.get_metric_history(run_before, "val/dice_mean")})
    assert len(steps) == 6
    last = torch.load(tmp_path / "out" / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=False)
    assert ("current_model_state" in last) == (ema_decay > 0)  # with EMA the raw weights resume training


def test_resume_names_a_damaged_checkpoint_and_takes_the_newest_whole_one(tmp_path):
    cfg = tiny_project(tmp_path, max_epochs=2, steps_per_epoch=2, gate_images=False)
    assert run_seg("train", "--config", str(cfg)).returncode == 0
    checkpoints = tmp_path / "out" / "checkpoints"
    with open(checkpoints / "last.ckpt", "r+b") as f:  # what a kill during a plain write or a full disk leaves
        f.truncate(1000)
    res = run_seg("train", "--config", str(cfg), "--resume")
    assert res.returncode == 0, res.stderr[-3000:]
    assert f"seg train: {checkpoints / 'last.ckpt'} is damaged: not a complete checkpoint" in res.stderr
    assert "resuming from best.ckpt" in res.stderr and "Traceback" not in res.stderr
    for name in ("last.ckpt", "best.ckpt"):
        with open(checkpoints / name, "r+b") as f:
            f.truncate(1000)
    res = run_seg("train", "--config", str(cfg), "--resume")
    lines = res.stderr.strip().splitlines()
    assert res.returncode == 2 and len(lines) == 1, res.stderr[-3000:]
    assert "is damaged" in lines[0] and "Run `seg train` without --resume to start over." in lines[0]


def test_train_2d_network_on_slices_of_3d_volumes(tmp_path):
    cfg = tiny_project(tmp_path, spatial_dims=2)
    res = run_seg("train", "--config", str(cfg))
    assert res.returncode == 0, res.stderr[-3000:]
    meta = json.loads((tmp_path / "model" / "model.json").read_text())
    assert meta["slice_axis"] == 2 and meta["patch_size"] == [16, 16]


def test_ddp_two_processes_on_cpu(tmp_path):
    """Both ranks must train in the same precision and validate at the same steps: rank 0 measures, the other rank
    takes its choices (the tuning cache and run.json) instead of timing while rank 0 trains."""
    cfg = tiny_project(
        tmp_path,
        devices=2,
        strategy="ddp",
        accelerator="cpu",
        gate_images=False,
        precision="auto",
        channels_last="auto",
        val_every="auto",
        num_threads=None,
    )
    res = run_seg("train", "--config", str(cfg))
    assert res.returncode == 0, res.stderr[-3000:]
    assert "MEMBER: 2/2" in res.stderr or "distributed_backend=gloo" in res.stderr
    metrics = json.loads((tmp_path / "metrics" / "train.json").read_text())
    assert metrics["epochs"] == 2 and "best_val_dice_mean" in metrics
    start = [line for line in res.stdout.splitlines() if "precision auto ->" in line]
    assert len(start) == 1 and start[0].startswith("seg train: trains 2 epochs of 3 steps (no time budget)")
    assert metrics["runtime"]["num_threads"] == max(1, len(os.sched_getaffinity(0)) // 2)  # the cores, shared


def test_fold_all_trains_on_every_non_test_case_without_validation(tmp_path):
    """nnU-Net's final model: every case but the test part trains, nothing validates, the last weights are saved."""
    cfg = tiny_project(tmp_path, max_epochs=2, gate_images=False)
    res = run_seg("train", "--config", str(cfg), "--set", "data.fold=all")
    assert res.returncode == 0, res.stderr[-3000:]
    assert "no validation (data.fold all: no validation fold)" in res.stdout
    metrics = json.loads((tmp_path / "metrics" / "train.json").read_text())
    assert metrics["epochs"] == 2 and not any(k.startswith("best_val") for k in metrics)
    assert (tmp_path / "model" / "weights.pt").is_file()
    from seg.data.cache import Cache, CacheError

    cache = Cache(tmp_path / "cache")
    assert len(cache.split("all").train) == 6 and cache.split("all").val == ()
    with pytest.raises(CacheError, match="no test part to evaluate on. Set data.test_fraction"):
        cache.evaluation_ids("all")


def _dice_of_predicting_everywhere(cache, k: int) -> float:
    """The validation cases' mean Dice of class k predicted in every voxel: what a stage that learned nothing and
    marks everything scores."""
    import numpy as np

    from seg.metrics import dice

    val = json.loads((cache / "splits.json").read_text())[0]["val"]
    labels = [np.load(cache / "cases" / f"{case}.npz")["label"] for case in val]
    return float(np.mean([dice(np.ones_like(label, bool), label == k) for label in labels]))
