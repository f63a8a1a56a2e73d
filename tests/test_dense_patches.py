"""The arithmetic of dense retrieval against plain loops written from open-hummingbird-eval's definitions.

Each reference below is written from the protocol's text (REFERENCES.md, "Dense nearest-neighbour
retrieval"), one patch or one query at a time in Python, and compared with the vectorised functions of
``retrieval/dense/patches.py`` and the Hungarian matching of ``metrics/segmentation.py``.
"""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import torch

from dense_retrieval.metrics.segmentation import hungarian_mapping, iou_from_confusion, remap_confusion
from dense_retrieval.retrieval.dense.patches import (
    EMPTY_PATCH_SCORE,
    attention_readout,
    bounded_sample,
    label_map,
    patch_classes,
    patch_scores,
    soft_labels,
)


def _labels(seed: int, size: int = 32, classes: int = 5) -> torch.Tensor:
    """Blocky label maps: a few rectangles of classes over background, like segmentation masks."""
    rng = np.random.default_rng(seed)
    labels = np.zeros((size, size), np.int64)
    for _ in range(4):
        top, left = rng.integers(0, size - 4, 2)
        height, width = rng.integers(3, size // 2, 2)
        labels[top : top + height, left : left + width] = rng.integers(1, classes)
    return torch.from_numpy(labels)


def test_patches_and_soft_labels_equal_a_loop_over_patches():
    labels = _labels(0)
    patch, classes = 8, 5
    found = soft_labels(patch_classes(labels, patch), classes)
    cell = 0
    for row in range(0, 32, patch):
        for col in range(0, 32, patch):  # raster order, as the ViT's tokens
            pixels = labels[row : row + patch, col : col + patch].reshape(-1).tolist()
            expected = [pixels.count(c) / len(pixels) for c in range(classes)]
            assert found[cell].tolist() == pytest.approx(expected)
            cell += 1
    assert cell == found.shape[0]


def _reference_sample(labels: torch.Tensor, patch: int, classes: int, count: int, noise: list[float]) -> list[int]:
    """The bounded-memory sampling, patch by patch: rarity score x noise, the ``count`` smallest."""
    cells = []
    for row in range(0, labels.shape[0], patch):
        for col in range(0, labels.shape[1], patch):
            cells.append(set(labels[row : row + patch, col : col + patch].reshape(-1).tolist()))
    frequency = {c: sum(c in present for present in cells) for c in range(classes)}  # patches holding c
    scores, draws = [], iter(noise)
    for present in cells:
        if not present:
            scores.append(EMPTY_PATCH_SCORE)
        else:
            scores.append(sum(frequency[c] for c in present) * next(draws))
    return sorted(range(len(cells)), key=lambda i: scores[i])[:count]


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_bounded_sample_keeps_the_rarest_patches_as_the_reference_does(seed):
    labels, patch, classes, count = _labels(seed), 4, 5, 10
    generator = torch.Generator().manual_seed(seed)
    chosen = bounded_sample(patch_classes(labels, patch), classes, count, generator)
    noise = torch.rand(64, generator=torch.Generator().manual_seed(seed)).tolist()  # one draw per patch, in order
    assert chosen.tolist() == _reference_sample(labels, patch, classes, count, noise)


def test_bounded_sample_prefers_rare_classes():
    labels = torch.zeros(32, 32, dtype=torch.int64)
    labels[:8, :8] = 3  # one patch of class 3 (score 1), fifteen of background (score 15 each)
    picks = [bounded_sample(patch_classes(labels, 8), 4, 1, torch.Generator().manual_seed(s)).item() for s in range(50)]
    # U(0, 1) noise multiplies every score: the rare patch wins about 60% of draws, a background one ~3%
    assert picks.count(0) > 20 and max(picks.count(cell) for cell in range(1, 16)) < 10
    # the score is a sum over the classes present: a patch holding the rare class *and* background scores
    # 1 + 16 = 17, above a pure background patch (the reproduction's definition, kept as it is)
    labels[:8, :8] = 0
    labels[:4, :4] = 3
    scores, non_empty = patch_scores(patch_classes(labels, 8), 4)
    assert scores[0] == 17 and (scores[1:] == 16).all() and non_empty.all()


def test_attention_readout_equals_a_softmax_loop():
    rng = np.random.default_rng(3)
    cosines = rng.uniform(-1, 1, (6, 30)).astype(np.float32)
    labels = rng.dirichlet(np.ones(4), (6, 30)).astype(np.float32)
    found = attention_readout(torch.from_numpy(cosines), torch.from_numpy(labels), 0.02)
    for q in range(6):
        top = max(cosines[q])
        weights = [math.exp((c - top) / 0.02) for c in cosines[q]]
        expected = [sum(w * labels[q, i, c] for i, w in enumerate(weights)) / sum(weights) for c in range(4)]
        assert found[q].tolist() == pytest.approx(expected, rel=1e-4, abs=1e-6)


def test_label_map_upsamples_bilinearly_then_takes_the_argmax():
    patch_labels = torch.tensor([[1.0, 0.0], [0.0, 1.0], [0.0, 1.0], [0.0, 1.0]])  # 2x2 grid, class 0 top left
    found = label_map(patch_labels, (2, 2), (8, 8))
    assert found.shape == (8, 8) and found[0, 0] == 0 and found[7, 7] == 1
    assert (found == 0).sum() < 16  # bilinear: class 0 covers less than its quarter once blended


def _reference_matched_iou(confusion: np.ndarray) -> tuple[np.ndarray, float]:
    """Hungarian matching by brute force: the permutation of predicted ids with the largest summed IoU."""
    classes = confusion.shape[0]
    best, best_iou = None, -1.0
    for permutation in itertools.permutations(range(classes)):
        mapped = np.zeros_like(confusion)
        for predicted, true in enumerate(permutation):
            mapped[:, true] += confusion[:, predicted]
        iou = iou_from_confusion(mapped)
        if iou.sum() > best_iou + 1e-12:
            best, best_iou = iou, iou.sum()
    return best, float(best.mean())


@pytest.mark.parametrize("seed", range(5))
def test_hungarian_matching_equals_the_best_permutation(seed):
    rng = np.random.default_rng(seed)
    confusion = rng.integers(0, 50, (4, 4))
    confusion[rng.permutation(4), np.arange(4)] += 200  # predictions are a relabelling of the truth, plus noise
    matched = remap_confusion(confusion, hungarian_mapping(confusion))
    expected, mean = _reference_matched_iou(confusion)
    assert iou_from_confusion(matched) == pytest.approx(expected)
    assert iou_from_confusion(matched).mean() == pytest.approx(mean)
    assert matched.sum() == confusion.sum()


def test_matching_changes_nothing_when_predictions_are_already_the_classes():
    confusion = np.array([[90, 5, 5], [4, 80, 1], [10, 0, 70]])
    assert (hungarian_mapping(confusion) == np.arange(3)).all()
    assert (remap_confusion(confusion, hungarian_mapping(confusion)) == confusion).all()


def test_without_matching_a_relabelled_prediction_scores_zero_and_with_it_full():
    confusion = np.array([[0, 30, 0], [0, 0, 20], [10, 0, 0]])  # every class predicted under another id
    assert iou_from_confusion(confusion).mean() == 0.0
    assert iou_from_confusion(remap_confusion(confusion, hungarian_mapping(confusion))).mean() == 1.0
