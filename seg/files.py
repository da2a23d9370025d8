"""Atomic writes, the one way every stage writes a file: a temporary file in the same folder, then `os.replace`,
so a killed run never leaves a half-written file that a rerun would trust. Also the one content hash of
JSON-able data (configs, fingerprints, case ids)."""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import math
import os
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside `path` (parents created) for a writer that needs a file name; it replaces
    `path` when the block ends normally and is removed when it raises. The temporary name keeps `path`'s
    suffixes, so format-by-extension writers (nibabel, SimpleITK) write the right format."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.parent / f".tmp-{uuid.uuid4().hex[:8]}-{path.name}"
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


@contextlib.contextmanager
def atomic_folder(folder: str | Path) -> Iterator[Path]:
    """Yield a temporary folder beside `folder`; on success it replaces `folder` (a previous one is removed
    only then), on failure it is removed and `folder` stays as it was."""
    folder = Path(folder)
    tmp = folder.with_name(f".tmp-{uuid.uuid4().hex[:8]}-{folder.name}")
    tmp.mkdir(parents=True)
    try:
        yield tmp
        shutil.rmtree(folder, ignore_errors=True)
        tmp.rename(folder)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def write_bytes(path: str | Path, data: bytes) -> Path:
    """Write `data` to `path` atomically (parents created)."""
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)
    return Path(path)


def write_text(path: str | Path, text: str) -> Path:
    return write_bytes(path, text.encode("utf-8"))


def write_json(path: str | Path, data: Any) -> Path:
    return write_text(path, json.dumps(data, indent=1) + "\n")


def finite(obj: Any) -> Any:
    """JSON-safe: NaN and infinities (in nested dicts, lists and tuples) become null."""
    if isinstance(obj, dict):
        return {k: finite(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [finite(v) for v in obj]
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    return obj


def read_json(path: str | Path) -> Any:
    return json.loads(Path(path).read_text())


def write_npz(path: str | Path, **arrays: np.ndarray) -> Path:
    """Compressed npz: preprocessed crops are mostly smooth or zero and shrink 2-4x for little CPU."""
    buf = io.BytesIO()
    np.savez_compressed(buf, **arrays)
    return write_bytes(Path(path), buf.getvalue())


def stable_hash(obj: Any, length: int = 16) -> str:
    """Hex digest of `obj`'s JSON (keys sorted): the same data gives the same hash in every process."""
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:length]
