"""nnU-Net's workflow with seg's own commands, as crossval/dvc.yaml runs them: a model per fold, each fold's
validation predictions, the gathered metrics and the postprocessing decided on them, and the test part (in no
fold) predicted by the ensemble of the fold models with that postprocessing."""

from __future__ import annotations

import json

import pytest
import yaml
from train_helpers import run_seg, synthetic_project

pytestmark = pytest.mark.slow


def _ok(*args: str) -> str:
    res = run_seg(*args)
    assert res.returncode == 0, res.stderr[-3000:]
    return res.stdout


def test_folds_crossval_summary_and_the_ensemble_on_the_test_part(tmp_path):
    cfg = synthetic_project(
        tmp_path,
        n_cases=8,
        test_fraction=0.25,
        max_epochs=3,
        steps_per_epoch=4,
        gate_images=False,
        registered_model=None,
    )
    params = yaml.safe_load(cfg.read_text())
    params["crossval"] = {
        "folds": [0, 1],
        "models": str(tmp_path / "folds"),
        "predictions": str(tmp_path / "cv"),
        "metrics_file": str(tmp_path / "crossval.json"),
    }
    cfg.write_text(yaml.safe_dump(params))
    splits = json.loads((tmp_path / "cache" / "splits.json").read_text())
    test = splits[0]["test"]
    assert len(test) == 2 and all(not set(test) & set(s["train"] + s["val"]) for s in splits)
    for k in (0, 1):
        _ok(
            "train",
            "--config",
            str(cfg),
            "--set",
            f"data.fold={k}",
            "--set",
            f"train.model_dir={tmp_path}/folds/fold_{k}",
            "--set",
            f"train.output_dir={tmp_path}/out/fold_{k}",
            "--set",
            f"train.metrics_dir={tmp_path}/m/fold_{k}",
        )
        _ok(
            "infer",
            "--config",
            str(cfg),
            "--model",
            f"{tmp_path}/folds/fold_{k}",
            "--fold",
            str(k),
            "--output",
            f"{tmp_path}/cv/fold_{k}",
            "--metrics-file",
            f"{tmp_path}/m/fold_{k}/infer.json",
        )
        predicted = json.loads((tmp_path / "cv" / f"fold_{k}" / "predictions.json").read_text())
        assert sorted(predicted["cases"]) == sorted(splits[k]["val"])  # each fold scores its own validation part

    out = _ok("crossval", "--config", str(cfg))
    summary = json.loads((tmp_path / "crossval.json").read_text())
    assert summary["cases"] == 6 and summary["folds"] == [0, 1]  # every non-test case, once
    per_case = {}
    for k in (0, 1):  # what each fold's own prediction scored, case by case
        per_case |= json.loads((tmp_path / "cv" / f"fold_{k}" / "metrics.json").read_text())["cases"]
    assert sorted(per_case) == sorted(set(splits[0]["train"]) | set(splits[0]["val"]))
    for name in ("head", "body"):
        c = summary["without_postprocessing"][name]
        dice = [per_case[case][name]["dice"] for case in per_case]
        assert c["cases"] == 6 and c["dice_mean"] == pytest.approx(sum(dice) / 6, abs=1e-9)
        assert c["dice_sd"] == pytest.approx((sum((d - c["dice_mean"]) ** 2 for d in dice) / 6) ** 0.5, abs=1e-9)
    assert summary["dice_mean"] >= summary["dice_mean_without_postprocessing"] - 1e-9  # kept only where it helps
    decided = json.loads((tmp_path / "folds" / "postprocessing.json").read_text())
    assert "mean Dice" in out and set(decided) >= {"whole_foreground", "per_class", "evidence"}

    _ok(
        "infer",
        "--config",
        str(cfg),
        "--model",
        f"{tmp_path}/folds",
        "--fold",
        "all",
        "--output",
        f"{tmp_path}/test",
        "--metrics-file",
        f"{tmp_path}/test.json",
    )
    predicted = json.loads((tmp_path / "test" / "predictions.json").read_text())
    assert sorted(predicted["cases"]) == sorted(test) and len(predicted["model"]["members"]) == 2
    assert predicted["settings"]["postprocessing"]["whole_foreground"] == decided["whole_foreground"]
    assert set(json.loads((tmp_path / "test.json").read_text())) >= {"dice_mean", "cases_ok"}
