"""`seg analyze` for real: preprocess a small synthetic dataset, train a tiny model, analyse it, and read back
what it wrote: maps in the source images' geometry, overlays, a self-contained report, DVC metrics, MLflow."""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import yaml
from train_helpers import MlflowServer, run_seg, synthetic_project

pytestmark = pytest.mark.slow


def _project(tmp_path: Path) -> Path:
    """The synthetic dataset preprocessed (with case properties) + a tiny training config + an analyze section."""
    path = synthetic_project(tmp_path, max_epochs=1, gate_images=False)
    cfg = yaml.safe_load(path.read_text())
    cfg["analyze"] = {
        "model": str(tmp_path / "model"),
        "output": str(tmp_path / "analysis"),
        "max_cases": 2,
        "threshold_cases": 1,
        "metrics_file": str(tmp_path / "metrics" / "analysis.json"),
    }
    path.write_text(yaml.safe_dump(cfg))
    return path


def test_analyze_writes_maps_report_metrics_and_logs_into_the_model_run(tmp_path):
    cfg = _project(tmp_path)
    for stage in ("train", "analyze"):
        res = run_seg(stage, "--config", str(cfg))
        assert res.returncode == 0, f"{stage}: {res.stderr[-3000:]}"
    assert "thresholds chosen on: training fold" in res.stdout

    out = tmp_path / "analysis"
    maps = sorted((out / "gates").glob("*.nii.gz")) + sorted((out / "cams").glob("*.nii.gz"))
    cases = sorted({p.name.split("_gate_level")[0] for p in (out / "gates").glob("*.nii.gz")})
    assert len(cases) == 2 and len(maps) >= 2 * (2 + 2 * 3)  # per case: gate levels 0-1, per class CAM, PCM, plain
    for path in maps:
        case = next(c for c in cases if path.name.startswith(c + "_"))
        source = nib.load(str(tmp_path / "synthetic" / "imagesTr" / f"{case}.nii.gz"))
        back = nib.load(str(path))
        assert back.shape == source.shape and np.allclose(back.affine, source.affine, atol=1e-5), path.name
        assert back.get_data_dtype() == np.float32 and np.isfinite(np.asarray(back.dataobj)).all()
    pngs = {p.name for p in (out / "overlays").glob("*.png")}
    assert {f"{c}_{k}.png" for c in cases for k in ("gates", "head", "body")} <= pngs

    report = (out / "report.html").read_text()
    sources = re.findall(r"""(?:src|href)\s*=\s*["']([^"']+)""", report)
    assert sources and all(s.startswith("data:image/png;base64,") for s in sources)  # embedded, nothing external
    assert "<script" not in report and "http://" not in report and "https://" not in report
    assert json.loads((out / "analysis.json").read_text())["threshold_source"].startswith("training fold")

    metrics = json.loads((tmp_path / "metrics" / "analysis.json").read_text())
    expected = {
        "cases",
        "cases_scored",
        "selection_cases",
        "gate.level0.equivariance.flip",
        "gate.level1.equivariance.scale",
        "gate.level0.energy_inside",
        "cam.head.threshold_raw",
        "cam.body.threshold_pcm",
        "cam.head.fallback_cases",
    }
    assert expected <= set(metrics), sorted(set(expected) - set(metrics))
    assert all(isinstance(v, float | int) and math.isfinite(v) for v in metrics.values())
    assert metrics["cases"] == 2 and metrics["selection_cases"] == 1

    meta = json.loads((tmp_path / "model" / "model.json").read_text())
    with MlflowServer(tmp_path / "mlflow.db") as server:
        listing = server.get("/api/2.0/mlflow/artifacts/list", run_id=meta["mlflow_run_id"], path="analysis")
        folders = {f["path"] for f in listing["files"]}
        assert {"analysis/gates", "analysis/cams", "analysis/overlays", "analysis/report"} <= folders
        run_id = meta["mlflow_run_id"]
        report_files = server.get("/api/2.0/mlflow/artifacts/list", run_id=run_id, path="analysis/report")
        assert "analysis/report/report.html" in {f["path"] for f in report_files["files"]}
        images = server.get("/api/2.0/mlflow/artifacts/list", run_id=meta["mlflow_run_id"], path="images")
        keys = {f["path"].split("/", 1)[1].split("+step+")[0] for f in images["files"] if f["path"].endswith(".png")}
        assert {f"analysis~{c}_gates" for c in cases} <= keys, keys
        run = server.get("/api/2.0/mlflow/runs/get", run_id=meta["mlflow_run_id"])["run"]
        assert "analysis/gate.level0.energy_inside" in {m["key"] for m in run["data"]["metrics"]}
