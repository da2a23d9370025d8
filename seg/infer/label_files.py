"""Label maps as clinics review them: the input's format (NIfTI with ITK-SNAP's label descriptions beside it), a
DICOM Segmentation for PACS (`seg.infer.dicom_seg`), or 3D Slicer's segmentation file. The output's suffix picks
the format; every file is written atomically, the label map last (a case is complete when its label map exists)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from seg.data.errors import DataError
from seg.data.geometry import Geometry
from seg.data.io import read_image, write_image
from seg.files import write_text
from seg.infer.cases import DICOM_SUFFIX, LABEL_SUFFIXES, CaseOutputs, InferCase
from seg.model_folder import ModelBundle

DICOM_SEG_SUFFIX = LABEL_SUFFIXES["dicom-seg"]
SLICER_SUFFIX = LABEL_SUFFIXES["seg.nrrd"]
# ITK-SNAP's default colours for labels 1-6 (red, green, blue, yellow, cyan, magenta); more classes cycle
PALETTE = ((255, 0, 0), (0, 255, 0), (0, 0, 255), (255, 255, 0), (0, 255, 255), (255, 0, 255))


@dataclass(frozen=True)
class Segments:
    """What a label file says about its classes and the model that made them."""

    class_names: tuple[str, ...]  # background first; class k has label value k
    model_name: str  # the model folder's name (or the source as given)
    model_source: str
    config_hash: str
    seg_version: str

    @classmethod
    def of(cls, model: ModelBundle) -> Segments:
        import seg

        source = model.source.rstrip("/")
        return cls(tuple(model.class_names), Path(source).name or source, source, model.config_hash, seg.__version__)

    def foreground(self) -> list[tuple[int, str, tuple[int, int, int]]]:
        """(label value, name, RGB colour 0-255) of every class but background."""
        return [(k, name, PALETTE[(k - 1) % len(PALETTE)]) for k, name in enumerate(self.class_names) if k > 0]


def check_output_format(case: InferCase, outputs: CaseOutputs) -> None:
    """Before predicting: a DICOM Segmentation needs a DICOM series to reference."""
    if outputs.labels.name.endswith(DICOM_SEG_SUFFIX) and case.suffix != DICOM_SUFFIX:
        raise DataError(
            f"{case.images[0]}: a DICOM Segmentation (--output-format dicom-seg) references a DICOM series, and this "
            f"input is not one. Pass DICOM series, or use --output-format input or seg.nrrd for this file."
        )


def write_labels(
    labels: np.ndarray, geometry: Geometry, case: InferCase, segments: Segments, outputs: CaseOutputs
) -> Path:
    """Write the label map (file voxel order) in the format its path asks for; ITK-SNAP's label descriptions first."""
    if outputs.label_descriptions is not None:
        write_text(outputs.label_descriptions, itksnap_label_descriptions(segments))
    path = outputs.labels
    if path.name.endswith(DICOM_SEG_SUFFIX):
        from seg.infer.dicom_seg import write_dicom_seg

        return write_dicom_seg(labels, case.images[0], path, segments)
    if path.name.endswith(SLICER_SUFFIX):
        return write_slicer_segmentation(labels, geometry, path, segments)
    return write_image(labels, geometry, path, compression=outputs.compression)


def read_labels(path: Path, case: InferCase) -> tuple[np.ndarray, Geometry]:
    """A label map that `write_labels` wrote for `case`, as (array in file voxel order, Geometry); a DICOM
    Segmentation on the grid of its source series."""
    if path.name.endswith(DICOM_SEG_SUFFIX):
        from seg.infer.dicom_seg import read_dicom_seg

        _, geometry = read_image(case.images[0])
        return read_dicom_seg(path, case.images[0]), geometry
    return read_image(path)


def itksnap_label_descriptions(segments: Segments) -> str:
    """ITK-SNAP's label description file (Segmentation > Import Label Descriptions): index, RGB, opacity,
    visibility, mesh visibility, name."""
    lines = [
        "################################################",
        "# ITK-SnAP Label Description File",
        f"# Written by seg {segments.seg_version} for the model {segments.model_source}",
        "# IDX   -R-  -G-  -B-  -A--  VIS MSH  LABEL",
        "################################################",
        '    0     0    0    0     0  0  0    "Clear Label"',
    ]
    for k, name, (r, g, b) in segments.foreground():
        label = name.replace('"', "'")
        lines.append(f'{k:5d} {r:5d} {g:4d} {b:4d}     1  1  1    "{label}"')
    return "\n".join(lines) + "\n"


def write_slicer_segmentation(labels: np.ndarray, geometry: Geometry, path: Path, segments: Segments) -> Path:
    """3D Slicer's `.seg.nrrd`: the label map as one layer, each class a segment with its name, colour and label
    value (the fields Slicer's segmentation storage reads)."""
    if geometry.spatial_dims != 3:
        raise DataError(
            f"{path}: 3D Slicer's seg.nrrd holds 3D segmentations and this image is {geometry.spatial_dims}D. "
            f"Use --output-format input for 2D images."
        )
    extent = " ".join(f"0 {n - 1}" for n in geometry.spatial_shape)
    meta = {
        "Segmentation_MasterRepresentation": "Binary labelmap",
        "Segmentation_ContainedRepresentationNames": "Binary labelmap|",
        "Segmentation_ReferenceImageExtentOffset": "0 0 0",
    }
    for i, (k, name, rgb) in enumerate(segments.foreground()):
        meta |= {
            f"Segment{i}_ID": f"Segment_{k}",
            f"Segment{i}_Name": name,
            f"Segment{i}_NameAutoGenerated": "0",
            f"Segment{i}_Color": " ".join(f"{c / 255:.6g}" for c in rgb),
            f"Segment{i}_ColorAutoGenerated": "0",
            f"Segment{i}_LabelValue": str(k),
            f"Segment{i}_Layer": "0",
            f"Segment{i}_Extent": extent,
            f"Segment{i}_Tags": "Segmentation.Status:completed|",
        }
    return write_image(labels.astype(np.uint8), geometry, path, meta=meta)
