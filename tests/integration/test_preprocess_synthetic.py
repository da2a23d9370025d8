"""The default run: no dataset given, so the embedded synthetic dataset is generated and preprocessed."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("spatial_dims", [2, 3])
def test_stage_entry_point_on_the_synthetic_default(tmp_path, spatial_dims):
    cfg = tmp_path / "params.yaml"
    cfg.write_text(
        f"data:\n  spatial_dims: {spatial_dims}\n  synthetic_cases: 10\n  num_workers: 2\n"
        f"  cache_dir: {tmp_path / 'pre'}\n  synthetic_dir: {tmp_path / 'syn'}\n"
    )
    cmd = [sys.executable, str(REPO / "pipelines" / "preprocess.py"), "--config", str(cfg)]
    run = subprocess.run(cmd, capture_output=True, text=True, cwd=tmp_path, timeout=300)
    assert run.returncode == 0, run.stderr
    assert "10 of 10 cases preprocessed" in run.stdout
    fp = json.loads((tmp_path / "pre" / "fingerprint.json").read_text())
    assert fp["spatial_dims"] == spatial_dims and fp["label_values"] == [0, 1, 2] and fp["num_valid"] == 10
    assert fp["dataset"] == f"Synthetic{spatial_dims}D" and len(fp["preprocessing"]["target_spacing"]) == spatial_dims
    z = np.load(tmp_path / "pre" / "cases" / f"synth{spatial_dims}d_000.npz")
    assert z["image"].ndim == spatial_dims + 1 and set(np.unique(z["label"])) == {0, 1, 2}
    assert len(json.loads((tmp_path / "pre" / "splits.json").read_text())) == 5
    again = subprocess.run(cmd, capture_output=True, text=True, cwd=tmp_path, timeout=300)
    assert "(10 up to date, 0 skipped" in again.stdout
