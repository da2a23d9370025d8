"""`seg infer` for real on a folder of DICOM series with a trained model: the good series gets a DICOM Segmentation
that reads back as the NIfTI run's label map, slice for slice in the source files' order; the series of mixed
orientations fails in one line and the batch goes on."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import highdicom as hd
import nibabel as nib
import numpy as np
import pydicom
import pytest
from train_helpers import run_seg, synthetic_project

sys.path.insert(0, str(Path(__file__).parents[1] / "unit"))
from dicom_fixture import CT5N, MR700, series_folder

pytestmark = pytest.mark.slow


def test_a_dicom_folder_gets_a_dicom_segmentation_and_a_bad_series_one_line(tmp_path):
    cfg = synthetic_project(tmp_path, n_cases=6, gate_images=False, max_epochs=2, steps_per_epoch=4)
    res = run_seg("train", "--config", str(cfg))
    assert res.returncode == 0, res.stderr[-3000:]
    inputs = tmp_path / "scans"
    shutil.copytree(series_folder(CT5N), inputs / "ct")
    shutil.copytree(series_folder(MR700), inputs / "angio")
    model = tmp_path / "model"
    args = ["infer", "--model", str(model), "--input", str(inputs), "--no-tta", "--precision", "32"]

    res = run_seg(*args, "--output", str(tmp_path / "dicom"), "--output-format", "dicom-seg")
    assert res.returncode == 1, res.stderr[-3000:]
    failed = [line for line in res.stderr.splitlines() if line.startswith("failed:")]
    assert len(failed) == 1 and failed[0].startswith(f"failed: {inputs / 'angio'}: DICOM series 700 ")
    assert "slices of 7 orientations" in failed[0]
    res = run_seg(*args, "--output", str(tmp_path / "nifti"))
    assert res.returncode == 1, res.stderr[-3000:]

    labels = np.asarray(nib.load(tmp_path / "nifti" / "ct.nii.gz").dataobj)  # slices ascending along the normal
    sources = [pydicom.dcmread(p) for p in sorted((inputs / "ct").iterdir())]
    z = [float(ds.ImagePositionPatient[2]) for ds in sources]
    assert z == sorted(z, reverse=True)  # the files run the other way: the order is checked, not assumed
    result = hd.seg.segread(tmp_path / "dicom" / "ct.seg.dcm")
    pixels = result.get_pixels_by_source_instance(
        source_sop_instance_uids=[ds.SOPInstanceUID for ds in sources],
        combine_segments=True,
        assert_missing_frames_are_empty=True,
    )
    np.testing.assert_array_equal(pixels, labels.transpose(2, 1, 0)[::-1])
    class_names = json.loads((model / "model.json").read_text())["class_names"]
    assert [s.SegmentLabel for s in result.SegmentSequence] == class_names[1:]
    assert result.ReferencedSeriesSequence[0].SeriesInstanceUID == sources[0].SeriesInstanceUID
    algorithm = result.SegmentSequence[0].SegmentationAlgorithmIdentificationSequence[0]
    assert (algorithm.AlgorithmName, algorithm.AlgorithmSource) == ("model", "seg")
    assert sorted(p.name for p in (tmp_path / "dicom").iterdir()) == ["ct.seg.dcm", "predictions.json"]
