"""Shared set-up for training integration tests: a tiny cache, a config file, running `seg` for real."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).parents[1] / "unit"))
from cache_fixture import write_tiny_cache


def tiny_project(tmp_path: Path, spatial_dims: int = 3, write_cache: bool = True, **train) -> Path:
    """Tiny cache + config under tmp_path; returns the config path."""
    if write_cache:
        write_tiny_cache(tmp_path / "cache", spatial_dims=3 if spatial_dims == 2 else spatial_dims)
    cfg = {
        "data": {"cache_dir": str(tmp_path / "cache")},
        "model": {"spatial_dims": spatial_dims, "channels": [8, 16, 32], "strides": [2, 2], "deep_supervision": 1},
        "train": {
            "max_epochs": 2,
            "steps_per_epoch": 3,
            "patch_size": [16] * spatial_dims,
            "precision": "32",
            "val_every": 1,
            "tracking_uri": f"sqlite:///{tmp_path / 'mlflow.db'}",
            "output_dir": str(tmp_path / "out"),
            "model_dir": str(tmp_path / "model"),
            "metrics_dir": str(tmp_path / "metrics"),
            **train,
        },
    }
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def seg_env() -> dict[str, str]:
    return {**os.environ, "SEG_PROGRESS": "0", "MLFLOW_DISABLE_TELEMETRY": "true", "PYTHONUNBUFFERED": "1"}


def run_seg(*args: str, timeout: int = 600, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "seg.cli", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=seg_env(),
        cwd=cwd,
    )


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class MlflowServer:
    """A real `mlflow server` on 127.0.0.1 over a sqlite store, for REST API checks."""

    def __init__(self, db: Path):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "mlflow",
                "server",
                "--backend-store-uri",
                f"sqlite:///{db}",
                "--host",
                "127.0.0.1",
                "--port",
                str(self.port),
                "--workers",
                "1",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            env=seg_env(),
        )

    def __enter__(self) -> MlflowServer:
        import urllib.request

        deadline = time.time() + 120
        while time.time() < deadline:
            try:
                with urllib.request.urlopen(f"{self.url}/health", timeout=2) as r:
                    if r.status == 200:
                        return self
            except OSError:
                time.sleep(1)
        self.proc.kill()
        raise RuntimeError("mlflow server did not become healthy within 120 s")

    def __exit__(self, *exc) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=30)

    def get(self, endpoint: str, **params) -> dict | bytes:
        import json
        import urllib.parse
        import urllib.request

        with urllib.request.urlopen(f"{self.url}{endpoint}?{urllib.parse.urlencode(params)}", timeout=30) as r:
            body = r.read()
            return json.loads(body) if r.headers.get_content_type() == "application/json" else body


def synthetic_project(
    tmp_path: Path, n_cases: int = 6, test_fraction: float = 0.0, spatial_dims: int = 3, **train
) -> Path:
    """The embedded synthetic dataset (3D, or 2D) preprocessed into tmp_path/cache (real original files and case
    properties, so inference and analysis can restore to them) + a tiny training config; returns its path."""
    from seg.config import DataConfig
    from seg.data.preprocess import preprocess_dataset
    from seg.data.synthetic import make_synthetic_dataset

    dataset = make_synthetic_dataset(tmp_path / "synthetic", spatial_dims=spatial_dims, n_cases=n_cases, seed=0)
    preprocess_dataset(
        DataConfig(
            root=str(dataset), cache_dir=str(tmp_path / "cache"), num_workers=0, folds=2, test_fraction=test_fraction
        ),
        progress=False,
    )
    path = tiny_project(tmp_path, spatial_dims=spatial_dims, write_cache=False, **train)
    cfg = yaml.safe_load(path.read_text())
    cfg["data"].update(
        {"root": str(dataset), "cache_dir": str(tmp_path / "cache"), "folds": 2, "test_fraction": test_fraction}
    )
    path.write_text(yaml.safe_dump(cfg))
    return path
