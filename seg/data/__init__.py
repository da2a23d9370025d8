"""Data: geometry-exact image I/O, datasets (MSD and 2D layouts), the `preprocess` stage and the embedded
synthetic dataset. Imports nothing of seg but `seg.config` (for `DataConfig`) and `seg.files` (atomic writes).

Contract (training, inference and analysis rely on these names and formats):

I/O (`seg.data.io`)
    read_image(path, spatial_dims=None) -> (array, Geometry)
        array in the file's voxel order (i, j[, k]) like its affine, channels last ((X, Y, Z, C) for MSD 4D
        NIfTI, (X, Y, 4) for RGBA PNG). NIfTI via nibabel (raw header kept), anything else via SimpleITK.
    write_image(array, geometry, path) -> Path
        atomic (temporary file in the same folder, then os.replace); the format follows the path's extension.
        Written in the geometry's own format it reproduces shape, affine, qform/sform codes and zooms exactly.
    Geometry (seg.data.geometry): JSON-able (to_dict/from_dict); canonical orientation is an exact axis
    permutation + flips (RAS for NIfTI and 3D SimpleITK images; 2D SimpleITK images keep their own frame).

Datasets (`seg.data.layout`, `seg.data.splits`)
    find_dataset(root, layout="auto") -> Dataset(cases=(Case(case_id, images, label), ...), labels, modality)
        MSD: dataset.json (training/labels/modality) or imagesTr/ + labelsTr/; channel files case_0000, case_0001.
        2D: images/ + masks/ (0/255 masks mean 0/1 unless dataset.json declares a class 255). RGB(A) images
        become grey (luma) by default (`data.color`: grey / first / rgb).
    make_splits(case_ids, folds, seed) -> [{"train": [ids], "val": [ids]}, ...]: deterministic, sorted ids.

Preprocessing (`seg.data.preprocess`)
    preprocess_dataset(cfg: DataConfig, out_dir=None, progress=True) -> PreprocessResult
        (out_dir, cases_dir, fingerprint, splits, report, dataset_json, num_cases, num_valid, num_skipped,
        num_reused, seconds). With cfg.root None, generates the synthetic dataset in cfg.synthetic_dir first.
        Steps per case: read + validate -> canonical orientation -> crop to non-zero (image or label) ->
        normalise per channel -> resample to the target spacing (images spline order data.image_order, labels
        nearest). Raises DataError when no case is valid, or on any invalid case with data.strict.
    preprocess_image(image_paths, fingerprint) -> (image (C, *spatial) float32, CaseProperties)
        the same steps for a new image without label; fingerprint: a Fingerprint, its plan or the
        fingerprint.json path.
    Processes are spawned: a script calling preprocess_dataset with num_workers > 0 needs
    `if __name__ == "__main__":`.

Restoring (`seg.data.restore`)
    restore_to_original(array (K, *spatial), props, is_label, background=0.0) -> array in the original file's
    voxel order: (*spatial) for K == 1, (*spatial, K) otherwise; uint8 for labels, float32 otherwise.
    write_image(result, props.geometry, path) recreates the input's grid and header geometry.

Cache layout (`<cache>` = data.cache_dir, default data/preprocessed; read and written by `seg.data.cache.Cache`,
the fingerprint and its preprocessing plan as the frozen dataclasses `Fingerprint` and `PreprocessingPlan`)
    cases/<id>.npz      image float32 (C, *spatial); label uint8 (1, *spatial) when the case has one
    cases/<id>.json     CaseProperties: original Geometry, reorientation {perm, flips}, canonical_shape,
                        original_spacing, bbox [[start, stop], ...], cropped_shape, target_spacing,
                        resampled_shape, preprocessed_affine, normalization (per channel, values used), cache_key
    fingerprint.json    spatial_dims, num_channels, channel_names, modality, labels {"0": name}, class_names,
                        label_values, num_cases, num_valid, shapes/spacings {min, median, max}, intensity (per
                        channel: mean, std, min, max, median, percentiles of foreground voxels), cases {id: {shape,
                        spacing}}, median_shape_after_preprocessing, preprocessing {spatial_dims, num_channels,
                        target_spacing, normalization (per channel: scheme and parameters), color, crop_nonzero,
                        image_order, label_order, binary_255, orientation}
    splits.json         [{"train": [ids], "val": [ids]}, ...] over the valid cases (data.folds, data.seed)
    report.json         num_cases, num_valid, skipped [ids], problems [one line each], cases {id: {status, ...}}
                        status: preprocessed / reused / skipped
    dataset.json        name, root, layout, labels, modality, tensorImageSize, numTraining, source (the original)
    analysis/<id>.npz   per-case validation and intensity samples, reused by reruns

Embedded dataset (`seg.data.synthetic`)
    make_synthetic_dataset(out_dir, spatial_dims=3, n_cases=24, seed=0) -> Path: MSD layout (.nii.gz; 2D
    cases as 2D NIfTI), labels 0 background, 1 head, 2 body.
"""

from seg.data.errors import DataError, ImageReadError
from seg.data.geometry import Geometry, Reorientation
from seg.data.io import read_image, write_image
from seg.data.properties import CaseProperties

__all__ = ["CaseProperties", "DataError", "Geometry", "ImageReadError", "Reorientation", "read_image", "write_image"]
