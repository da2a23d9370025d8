"""A trained network with multi-head gates and self-attention through `seg heads` and `seg prune`, 2D and 3D:
every head and gate level is measured on the held-out fold, the outputs and the model's MLflow run hold the
tables and pictures, and the pruned model folder loads, predicts and computes what the masked network did."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
import yaml
from train_helpers import run_seg, synthetic_project

pytestmark = pytest.mark.slow

HEADS = {"gate_heads": 2, "self_attention": {2: "global"}, "self_attention_heads": 4}


def _ok(*args: str) -> str:
    res = run_seg(*args)
    assert res.returncode == 0, f"seg {' '.join(args)}: {res.stderr[-3000:]}"
    return res.stdout


@pytest.mark.parametrize("dims", [2, 3])
def test_heads_and_prune_on_a_trained_model(tmp_path: Path, dims: int):
    cfg = synthetic_project(tmp_path, n_cases=6, spatial_dims=dims, max_epochs=3)
    data = yaml.safe_load(cfg.read_text())
    data["model"].update(HEADS)
    cfg.write_text(yaml.safe_dump(data))
    _ok("train", "--config", str(cfg))
    model = tmp_path / "model"

    out = tmp_path / "heads"
    printed = _ok("heads", str(model), "--out", str(out))
    assert "8 heads and 2 gate levels" in printed and "logged into MLflow run" in printed
    rows = list(csv.DictReader((out / "heads.csv").open()))
    layers = {(r["layer"], r["head"]) for r in rows}
    assert layers == {
        *((f"gate_level{i}", str(h)) for i in range(2) for h in range(2)),
        *(("self_enc2b0", str(h)) for h in range(4)),
        ("gate_level0", "all"),
        ("gate_level1", "all"),
    }
    summary = json.loads((out / "heads.json").read_text())
    assert summary["cases"] == 3  # fold 0 of 2 holds out half of the 6 cases
    assert [s["heads_kept"] for s in summary["pruning"]] == [8, 7, 6, 5, 4, 3]  # down to one head per layer
    assert len(summary["hardening"]) == 6 and summary["hardening"][-1]["zero_share"] > 0
    for name in ("heads.png", "gates.png", "pruning.png", "hardening.png", "heads.html"):
        assert (out / name).stat().st_size > 1000, name

    from mlflow import MlflowClient

    meta = json.loads((model / "model.json").read_text())
    client = MlflowClient(tracking_uri=meta["tracking_uri"])
    logged = {a.path for a in client.list_artifacts(meta["mlflow_run_id"], "heads")}
    assert {"heads/heads.csv", "heads/heads.json", "heads/heads.html"} <= logged
    run = client.get_run(meta["mlflow_run_id"])
    assert run.data.metrics["heads/dice"] == pytest.approx(summary["dice"], abs=1e-6)

    pruned = tmp_path / "pruned"
    printed = _ok("prune", str(model), "--keep", "0.5", "--out", str(pruned))
    assert "heads 8 -> 4" in printed
    record = json.loads((pruned / "pruning.json").read_text())
    assert record["heads_after"] == 4 and record["parameters_after"] < record["parameters_before"]
    assert record["dice_after"] == pytest.approx(record["steps"][-1]["dice"], abs=1e-6)  # removed = masked
    kept = yaml.safe_load((pruned / "config.yaml").read_text())["model"]["heads_kept"]
    assert kept == {name: len(heads) for name, heads in record["heads_kept"].items()}
    images = tmp_path / "synthetic" / "imagesTr"
    _ok("infer", "--model", str(pruned), "--input", str(images), "--output", str(tmp_path / "pred"))
    assert len(list((tmp_path / "pred").glob("*.nii.gz"))) == 6

    bad = run_seg("prune", str(model), "--keep", "0", "--out", str(tmp_path / "x"))
    assert bad.returncode == 2 and bad.stderr.strip().splitlines()[-1].startswith("seg prune: error: --keep")
    missing = run_seg("heads", str(model), "--cache", str(tmp_path / "nowhere"))
    assert missing.returncode == 2 and "Run `seg preprocess`" in missing.stderr and not (tmp_path / "x").exists()
