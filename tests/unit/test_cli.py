"""The `seg` command runs as users run it: a real subprocess."""

from __future__ import annotations

import subprocess
import sys

from seg import __version__


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "seg.cli", *args], capture_output=True, text=True, timeout=120)


def test_version_and_help_start_without_heavy_imports():
    out = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys; from seg.cli import main\ntry: main(['--version'])\nexcept SystemExit: pass\n"
            "print(sorted(m for m in ('torch', 'monai', 'lightning', 'mlflow') if m in sys.modules))",
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert f"seg {__version__}" in out.stdout and "[]" in out.stdout
    assert "preprocess" in run("--help").stdout or run("--help").returncode == 0


def test_model_summary(tmp_path):
    cfg = tmp_path / "p.yaml"
    cfg.write_text("model:\n  spatial_dims: 2\n  channels: [8, 16]\n  strides: [2]\n  deep_supervision: 0\n")
    res = run("model", "--config", str(cfg), "--size", "32", "32")
    assert res.returncode == 0, res.stderr
    assert "gate level0: 1 head, soft coefficients (1, 1, 16, 16)" in res.stdout  # stem stride 2 halves level 0


def test_config_error_is_one_line_with_exit_2(tmp_path):
    cfg = tmp_path / "p.yaml"
    cfg.write_text("model:\n  kernal_size: 3\n")
    res = run("model", "--config", str(cfg))
    assert res.returncode == 2
    assert "Did you mean 'model.kernel_size'?" in res.stderr and len(res.stderr.strip().splitlines()) == 1


def test_train_without_cache_is_one_line_error(tmp_path):
    cfg = tmp_path / "p.yaml"
    cfg.write_text(f"data:\n  cache_dir: {tmp_path / 'missing'}\n")
    res = run("train", "--config", str(cfg))
    assert res.returncode == 2
    assert "fingerprint.json: not found. Run `seg preprocess`" in res.stderr
    assert len(res.stderr.strip().splitlines()) == 1


def test_a_bug_keeps_its_traceback_and_a_user_error_is_one_line(tmp_path, monkeypatch, capsys):
    """Only `UserError`s become one line: a KeyError from our own code is a bug and must show where it happened."""
    import pytest

    from seg import cli
    from seg.errors import ModelDataMismatch
    from seg.stages import train

    cfg = tmp_path / "p.yaml"
    cfg.write_text("train:\n  max_epochs: 1\n")

    def bug(*args, **kwargs):
        return {}["a key our code forgot"]

    monkeypatch.setattr(train, "run", bug)
    with pytest.raises(KeyError, match="a key our code forgot"):
        cli.main(["train", "--config", str(cfg)])

    def mismatch(*args, **kwargs):
        raise ModelDataMismatch("model.in_channels=1 but the cache has 2 image channels. Set model.in_channels: 2.")

    monkeypatch.setattr(train, "run", mismatch)
    assert cli.main(["train", "--config", str(cfg)]) == train.CODE
    err = capsys.readouterr().err.strip()
    assert err == "seg train: error: model.in_channels=1 but the cache has 2 image channels. Set model.in_channels: 2."
