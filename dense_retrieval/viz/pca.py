"""Feature PCA as colour: the spatial structure of dense features made visible."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F


def feature_pca_rgb(
    features: torch.Tensor, size: tuple[int, int] | None = None, fit_on: torch.Tensor | None = None
) -> np.ndarray:
    """Project features on their first three principal components and show them as RGB.

    Args:
        features: float [C, h, w] dense features of one image.
        size: (H, W) of the output; None keeps the feature grid (h, w). Upsampling is bilinear.
        fit_on: float [C, ...] features to fit the components on (e.g. several frames, so colours stay
            comparable between them); defaults to ``features`` itself.

    Returns:
        uint8 [H, W, 3]; each component is stretched between its 1st and 99th percentile.
    """
    channels, height, width = features.shape
    samples = (fit_on if fit_on is not None else features).reshape(channels, -1).T.double()
    mean = samples.mean(dim=0, keepdim=True)
    _, _, components = torch.linalg.svd(samples - mean, full_matrices=False)
    basis = components[:3].T  # [C, 3]
    signs = torch.sign(((samples - mean) @ basis).sum(dim=0, keepdim=True) + 1e-12)  # deterministic orientation
    projected = (features.reshape(channels, -1).T.double() - mean) @ (basis * signs)  # [h*w, 3]
    reference = (samples - mean) @ (basis * signs)
    low = torch.quantile(reference, 0.01, dim=0)
    high = torch.quantile(reference, 0.99, dim=0)
    scaled = ((projected - low) / (high - low).clamp_min(1e-12)).clamp(0, 1)
    image = scaled.T.reshape(1, 3, height, width).float()
    if size is not None and tuple(size) != (height, width):
        image = F.interpolate(image, size=tuple(size), mode="bilinear", align_corners=False).clamp(0, 1)
    return (image[0].permute(1, 2, 0).numpy() * 255 + 0.5).astype(np.uint8)
