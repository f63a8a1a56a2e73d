"""The arithmetic of dense nearest-neighbour retrieval on patch grids (pure torch, no I/O).

Every function follows open-hummingbird-eval's ``hbird/hbird_eval.py`` (the reproduction of Balazevic et
al., NeurIPS 2023) and is checked against a plain loop written from that definition in
tests/test_dense_patches.py:

- :func:`patch_classes`: the label map cut into the patches of the feature grid (``_patchify_gt``);
- :func:`soft_labels`: a patch's label = the fraction of its pixels of each class;
- :func:`bounded_sample`: which patches of an image enter a bounded memory (``_sample_features``);
- :func:`attention_readout`: a query patch's label from its neighbours (``_cross_attention``);
- :func:`label_map`: the grid of label vectors upsampled bilinearly to the image, argmax.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

EMPTY_PATCH_SCORE = 1e6
"""Score of a patch holding no class (sampled last), as in the reproduction."""


def patch_classes(labels: torch.Tensor, patch: int) -> torch.Tensor:
    """int64 [h * w, patch * patch]: the class ids of each patch's pixels, patches in raster order.

    Args:
        labels: int [H, W] class ids, H and W multiples of ``patch``.
        patch: pixels per patch side (the feature stride).
    """
    height, width = labels.shape
    if height % patch or width % patch:
        raise ValueError(f"labels of {height}x{width} do not split into patches of {patch}")
    cells = labels.reshape(height // patch, patch, width // patch, patch).permute(0, 2, 1, 3)
    return cells.reshape(-1, patch * patch).long()


def class_counts(classes: torch.Tensor, num_classes: int) -> torch.Tensor:
    """int64 [P, C]: per patch, the number of its pixels of each class.

    Args:
        classes: int64 [P, pixels] class ids in ``0 .. num_classes - 1`` (void already mapped).
    """
    counts = torch.zeros(classes.shape[0], num_classes, dtype=torch.int64)
    return counts.scatter_add_(1, classes, torch.ones_like(classes))


def soft_labels(classes: torch.Tensor, num_classes: int) -> torch.Tensor:
    """float32 [P, C]: per patch, the fraction of its pixels of each class (``classes``: int64 [P, pixels])."""
    return class_counts(classes, num_classes).float() / classes.shape[1]


def patch_scores(classes: torch.Tensor, num_classes: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Rarity scores of an image's patches and which patches hold any class.

    score = sum, over the classes present in the patch, of the number of patches of the image holding
    that class: patches of rare classes score low.

    Returns:
        float32 [P] scores and bool [P] non-empty.
    """
    present = class_counts(classes, num_classes) > 0  # [P, C]
    frequency = present.sum(dim=0).float()  # patches holding each class
    return present.float() @ frequency, present.any(dim=1)


def bounded_sample(
    classes: torch.Tensor, num_classes: int, count: int, generator: torch.Generator | None = None
) -> torch.Tensor:
    """int64 [count]: the patches of one image that enter a bounded memory, rarest classes first.

    The rarity score (:func:`patch_scores`) of every non-empty patch is multiplied by U(0, 1) noise (one
    draw per non-empty patch, in raster order), empty patches score 1e6, and the ``count`` smallest are
    kept, in increasing score (``torch.topk(largest=False)``).

    Args:
        classes: int64 [P, pixels] class ids of each patch (:func:`patch_classes`).
        count: patches to keep, at most P.
        generator: the source of the noise (reproducible per image and pass).
    """
    scores, non_empty = patch_scores(classes, num_classes)
    scores = scores.clone()
    scores[~non_empty] = EMPTY_PATCH_SCORE
    noise = torch.rand(int(non_empty.sum()), generator=generator)
    scores[non_empty] *= noise
    return torch.topk(scores, count, largest=False).indices


def attention_readout(cosines: torch.Tensor, neighbour_labels: torch.Tensor, temperature: float) -> torch.Tensor:
    """float32 [Q, C]: each query's label, the softmax(cosine / temperature)-weighted sum of its neighbours'.

    Args:
        cosines: float [Q, k] cosine similarity of each query to each of its neighbours.
        neighbour_labels: float [Q, k, C] the neighbours' soft labels.
        temperature: softmax temperature (the protocol's 0.02).
    """
    weights = torch.softmax(cosines.float() / temperature, dim=-1)
    return torch.bmm(weights.unsqueeze(1), neighbour_labels.float()).squeeze(1)


def label_map(patch_labels: torch.Tensor, grid: tuple[int, int], size: tuple[int, int]) -> torch.Tensor:
    """int64 [H, W]: the patches' label vectors as a grid, upsampled bilinearly to ``size``, argmax.

    Args:
        patch_labels: float [h * w, C] in raster order.
        grid: (h, w).
        size: (H, W) of the labels the prediction is scored against.
    """
    maps = patch_labels.T.reshape(1, -1, grid[0], grid[1]).float()
    return F.interpolate(maps, size=size, mode="bilinear", align_corners=False)[0].argmax(dim=0)
