"""Proposals computed from the image itself: k-means of the feature grid, superpixels."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F


def kmeans_masks(
    features: torch.Tensor, size: tuple[int, int], clusters: int = 5, seed: int = 0, iterations: int = 50
) -> torch.Tensor:
    """Cluster one image's feature grid and return one mask per cluster at image size.

    The route of the MaskContrast authors for plain MoCo backbones: k-means (K=5) on the dense grid.
    Vectors are L2-normalised first (cosine geometry, as the retrieval); k-means++ initialisation from
    a seeded generator, then Lloyd iterations until assignments stop changing, so the result is
    deterministic. Cluster indicator maps are bilinearly upsampled to ``size`` and each pixel takes
    the cluster with the largest upsampled weight (smooth boundaries rather than blocky cells).

    Args:
        features: float [C, h, w].
        size: (H, W) of the image.
        clusters: K; at most one cluster per grid cell.
        seed: initialisation seed.
        iterations: maximum Lloyd iterations.

    Returns:
        bool [K, H, W]; a cluster may come back empty after upsampling (the caller drops it).
    """
    channels, h, w = features.shape
    points = F.normalize(features.detach().float().reshape(channels, h * w).T, dim=1)  # [N, C]
    k = min(clusters, h * w)
    assignment = _kmeans(points, k, seed, iterations)  # [N]
    onehot = F.one_hot(assignment, k).T.reshape(k, h, w).float()
    weights = F.interpolate(onehot[None], size=tuple(size), mode="bilinear", align_corners=False)[0]
    labels = weights.argmax(0)  # [H, W]
    return labels[None] == torch.arange(k, device=labels.device)[:, None, None]


def _kmeans(points: torch.Tensor, k: int, seed: int, iterations: int) -> torch.Tensor:
    """Lloyd's k-means with k-means++ seeding. points: float [N, C] -> cluster index int64 [N]."""
    generator = torch.Generator(device="cpu").manual_seed(seed)
    n = points.shape[0]
    centres = points[torch.randint(n, (1,), generator=generator)]
    for _ in range(1, k):
        distance = torch.cdist(points, centres).min(1).values.pow(2).cpu()
        total = float(distance.sum())
        probabilities = distance / total if total > 0 else torch.full((n,), 1.0 / n)
        choice = torch.multinomial(probabilities, 1, generator=generator)
        centres = torch.cat([centres, points[choice.to(points.device)]])
    assignment = torch.cdist(points, centres).argmin(1)
    for _ in range(iterations):
        sums = torch.zeros_like(centres).index_add_(0, assignment, points)
        counts = torch.bincount(assignment, minlength=k).float()
        filled = counts > 0
        centres[filled] = sums[filled] / counts[filled, None]  # an emptied cluster keeps its centre
        updated = torch.cdist(points, centres).argmin(1)
        if torch.equal(updated, assignment):
            break
        assignment = updated
    return assignment


def superpixel_masks(
    image: np.ndarray, algorithm: str = "felzenszwalb", scale: float = 400.0, segments: int = 40
) -> np.ndarray:
    """Superpixels of an RGB image as masks (scikit-image).

    Args:
        image: uint8 [H, W, 3].
        algorithm: ``"felzenszwalb"`` (graph-based; ``scale`` sets the size) or ``"slic"``
            (k-means in colour + position; about ``segments`` segments).

    Returns:
        bool [K, H, W], one mask per superpixel.
    """
    from skimage.segmentation import felzenszwalb, slic

    height, width = image.shape[:2]
    if algorithm == "slic":
        labels = slic(image, n_segments=segments, compactness=10.0, start_label=0)
    else:
        labels = felzenszwalb(image, scale=scale, sigma=0.8, min_size=max(20, height * width // 1000))
    count = int(labels.max()) + 1
    return labels[None] == np.arange(count)[:, None, None]
