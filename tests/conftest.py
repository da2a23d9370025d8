"""Shared fixtures: the read-only real datasets next to the repository, and tiny synthetic datasets."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


def pytest_configure(config: pytest.Config) -> None:
    """Speed measurements (seg.runtime.tune) are cached for this test session only, never in the user's ~/.cache;
    tests that call the library directly run with telemetry off, as the CLI does."""
    os.environ.setdefault("SEG_CACHE_DIR", tempfile.mkdtemp(prefix="seg-autotune-"))
    from seg.tracking import configure

    configure()  # what the command-line entry points do: MLflow telemetry and DVC analytics off


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """../shared/data (read in place, never copied); tests needing it skip when it is absent."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"{SHARED_DATA} not found: the real datasets live next to the repository in ../shared/data")
    return SHARED_DATA


@pytest.fixture(scope="session")
def synthetic_3d(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Six small synthetic 3D cases in the MSD layout (generated once per session)."""
    from seg.data.synthetic import make_synthetic_dataset

    return make_synthetic_dataset(tmp_path_factory.mktemp("synthetic3d"), spatial_dims=3, n_cases=6, seed=0)


@pytest.fixture(scope="session")
def synthetic_2d(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from seg.data.synthetic import make_synthetic_dataset

    return make_synthetic_dataset(tmp_path_factory.mktemp("synthetic2d"), spatial_dims=2, n_cases=6, seed=0)
