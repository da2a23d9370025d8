"""Gate maps as a person sees them in MLflow's real UI: `seg train` on a tiny cache with validation every epoch
and by wall clock, a real `mlflow server`, the run's Model metrics page in headless Chromium. MLflow 3.17 prints
every run param above the images of an image card and starts its step slider at 0: seg once logged ~120 params
and numbered images by epoch, and a person saw a list of params, or nothing."""

from __future__ import annotations

import json

import pytest

from mlflow_ui import CHROMIUM_ARGS, ModelMetricsPage, assert_visible, chromium_or_skip
from train_helpers import MlflowServer, run_seg, tiny_project

pytestmark = pytest.mark.slow


@pytest.mark.parametrize("schedule", [{"val_every": 1, "max_epochs": 3},
                                      {"val_every_minutes": 0.004, "max_epochs": 40, "max_time_minutes": 0.15}],
                         ids=["every-epoch", "by-minutes"])
def test_every_gate_level_is_visible_and_the_slider_steps_through_validations(tmp_path, schedule):
    chromium = chromium_or_skip()
    cfg = tiny_project(tmp_path, **schedule)
    res = run_seg("train", "--config", str(cfg))
    assert res.returncode == 0, res.stderr[-3000:]
    meta = json.loads((tmp_path / "model" / "model.json").read_text())
    from playwright.sync_api import sync_playwright

    with MlflowServer(tmp_path / "mlflow.db") as server, sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
        page = ModelMetricsPage(browser, server, meta["mlflow_run_id"])
        page.screenshot(tmp_path / "model_metrics.png")
        images = page.images("gate_")
        assert set(images) == {"gate_level0", "gate_level1"}, images
        for key, image in images.items():
            assert image["step"] == 0, image  # the slider starts at 0, so the first image is numbered 0
            assert_visible(image)
            assert page.step_forward(key) != image["src"], f"{key}: moving the slider did not change the image"
        browser.close()
