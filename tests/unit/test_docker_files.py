"""docker/: the compose file and Dockerfiles parse and agree with the project (no Docker engine needed)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
DOCKER = REPO / "docker"
DOCKERFILES = ["Dockerfile.cpu", "Dockerfile.cuda"]
DEFAULT_BASES = {"Dockerfile.cpu": "python:3.11-slim", "Dockerfile.cuda": "nvidia/cuda:12.8.1-base-ubuntu24.04"}


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    data = yaml.safe_load((DOCKER / "compose.yaml").read_text())  # resolves the << merge keys
    assert isinstance(data, dict)
    return data


def _instructions(name: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) per Dockerfile instruction, continuation lines joined, comments dropped."""
    text = re.sub(r"\\\n", " ", (DOCKER / name).read_text())
    out = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            word, _, rest = line.partition(" ")
            out.append((word.upper(), rest.strip()))
    return out


def test_compose_services(compose: dict[str, Any]) -> None:
    services = compose["services"]
    assert {"mlflow", "pipeline", "pipeline-cuda"} <= set(services)
    mlflow = services["mlflow"]
    assert mlflow["image"] == services["pipeline"]["image"] == "seg:cpu"
    assert mlflow["build"]["dockerfile"] == "docker/Dockerfile.cpu"
    assert "/health" in " ".join(mlflow["healthcheck"]["test"])
    compile(mlflow["healthcheck"]["test"][-1], "healthcheck", "exec")  # the python -c snippet is valid Python
    assert all(p.startswith("127.0.0.1:") for p in mlflow["ports"])
    assert "mlflow:/mlflow" in mlflow["volumes"] and "mlflow" in compose["volumes"]

    for name in ("pipeline", "pipeline-cuda"):
        svc = services[name]
        assert svc["depends_on"]["mlflow"]["condition"] == "service_healthy"
        assert svc["environment"]["MLFLOW_TRACKING_URI"] == "http://mlflow:5000"
        assert svc["command"] == ["dvc", "repro"]
        assert {"../data:/app/data", "../models:/app/models", "../metrics:/app/metrics"} <= set(svc["volumes"])
    cuda = services["pipeline-cuda"]
    assert cuda["profiles"] == ["gpu"] and cuda["build"]["dockerfile"] == "docker/Dockerfile.cuda"
    device = cuda["deploy"]["resources"]["reservations"]["devices"][0]
    assert device["driver"] == "nvidia" and "gpu" in device["capabilities"]
    assert "profiles" not in services["pipeline"]


def test_pipeline_host_is_allowed_by_the_server(compose: dict[str, Any]) -> None:
    cmd = compose["services"]["mlflow"]["command"]
    allowed = cmd[cmd.index("--allowed-hosts") + 1].split(",")
    netloc = urlsplit(compose["services"]["pipeline"]["environment"]["MLFLOW_TRACKING_URI"]).netloc
    assert netloc in allowed  # the Host header the pipeline sends; anything else gets 403
    assert cmd[cmd.index("--port") + 1] == netloc.rsplit(":", 1)[1]


def test_mlflow_server_flags_exist_in_installed_mlflow(compose: dict[str, Any]) -> None:
    cmd = compose["services"]["mlflow"]["command"]
    assert cmd[:2] == ["mlflow", "server"]
    help_text = subprocess.run(
        [sys.executable, "-m", "mlflow", "server", "--help"], capture_output=True, text=True, check=True, timeout=120
    ).stdout
    flags = [t.split("=")[0] for t in cmd if t.startswith("--")]
    assert flags
    missing = [f for f in flags if not re.search(rf"(^|[\s/,]){re.escape(f)}\b", help_text, re.MULTILINE)]
    assert not missing, f"mlflow server has no {missing}"


def test_dvc_command_runs() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "dvc", "--version"], capture_output=True, text=True, check=True, timeout=120
    ).stdout
    assert re.match(r"\d+\.\d+", out.strip())


@pytest.mark.parametrize("name", DOCKERFILES)
def test_dockerfile(name: str) -> None:
    instructions = _instructions(name)
    words = [w for w, _ in instructions]
    assert words[0] in ("FROM", "ARG") and "FROM" in words
    users = [args for w, args in instructions if w == "USER"]
    assert users and users[-1].split(":")[0] not in ("root", "0")
    runs = [args for w, args in instructions if w == "RUN"]
    assert any("apt-get install" in r and re.search(r"\bgit\b", r) for r in runs)
    assert any(re.search(r"pip install .*\btorch==2\.13\.0\b.*--index-url", r) for r in runs)
    assert not any(re.search(r"pip install[^&]*\btorch\b(?!==)", r) for r in runs)  # never an unpinned torch
    assert any(re.search(r"useradd .*--uid 1000 .*\bseg\b", r) for r in runs)
    assert ("CMD", '["dvc", "repro"]') in instructions
    assert ("WORKDIR", "/app") in instructions
    env = " ".join(args for w, args in instructions if w == "ENV")
    for var in ("MLFLOW_DISABLE_TELEMETRY=true", "DO_NOT_TRACK=1", "DVC_NO_ANALYTICS=1", "PYTHONUNBUFFERED=1"):
        assert var in env
    # pyproject.toml (and README.md, its readme) and seg/ are copied before `pip install .`, the rest after.
    install = next(i for i, (w, a) in enumerate(instructions) if w == "RUN" and "pip install --no-cache-dir ." in a)
    copied_before = " ".join(a for w, a in instructions[:install] if w == "COPY")
    assert all(p in copied_before for p in ("pyproject.toml", "README.md", "seg/"))
    for w, args in instructions:
        if w == "COPY":
            for src in [a for a in args.split() if not a.startswith("--")][:-1]:
                assert (REPO / src).exists(), f"{name}: COPY source {src} not in the repository"
    # The base image is a build argument (another base where no registry is reachable: tools/docker_check.sh);
    # the image itself is the last stage, on that base, with the venv at /opt/venv.
    assert instructions[0] == ("ARG", f"BASE_IMAGE={DEFAULT_BASES[name]}")
    assert [a for w, a in instructions if w == "FROM"][-1] == "${BASE_IMAGE}"
    assert "VIRTUAL_ENV=/opt/venv" in env and "PATH=/opt/venv/bin:$PATH" in env
    assert any("python3 -m venv /opt/venv" in r for r in runs)


def test_cpu_torch_wheels_stay_out_of_the_image() -> None:
    """The torch step may take wheels from the `wheels` stage (docker/wheels/, or --build-context wheels=DIR),
    bind-mounted for that step only, so no wheel becomes a layer of the image or rides in with `COPY . .`."""
    instructions = _instructions("Dockerfile.cpu")
    froms = [a for w, a in instructions if w == "FROM"]
    assert froms == ["scratch AS wheels", "${BASE_IMAGE}"]
    torch_run = next(a for w, a in instructions if w == "RUN" and "torch==2.13.0" in a)
    assert torch_run.startswith("--mount=type=bind,from=wheels,target=/tmp/wheels ")
    assert "--find-links /tmp/wheels" in torch_run
    assert (REPO / "docker" / "wheels").is_dir()
    assert "/docker/wheels/*.whl" in (REPO / ".gitignore").read_text().splitlines()


def test_docker_check_script() -> None:
    """tools/docker_check.sh (make docker-check) parses, and passes what the Dockerfile expects."""
    script = REPO / "tools" / "docker_check.sh"
    subprocess.run(["bash", "-n", str(script)], check=True, timeout=60)
    text = script.read_text()
    for flag in ("--isolation=chroot", "--build-context wheels=", "--build-arg BASE_IMAGE=", "--runtime runc"):
        assert flag in text
    assert re.search(r"^docker-check:\n\tbash tools/docker_check\.sh$", (REPO / "Makefile").read_text(), re.MULTILINE)


def test_dockerignore_keeps_git_and_drops_outputs() -> None:
    patterns = [
        p.strip() for p in (REPO / ".dockerignore").read_text().splitlines() if p.strip() and not p.startswith("#")
    ]
    assert not any(p.strip("/") in (".git", ".git/**", "**/.git") for p in patterns)
    for p in (".venv", "data", "outputs", "models", "metrics", "mlflow.db", "mlartifacts"):
        assert p in patterns
    assert not any(p.startswith("**/") and p[3:] in ("data", "models") for p in patterns)  # would drop seg/data
