"""The mIoU meter against a hand-built confusion matrix."""

from __future__ import annotations

import numpy as np
import pytest

from dense_retrieval.metrics.segmentation import ConfusionMeter, iou_from_confusion, mean_iou


def test_meter_matches_hand_built_confusion():
    target = np.array([[0, 0, 1, 1], [0, 2, 2, 255], [1, 1, 2, 255]])
    prediction = np.array([[0, 1, 1, 1], [0, 2, 0, 2], [1, 0, 2, 1]])
    meter = ConfusionMeter(4)
    meter.update(prediction, target)
    # rows: truth, cols: prediction; the two 255 pixels are ignored
    expected = np.array([[2, 1, 0, 0], [1, 3, 0, 0], [1, 0, 2, 0], [0, 0, 0, 0]])
    np.testing.assert_array_equal(meter.confusion, expected)
    counts = meter.counts()
    np.testing.assert_array_equal(counts["tp"], [2, 3, 2, 0])
    np.testing.assert_array_equal(counts["fp"], [2, 1, 0, 0])
    np.testing.assert_array_equal(counts["fn"], [1, 1, 1, 0])
    iou = meter.iou()
    np.testing.assert_allclose(iou, [2 / 5, 3 / 5, 2 / 3, 0.0])
    # class 3 never occurs: 0 under the reference convention, skipped with absent="skip"
    assert meter.miou() == pytest.approx((2 / 5 + 3 / 5 + 2 / 3 + 0) / 4)
    assert meter.miou(absent="skip") == pytest.approx((2 / 5 + 3 / 5 + 2 / 3) / 3)
    assert meter.miou(exclude=[0, 3]) == pytest.approx((3 / 5 + 2 / 3) / 2)


def test_counts_accumulate_over_images():
    meter = ConfusionMeter(3)
    meter.update(np.array([1, 1]), np.array([1, 0]))
    meter.update(np.array([2, 1]), np.array([2, 1]))
    # class 1: tp 2, fp 1, fn 0 -> 2/3 summed over the set (not a mean of per-image IoUs)
    assert meter.iou()[1] == pytest.approx(2 / 3)
    assert iou_from_confusion(meter.confusion)[2] == 1.0
    assert np.isnan(mean_iou(np.array([np.nan]), exclude=[]))


def test_bad_labels_raise():
    meter = ConfusionMeter(3)
    with pytest.raises(ValueError, match="outside"):
        meter.update(np.array([3]), np.array([0]))
    with pytest.raises(ValueError, match="differ in shape"):
        meter.update(np.zeros((2, 2)), np.zeros((2, 3)))
