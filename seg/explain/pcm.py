"""One case's CAMs refined by SEAM's Pixel Correlation Module (Wang et al., CVPR 2020), for the analysis of a trained
network: `seg.seam.pcm.pixel_correlation` (the one implementation, which SEAM training uses batched) on a single
case, without gradients, over a local window of `window` voxels per axis (SEAM uses the whole image; a window keeps
3D in memory, O(voxels * (C + K)))."""

from __future__ import annotations

import torch

from seg.seam.pcm import pixel_correlation


def refine_case_cams(cams: torch.Tensor, features: torch.Tensor, window: int = 5) -> torch.Tensor:
    """cams (K, *S) and features (C, *S) on the same grid -> refined cams (K, *S).

    Voxels whose feature vector is zero (no affinity to anything, itself included) keep their CAM value.
    """
    if cams.shape[1:] != features.shape[1:]:
        raise ValueError(
            f"refine_case_cams: cams {tuple(cams.shape)} and features {tuple(features.shape)} differ in space."
        )
    if window < 1 or window % 2 == 0:
        raise ValueError(f"refine_case_cams: window must be an odd number >= 1, got {window}.")
    with torch.no_grad():
        return pixel_correlation(cams[None].float(), features[None].float(), window)[0]
