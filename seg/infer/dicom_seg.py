"""DICOM Segmentation out (highdicom): one SEG object that references the source series, one segment per class
(named by the model's class names), each with the algorithm that made it (seg, its version, the model)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from seg.data.dicom import check_series, series_of
from seg.files import atomic_path
from seg.infer.label_files import Segments

SERIES_NUMBER = 9001  # viewers list series by number: the segmentation after the scans


def write_dicom_seg(labels: np.ndarray, source: str | Path, path: Path, segments: Segments) -> Path:
    """`labels` (columns, rows, slices), on the grid `read_image(source)` gave, as a BINARY DICOM Segmentation of
    the series `source` belongs to. BINARY: the type every viewer reads (LABELMAP is newer and unevenly supported).
    Empty classes keep their segment; slices without any label are left out unless all are empty."""
    import highdicom as hd
    import pydicom

    files = check_series(series_of(source)).files  # the stacking order that read_image used for the volume
    images = [pydicom.dcmread(f) for f in files]
    frames = np.ascontiguousarray(np.transpose(labels, (2, 1, 0))).astype(np.uint8)  # (slices, rows, columns)
    algorithm = hd.AlgorithmIdentificationSequence(
        name=segments.model_name,
        family=_code("cid7162", "ArtificialIntelligence"),
        version=segments.seg_version,
        source="seg",
        parameters={"model": segments.model_source, "config_hash": segments.config_hash},
    )
    descriptions = [
        hd.seg.SegmentDescription(
            segment_number=k,
            segment_label=name,
            segmented_property_category=_code("SCT", "Tissue"),
            segmented_property_type=_code("SCT", "Tissue"),
            algorithm_type=hd.seg.SegmentAlgorithmTypeValues.AUTOMATIC,
            algorithm_identification=algorithm,
            display_color=hd.color.CIELabColor.from_rgb(*rgb),
        )
        for k, name, rgb in segments.foreground()
    ]
    seg = hd.seg.Segmentation(
        source_images=images,
        pixel_array=frames,
        segmentation_type=hd.seg.SegmentationTypeValues.BINARY,
        segment_descriptions=descriptions,
        series_instance_uid=hd.UID(),
        series_number=SERIES_NUMBER,
        sop_instance_uid=hd.UID(),
        instance_number=1,
        manufacturer="seg",
        manufacturer_model_name=segments.model_name,
        software_versions=segments.seg_version,
        device_serial_number=segments.config_hash,
        series_description=f"seg {segments.model_name}"[:64],
    )
    with atomic_path(path) as tmp:
        seg.save_as(tmp)
    return path


def read_dicom_seg(path: Path, source: str | Path) -> np.ndarray:
    """The label map (columns, rows, slices) of a DICOM Segmentation on the series `source` belongs to, slices in
    the stacking order that `read_image(source)` uses: label value = segment number."""
    import highdicom as hd
    import pydicom

    files = check_series(series_of(source)).files
    uids = [pydicom.dcmread(f, stop_before_pixels=True, specific_tags=["SOPInstanceUID"]).SOPInstanceUID for f in files]
    frames = hd.seg.segread(path).get_pixels_by_source_instance(
        source_sop_instance_uids=uids,
        combine_segments=True,
        assert_missing_frames_are_empty=True,  # slices without labels are left out of the file
    )
    return np.ascontiguousarray(np.transpose(frames, (2, 1, 0))).astype(
        np.uint8
    )  # (slices, rows, columns) -> (x, y, z)


def _code(group: str, name: str):
    """A code of pydicom's dictionaries: ('SCT', 'Tissue'), ('cid7162', 'ArtificialIntelligence')."""
    from pydicom.sr.codedict import codes

    return getattr(getattr(codes, group), name)
