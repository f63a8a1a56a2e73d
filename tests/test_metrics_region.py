"""Region similarity J, hand-checked on tiny masks and against vos-benchmark."""

import numpy as np
import pytest
from vos_benchmark.evaluator import get_iou

from dense_retrieval.metrics.region import jaccard, jaccard_from_counts


def _mask(shape, *pixels):
    mask = np.zeros(shape, bool)
    for y, x in pixels:
        mask[y, x] = True
    return mask


def test_hand_checked_values():
    gt = np.zeros((4, 5), bool)
    gt[1:3, 1:4] = True  # 6 pixels
    pred = np.zeros((4, 5), bool)
    pred[1:3, 2:5] = True  # 6 pixels, 4 shared
    assert jaccard(gt, pred) == pytest.approx(4 / 8)
    assert jaccard(gt, gt) == 1.0


def test_empty_cases():
    empty = np.zeros((3, 3), bool)
    one = _mask((3, 3), (1, 1))
    assert jaccard(empty, empty) == 1.0  # empty union scores 1
    assert jaccard(one, empty) == 0.0  # empty prediction
    assert jaccard(empty, one) == 0.0  # empty ground truth
    assert jaccard(one, one) == 1.0  # one-pixel object found
    assert jaccard(one, _mask((3, 3), (1, 2))) == 0.0  # one pixel off


def test_void_pixels_leave_intersection_and_union():
    gt = _mask((1, 4), (0, 0), (0, 1))
    pred = _mask((1, 4), (0, 1), (0, 2), (0, 3))
    void = _mask((1, 4), (0, 3))
    assert jaccard(gt, pred) == pytest.approx(1 / 4)
    assert jaccard(gt, pred, void) == pytest.approx(1 / 3)
    assert jaccard(_mask((1, 2)), _mask((1, 2), (0, 1)), _mask((1, 2), (0, 1))) == 1.0  # all left is empty


@pytest.mark.parametrize("seed", range(5))
def test_equals_vos_benchmark(seed):
    rng = np.random.default_rng(seed)
    gt, pred = rng.random((2, 30, 40)) < [[[0.3]], [[0.5]]]
    inter = int((gt & pred).sum())
    assert jaccard(gt, pred) == pytest.approx(get_iou(inter, int(gt.sum() + pred.sum())), abs=1e-12)


def test_counts_and_shape_check():
    assert jaccard_from_counts(0, 0, 0) == 1.0
    assert jaccard_from_counts(3, 4, 5) == pytest.approx(3 / 6)
    with pytest.raises(ValueError, match="shape"):
        jaccard(np.zeros((2, 2)), np.zeros((2, 3)))
