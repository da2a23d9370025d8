"""MLflow runs trace back to DVC: dvc.lock stage hashes become tags."""

from pathlib import Path

from seg.tracking.runs import dvc_lock_tags

LOCK = """schema: '2.0'
stages:
  train:
    cmd: python pipelines/train.py
    deps:
    - path: data/preprocessed
      hash: md5
      md5: aaa.dir
    outs:
    - path: models/latest
      hash: md5
      md5: bbb.dir
  infer:
    outs:
    - path: outputs/predictions
      md5: ccc.dir
"""


def test_tags_name_stage_kind_and_path(tmp_path: Path):
    lock = tmp_path / "dvc.lock"
    lock.write_text(LOCK)
    tags = dvc_lock_tags(lock)
    assert tags == {"dvc.train.deps.data/preprocessed": "aaa.dir", "dvc.train.outs.models/latest": "bbb.dir"}
    assert dvc_lock_tags(tmp_path / "missing.lock") == {}
