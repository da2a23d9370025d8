"""Label maps for clinical review: a DICOM Segmentation that reads back slice for slice on its source series, 3D
Slicer's seg.nrrd read back by slicerio and SimpleITK with the input's geometry, ITK-SNAP's label descriptions,
and `seg infer` on a folder of DICOM series in each format."""

from __future__ import annotations

import json
from pathlib import Path

import highdicom as hd
import nibabel as nib
import numpy as np
import pydicom
import pytest
import SimpleITK as sitk
import slicerio
from dicom_fixture import CT2, CT5N, MR2, copy_series, series_folder
from infer_fixture import tiny_model_folder

import seg
from seg.cli import main
from seg.config import InferConfig
from seg.config.checks import ConfigError
from seg.data.io import read_image
from seg.infer.cases import find_cases, outputs_for
from seg.infer.dicom_seg import read_dicom_seg, write_dicom_seg
from seg.infer.label_files import Segments, itksnap_label_descriptions, write_slicer_segmentation

SEGMENTS = Segments(("background", "liver", "tumour"), "fold_0", "models/fold_0", "abc123", seg.__version__)


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory, synthetic_3d) -> Path:
    return tiny_model_folder(tmp_path_factory.mktemp("clinical"), synthetic_3d)


def _labels(shape: tuple[int, ...]) -> np.ndarray:
    """Every class on every slice, in a pattern that a flipped or reordered axis breaks."""
    rng = np.random.default_rng(0)
    return rng.integers(0, 3, size=shape).astype(np.uint8)


def test_dicom_seg_reads_back_slice_for_slice_on_its_source_series(tmp_path):
    folder = series_folder(CT5N)
    _, geometry = read_image(folder / "2062")
    labels = _labels(geometry.spatial_shape)
    path = write_dicom_seg(labels, folder / "2062", tmp_path / "ct.seg.dcm", SEGMENTS)
    result = hd.seg.segread(path)
    sources = [pydicom.dcmread(p) for p in sorted(folder.iterdir())]  # file-name order: z descending here
    pixels = result.get_pixels_by_source_instance(
        source_sop_instance_uids=[ds.SOPInstanceUID for ds in sources], combine_segments=True
    )  # (slices in the order asked, rows, columns), segment numbers
    affine = geometry.affine_array()
    for ds, frame in zip(sources, pixels, strict=True):  # the label map's slice at each source slice's position
        ras = np.array([-1.0, -1.0, 1.0]) * np.array(ds.ImagePositionPatient, float)
        k = int(np.flatnonzero([np.allclose(affine @ [0, 0, z, 1], [*ras, 1], atol=1e-5) for z in range(5)])[0])
        np.testing.assert_array_equal(frame, labels[:, :, k].T)
    assert result.ReferencedSeriesSequence[0].SeriesInstanceUID == sources[0].SeriesInstanceUID
    assert result.SegmentationType == "BINARY" and result.Modality == "SEG"
    assert [s.SegmentLabel for s in result.SegmentSequence] == ["liver", "tumour"]
    algorithm = result.SegmentSequence[0].SegmentationAlgorithmIdentificationSequence[0]
    assert (algorithm.AlgorithmName, algorithm.AlgorithmVersion, algorithm.AlgorithmSource) == (
        "fold_0",
        seg.__version__,
        "seg",
    )
    assert result.SoftwareVersions == seg.__version__ and result.ManufacturerModelName == "fold_0"
    assert not list(tmp_path.glob(".tmp-*"))


def test_empty_slices_and_classes_read_back_as_background_and_score(tmp_path):
    folder = series_folder(CT5N)
    _, geometry = read_image(folder / "2062")
    labels = np.zeros(geometry.spatial_shape, np.uint8)
    labels[2:9, 3:7, 1] = 1  # one slice of class 1; class 2 nowhere
    path = write_dicom_seg(labels, folder / "2062", tmp_path / "ct.seg.dcm", SEGMENTS)
    np.testing.assert_array_equal(read_dicom_seg(path, folder / "2062"), labels)
    assert [s.SegmentLabel for s in hd.seg.segread(path).SegmentSequence] == ["liver", "tumour"]


def test_slicer_segmentation_reads_back_with_names_colours_values_and_the_input_geometry(tmp_path):
    _, geometry = read_image(series_folder(CT5N) / "2062")
    labels = _labels(geometry.spatial_shape)
    path = write_slicer_segmentation(labels, geometry, tmp_path / "ct.seg.nrrd", SEGMENTS)
    segmentation = slicerio.read_segmentation(str(path))
    assert [(s["name"], s["labelValue"], s["color"]) for s in segmentation["segments"]] == [
        ("liver", 1, [1.0, 0.0, 0.0]),
        ("tumour", 2, [0.0, 1.0, 0.0]),
    ]
    np.testing.assert_array_equal(segmentation["voxels"], labels)  # slicerio: (i, j, k) like the file
    direction = np.asarray(geometry.direction).reshape(3, 3)
    ijk_to_lps = np.eye(4)
    ijk_to_lps[:3, :3] = direction * np.asarray(geometry.spacing)[None, :]
    ijk_to_lps[:3, 3] = geometry.origin
    np.testing.assert_array_equal(segmentation["ijkToLPS"], ijk_to_lps)
    image = sitk.ReadImage(str(path))
    assert image.GetOrigin() == geometry.origin and image.GetSpacing() == geometry.spacing
    assert image.GetDirection() == geometry.direction
    np.testing.assert_array_equal(sitk.GetArrayFromImage(image).transpose(2, 1, 0), labels)


def test_itksnap_label_descriptions_name_and_colour_every_class():
    rows = [line.split(maxsplit=7) for line in itksnap_label_descriptions(SEGMENTS).splitlines() if line[0] != "#"]
    assert rows == [
        ["0", "0", "0", "0", "0", "0", "0", '"Clear Label"'],
        ["1", "255", "0", "0", "1", "1", "1", '"liver"'],
        ["2", "0", "255", "0", "1", "1", "1", '"tumour"'],
    ]


def test_output_format_is_checked_with_a_suggestion():
    with pytest.raises(ConfigError, match="infer.output_format must be one of input, dicom-seg, seg.nrrd.*dicom-seg"):
        InferConfig(output_format="dicom_seg")


def test_infer_on_dicom_series_writes_each_format_and_refuses_bad_series_in_one_line(
    model_dir, synthetic_3d, tmp_path, capsys
):
    inputs = tmp_path / "in"
    copy_series(CT5N, inputs / "ct")
    copy_series(CT2, inputs / "gap")
    (inputs / "plain.nii.gz").write_bytes(sorted((synthetic_3d / "imagesTr").iterdir())[0].read_bytes())
    args = ["infer", "--model", str(model_dir), "--input", str(inputs), "--no-tta", "--precision", "32"]

    assert main([*args, "--output", str(tmp_path / "nifti")]) == 1  # the series with a gap fails, the rest go on
    err = capsys.readouterr().err
    gap = [line for line in err.splitlines() if line.startswith("failed:")]
    assert len(gap) == 1 and gap[0].startswith(f"failed: {inputs / 'gap'}: DICOM series 2 ") and "missing" in gap[0]
    nifti = nib.load(tmp_path / "nifti" / "ct.nii.gz")
    _, geometry = read_image(inputs / "ct" / "2062")
    np.testing.assert_allclose(nifti.affine, geometry.affine_array(), atol=1e-6)
    assert (tmp_path / "nifti" / "itksnap_labels.txt").read_text() == itksnap_label_descriptions(
        Segments.of(_model(model_dir))
    )

    assert main([*args, "--output", str(tmp_path / "dicom"), "--output-format", "dicom-seg"]) == 1
    err = capsys.readouterr().err
    plain = [line for line in err.splitlines() if "plain.nii.gz" in line]
    assert len(plain) == 1 and "a DICOM Segmentation (--output-format dicom-seg) references a DICOM series" in plain[0]
    assert sorted(p.name for p in (tmp_path / "dicom").iterdir()) == ["ct.seg.dcm", "predictions.json"]
    result = hd.seg.segread(tmp_path / "dicom" / "ct.seg.dcm")
    uids = [pydicom.dcmread(p).SOPInstanceUID for p in sorted((inputs / "ct").iterdir())]
    pixels = result.get_pixels_by_source_instance(source_sop_instance_uids=uids, combine_segments=True)
    reference = np.asarray(nifti.dataobj)  # the NIfTI run's label map, slices ascending in z; files descend
    np.testing.assert_array_equal(pixels, reference.transpose(2, 1, 0)[::-1])
    assert [s.SegmentLabel for s in result.SegmentSequence] == ["head", "body"]
    refs = tmp_path / "refs"  # scoring reads the DICOM Segmentation back on its series' grid
    refs.mkdir()
    (refs / "ct.nii.gz").write_bytes((tmp_path / "nifti" / "ct.nii.gz").read_bytes())
    main([*args, "--output", str(tmp_path / "dicom"), "--output-format", "dicom-seg", "--labels", str(refs)])
    ct = json.loads((tmp_path / "dicom" / "predictions.json").read_text())["cases"]["ct"]
    assert ct["status"] == "exists" and {m["dice"] for m in ct["metrics"].values()} <= {1.0, None}

    assert main([*args, "--output", str(tmp_path / "slicer"), "--output-format", "seg.nrrd"]) == 1
    slicer = slicerio.read_segmentation(str(tmp_path / "slicer" / "ct.seg.nrrd"))
    np.testing.assert_array_equal(slicer["voxels"], reference)
    assert (tmp_path / "slicer" / "plain.seg.nrrd").is_file()
    pred = json.loads((tmp_path / "slicer" / "predictions.json").read_text())
    assert pred["summary"] == {**pred["summary"], "ok": 2, "failed": 1}
    assert not list(tmp_path.rglob(".tmp-*"))


def test_three_series_in_one_folder_are_three_cases(model_dir, tmp_path, capsys):
    inputs = copy_series(MR2, tmp_path / "mr")
    rc = main(["infer", "--model", str(model_dir), "--input", str(inputs), "--output", str(tmp_path / "out")])
    pred = json.loads((tmp_path / "out" / "predictions.json").read_text())
    assert rc == 1 and pred["summary"] == {**pred["summary"], "cases": 3, "ok": 1, "failed": 2}
    assert all("slices of 3 orientations" in line for line in pred["failures"])


def _model(folder: Path):
    from seg.infer.model_io import load_model

    return load_model(str(folder))


def test_a_series_writes_nifti_labels_with_itksnap_descriptions_unless_asked_otherwise(tmp_path):
    case = find_cases(str(series_folder(CT5N)))[0]
    assert outputs_for(case, tmp_path, False, []).labels == tmp_path / "CT5N.nii.gz"
    assert outputs_for(case, tmp_path, False, []).label_descriptions == tmp_path / "itksnap_labels.txt"
    assert outputs_for(case, tmp_path, False, [], output_format="dicom-seg").labels == tmp_path / "CT5N.seg.dcm"
    assert outputs_for(case, tmp_path, False, [], output_format="seg.nrrd").label_descriptions is None
