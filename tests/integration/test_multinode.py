"""`seg train` over two machines, simulated on this one: two `seg train` processes, each told it is node 0 or 1 of
2 by Lightning's environment variables, meeting over loopback with gloo. They share the preprocessed cache and
nothing else: each "machine" has its own output, model and metrics folders and its own MLflow store."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from train_helpers import free_port, seg_env, tiny_project

pytestmark = pytest.mark.slow

MACHINE = {"precision": "32", "channels_last": False, "val_every": 1}  # what each machine would otherwise time


def _own_folders(root: Path) -> list[str]:
    """`--set` overrides giving a simulated machine its own disk: everything but the shared cache."""
    return [
        f"train.output_dir={root / 'out'}",
        f"train.model_dir={root / 'model'}",
        f"train.metrics_dir={root / 'metrics'}",
        f"train.tracking_uri=sqlite:///{root / 'mlflow.db'}",
    ]


def _start_node(config: Path, node: int, port: int, root: Path) -> subprocess.Popen:
    env = {
        **seg_env(),
        "MASTER_ADDR": "127.0.0.1",
        "MASTER_PORT": str(port),
        "WORLD_SIZE": "2",
        "NODE_RANK": str(node),
        "LOCAL_RANK": "0",
    }
    sets = [arg for item in _own_folders(root) for arg in ("--set", item)]
    return subprocess.Popen(
        [sys.executable, "-m", "seg.cli", "train", "--config", str(config), *sets],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _wait(procs: list[subprocess.Popen], timeout: int = 300) -> list[tuple[int, str, str]]:
    try:
        outputs = [p.communicate(timeout=timeout) for p in procs]
        return [(p.returncode, *output) for p, output in zip(procs, outputs, strict=True)]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()


def _runs(db: Path) -> list:
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=f"sqlite:///{db}")
    return client.search_runs([e.experiment_id for e in client.search_experiments()])


def test_two_nodes_train_disjoint_cases_and_only_node_0_writes(tmp_path):
    config = tiny_project(
        tmp_path,
        num_nodes=2,
        devices=1,
        strategy="ddp",
        accelerator="cpu",
        num_threads=1,
        max_epochs=1,
        gate_images=False,
        registered_model=None,
        **MACHINE,
    )
    machines = [tmp_path / "node0", tmp_path / "node1"]
    port = free_port()
    results = _wait([_start_node(config, node, port, machines[node]) for node in (0, 1)])
    for code, out, err in results:
        assert code == 0, (out[-2000:], err[-3000:])

    fold = json.loads((tmp_path / "cache" / "splits.json").read_text())[0]["train"]
    record = json.loads((machines[0] / "out" / "train_cases.json").read_text())
    first, second = record["case_ids_by_rank"]
    assert record["world_size"] == 2 and first and second
    assert not set(first) & set(second) and sorted(first + second) == sorted(fold)
    for rank, (_, out, _) in enumerate(results):  # each rank says what it trains on
        assert f"rank {rank} of 2 trains on {len(record['case_ids_by_rank'][rank])} of {len(fold)} cases" in out

    model = json.loads((machines[0] / "model" / "model.json").read_text())
    assert model["runtime"]["cases_per_rank"] == [2, 2]
    summary = json.loads((machines[0] / "metrics" / "train.json").read_text())
    runtime = summary["runtime"]
    assert summary["epochs"] == 1 and "best_val_dice_mean" in summary
    assert (runtime["world_size"], runtime["num_nodes"], runtime["cases_per_rank"]) == (2, 2, [2, 2])
    (run,) = _runs(machines[0] / "mlflow.db")
    assert run.data.tags["runtime.num_nodes"] == "2" and run.data.tags["runtime.cases_per_rank"] == "[2, 2]"
    # machine 1 wrote nothing: no model, metrics, checkpoints or run; its MLflow URI opened, an empty database
    written = sorted(path.name for path in machines[1].glob("*"))
    assert written in ([], ["mlflow.db"]) and (not written or _runs(machines[1] / "mlflow.db") == [])
