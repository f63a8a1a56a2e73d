"""Boundary F: seg2bmap, the matching disk and F, hand-checked on tiny masks and against vos-benchmark."""

import numpy as np
import pytest
from skimage.morphology import disk as skimage_disk
from vos_benchmark.utils import _seg2bmap as vos_seg2bmap

from dense_retrieval.metrics.boundary import dilation_radius, disk, f_measure, seg2bmap
from tests.scoring_data import vos_per_frame


def test_seg2bmap_single_pixel_is_four_pixels_towards_the_origin():
    mask = np.zeros((5, 5), bool)
    mask[2, 2] = True
    expected = np.zeros((5, 5), bool)
    expected[1:3, 1:3] = True  # the pixel and its north, west and north-west neighbours
    np.testing.assert_array_equal(seg2bmap(mask), expected)


def test_seg2bmap_image_border_rules():
    bottom_row = np.zeros((4, 4), bool)
    bottom_row[3] = True
    expected = np.zeros((4, 4), bool)
    expected[2] = True  # the row above; the last row itself compares only east neighbours
    np.testing.assert_array_equal(seg2bmap(bottom_row), expected)
    assert not seg2bmap(np.ones((4, 4), bool)).any()  # a mask filling the image has no boundary
    right_col = np.zeros((3, 3), bool)
    right_col[:, 2] = True
    np.testing.assert_array_equal(seg2bmap(right_col), [[0, 1, 0], [0, 1, 0], [0, 1, 0]])


@pytest.mark.parametrize("seed", range(6))
def test_seg2bmap_equals_reference(seed):
    rng = np.random.default_rng(seed)
    shape = tuple(rng.integers(1, 30, size=2))
    mask = rng.random(shape) < 0.4
    np.testing.assert_array_equal(seg2bmap(mask), vos_seg2bmap(mask))


@pytest.mark.parametrize("radius", [1.0, 2.0, 5.0, 8.0, 9.0, 10.0, 2.5])
def test_disk_equals_skimage(radius):
    np.testing.assert_array_equal(disk(radius), skimage_disk(radius))
    assert not disk(radius).flags.writeable  # cached: must not be changed by callers


@pytest.mark.parametrize(
    ("shape", "bound_th", "radius"),
    [
        ((480, 854), 0.008, 8.0),
        ((480, 910), 0.008, 9.0),
        ((480, 1152), 0.008, 10.0),
        ((6, 6), 0.008, 1.0),
        ((480, 854), 3, 3.0),
        ((480, 854), 2.5, 2.5),
    ],
)
def test_dilation_radius(shape, bound_th, radius):
    assert dilation_radius(shape, bound_th) == radius


def test_hand_checked_f():
    empty = np.zeros((6, 6), bool)
    pixel = empty.copy()
    pixel[2, 2] = True
    shifted = empty.copy()
    shifted[2, 3] = True
    assert f_measure(empty, empty) == 1.0  # both boundaries empty
    assert f_measure(pixel, empty) == 0.0  # empty prediction
    assert f_measure(empty, pixel) == 0.0  # empty ground truth
    # one pixel off: J = 0, but every boundary pixel has a match within the radius-1 cross -> F = 1
    assert f_measure(pixel, shifted) == 1.0
    assert f_measure(pixel, shifted, bound_th=0.5) == 1.0
    far = empty.copy()
    far[5, 0] = True
    # 4 boundary pixels vs 2 ((4,0), (4,1)): no match within radius 1 -> precision = recall = 0 -> F = 0
    assert f_measure(pixel, far) == 0.0


def test_touching_the_border():
    bottom = np.zeros((4, 4), bool)
    bottom[3] = True
    full = np.ones((4, 4), bool)
    assert f_measure(bottom, bottom) == 1.0
    assert f_measure(bottom, full) == 0.0  # the full mask has no boundary at all
    assert f_measure(full, full) == 1.0
    two_rows = np.zeros((4, 4), bool)
    two_rows[2:] = True  # boundary row 1 vs row 2: one pixel apart, radius 1 -> all matched
    assert f_measure(bottom, two_rows) == 1.0


def test_partial_match_by_hand():
    """GT boundary 4 px (single pixel at (2,2)); prediction: that pixel plus one far away at (7,7)."""
    gt = np.zeros((10, 10), bool)
    gt[2, 2] = True
    pred = gt.copy()
    pred[7, 7] = True  # adds 4 unmatched boundary pixels (radius ceil(0.008 * 14.1) = 1)
    precision, recall = 4 / 8, 1.0
    assert f_measure(gt, pred) == pytest.approx(2 * precision * recall / (precision + recall))


def test_void_pixels_are_removed_before_boundaries():
    gt = np.zeros((6, 6), bool)
    gt[1:5, 1:5] = True
    pred = gt.copy()
    pred[1:5, 3:5] = False  # misses the two right columns ...
    void = np.zeros((6, 6), bool)
    void[:, 3:] = True  # ... which are void
    assert f_measure(gt, pred, void) == 1.0
    assert f_measure(gt, pred) < 1.0  # 2 px off with a radius of 1


def test_tiny_masks_equal_vos_benchmark():
    """Empty prediction, empty ground truth, one-pixel objects, objects on the border: frame by frame."""
    h, w = 9, 12
    gts, preds = [], []

    def frame(gt_pixels, pred_pixels):
        gt, pred = np.zeros((h, w), np.uint8), np.zeros((h, w), np.uint8)
        for y, x in gt_pixels:
            gt[y, x] = 1
        for y, x in pred_pixels:
            pred[y, x] = 1
        gts.append(gt)
        preds.append(pred)

    frame([(4, 4)], [(4, 4)])  # one pixel, exact
    frame([(4, 4)], [])  # empty prediction
    frame([], [(2, 3)])  # empty ground truth
    frame([], [])  # both empty
    frame([(4, 4)], [(4, 6)])  # one pixel, two off
    frame([(8, x) for x in range(w)], [(8, x) for x in range(3, w)])  # bottom border row
    frame([(y, 11) for y in range(h)], [(y, 10) for y in range(h)])  # right border column
    frame([(0, 0), (0, 1), (1, 0)], [(0, 0)])  # top-left corner
    frame([(y, x) for y in range(h) for x in range(w)], [(y, x) for y in range(h) for x in range(w - 1)])
    vos_j, vos_f = vos_per_frame(gts, preds)
    ours = [f_measure(g == 1, p == 1) for g, p in zip(gts, preds, strict=True)]
    np.testing.assert_allclose(ours, vos_f[1], atol=1e-6)
    assert ours[:4] == [1.0, 0.0, 0.0, 1.0]


def test_shape_mismatch():
    with pytest.raises(ValueError, match="shape"):
        f_measure(np.zeros((3, 3)), np.zeros((3, 4)))
