import numpy as np
import pytest
import torch

from dense_retrieval.data.masks import DAVIS_PALETTE
from dense_retrieval.viz.charts import (
    class_iou_chart,
    figure_to_rgb,
    frame_scores_chart,
    jf_bar_chart,
    training_chart,
)
from dense_retrieval.viz.layout import caption, captioned_row, hstack, resize_to_height, tile
from dense_retrieval.viz.overlay import dim_outside, label_boundaries, masks_to_labels, outline_mask, overlay_labels
from dense_retrieval.viz.pca import feature_pca_rgb
from dense_retrieval.viz.strip import label_strip, overlay_frame, thumbnail


def test_overlay_colours_only_labelled_pixels_with_their_palette_colour():
    image = np.full((20, 30, 3), 100, np.uint8)
    labels = np.zeros((20, 30), np.uint8)
    labels[5:12, 5:12], labels[2:4, 20:28] = 1, 2
    out = overlay_labels(image, labels, alpha=0.5, outline=True)
    assert out.shape == image.shape and out.dtype == np.uint8
    assert (out[labels == 0] == 100).all()
    assert (out[8, 8] == np.round(0.5 * 100 + 0.5 * DAVIS_PALETTE[1])).all()  # interior: blended
    assert (out[5, 8] == DAVIS_PALETTE[1]).all()  # boundary: full colour
    assert (out[2, 24] == DAVIS_PALETTE[2]).all()


def test_outline_draws_on_the_mask_boundary_only():
    image = np.zeros((30, 30, 3), np.uint8)
    mask = np.zeros((30, 30), bool)
    mask[10:20, 10:20] = True
    out = outline_mask(image, mask, colour=(255, 0, 0), thickness=1)
    drawn = (out == (255, 0, 0)).all(axis=2)
    assert drawn.any() and (drawn <= label_boundaries(mask.astype(int))).all()
    assert not drawn[15, 15] and not drawn[0, 0]


def test_feature_pca_shows_spatial_structure():
    features = torch.zeros(16, 10, 12)
    features[0, :, :6] = 1.0  # left half differs from the right half along one direction
    features += 0.01 * torch.randn(16, 10, 12, generator=torch.Generator().manual_seed(0))
    rgb = feature_pca_rgb(features, size=(40, 48))
    assert rgb.shape == (40, 48, 3) and rgb.dtype == np.uint8
    left, right = rgb[:, :20].reshape(-1, 3).mean(0), rgb[:, 28:].reshape(-1, 3).mean(0)
    assert np.abs(left - right).max() > 100


def test_layout_helpers():
    a, b = np.zeros((10, 20, 3), np.uint8), np.zeros((30, 10, 3), np.uint8)
    assert resize_to_height(a, 20).shape == (20, 40, 3)
    assert caption(a, "x", height=12).shape == (22, 20, 3)
    assert tile([a, b, a], columns=2, gap=2).shape == (30 * 2 + 2, 20 * 2 + 2, 3)


def test_charts_render_bars_for_every_entry():
    jf = figure_to_rgb(jf_bar_chart({"a_1": (0.5, 0.6), "b_1": (0.9, 0.8), "c_1": (0.1, 0.2)}))
    iou = figure_to_rgb(class_iou_chart({"cat": 0.5, "car": float("nan"), "person": 0.8}))
    for rgb in (jf, iou):
        assert rgb.ndim == 3 and rgb.dtype == np.uint8 and rgb.shape[0] > 100
    blue = (np.abs(jf.astype(int) - (0x4C, 0x72, 0xB0)).sum(axis=2) < 10).sum()
    assert blue > 500  # the J bars are drawn


def _colour_pixels(rgb: np.ndarray, hex_colour: str, tolerance: int = 10) -> np.ndarray:
    """bool [H, W]: pixels within ``tolerance`` of ``hex_colour`` (summed over channels)."""
    target = np.array([int(hex_colour[i : i + 2], 16) for i in (1, 3, 5)])
    return np.abs(rgb.astype(int) - target).sum(axis=2) < tolerance


def test_masks_to_labels_draws_proposals_where_they_are_later_masks_on_top():
    masks = np.zeros((3, 20, 30), bool)
    masks[0, :10, :] = True
    masks[1, 5:15, 10:20] = True  # overlaps mask 0
    masks[2, 18:, 25:] = True
    labels = masks_to_labels(masks)
    assert labels.shape == (20, 30) and labels.dtype == np.uint8
    assert labels[0, 0] == 1 and labels[7, 15] == 2 and labels[19, 29] == 3 and labels[17, 0] == 0
    out = overlay_labels(np.full((20, 30, 3), 50, np.uint8), labels, outline=False)
    assert (out[~masks.any(0)] == 50).all() and (out[masks.any(0)] != 50).any(axis=1).all()


def test_masks_to_labels_wraps_past_254_and_never_uses_void():
    masks = np.zeros((300, 1, 300), bool)
    masks[np.arange(300), 0, np.arange(300)] = True
    labels = masks_to_labels(masks)[0]
    assert labels.max() == 254 and labels[254] == 1 and (labels > 0).all()
    with pytest.raises(ValueError):
        masks_to_labels(np.zeros((4, 4), bool))


def test_dim_outside_darkens_only_outside_the_mask():
    image = np.full((10, 10, 3), 200, np.uint8)
    mask = np.zeros((10, 10), bool)
    mask[2:5, 2:5] = True
    out = dim_outside(image, mask, factor=0.5)
    assert (out[mask] == 200).all() and (out[~mask] == 100).all()


def test_hstack_and_captioned_row_keep_widths_and_write_captions():
    a, b = np.zeros((10, 20, 3), np.uint8), np.zeros((10, 5, 3), np.uint8)
    row = hstack([a, b], gap=3)
    assert row.shape == (10, 28, 3) and (row[:, 20:23] == 255).all() and (row[:, 23:] == 0).all()
    with pytest.raises(ValueError):
        hstack([a, np.zeros((11, 5, 3), np.uint8)])
    row = captioned_row([np.zeros((50, 100, 3), np.uint8), np.zeros((100, 100, 3), np.uint8)], ["wide", "sq"], 40)
    assert row.shape == (40 + 18, 80 + 6 + 40, 3)
    band = row[40:, :80]
    assert (band < 128).any() and (band == 255).mean() > 0.5  # dark text on a white band
    with pytest.raises(ValueError):
        captioned_row([a], ["x", "y"])


def test_frame_scores_chart_draws_each_object_at_its_level():
    rgb = figure_to_rgb(frame_scores_chart({"high_1": np.full(30, 0.9), "low_1": np.full(30, 0.1)}))
    assert rgb.ndim == 3 and rgb.dtype == np.uint8
    high, low = _colour_pixels(rgb, "#1f77b4"), _colour_pixels(rgb, "#ff7f0e")  # matplotlib's first two colours
    assert high.sum() > 200 and low.sum() > 200
    assert np.median(np.nonzero(high)[0]) < np.median(np.nonzero(low)[0]) - 100  # 0.9 drawn well above 0.1


def test_class_iou_bars_are_as_long_as_their_iou():
    rgb = figure_to_rgb(class_iou_chart({"quarter": 0.25, "full": 1.0}))
    green = _colour_pixels(rgb, "#55a868")
    rows = np.nonzero(green.any(axis=1))[0]
    starts = [rows[0], rows[np.argmax(np.diff(rows) > 1) + 1]]  # first row of each bar (the legend sits lower)
    extents = [np.ptp(np.nonzero(green[top + 2])[0]) + 1 for top in starts]
    assert extents[1] == pytest.approx(4 * extents[0], rel=0.05)


def test_strip_thumbnails_draw_the_masks_where_they_are():
    frame = np.full((60, 90, 3), 80, np.uint8)
    labels = np.zeros((60, 90), np.uint8)
    labels[10:30, 50:80] = 1
    over = overlay_frame(frame, labels)
    assert over.shape == frame.shape and over.dtype == np.uint8
    assert (over[labels == 0] == 80).all() and (over[labels == 1] != 80).any(axis=1).all()
    small = thumbnail(frame, labels, height=30, text="frame 3")
    assert small.shape == (30 + 18, 45, 3)
    ys, xs = np.nonzero((small[:30] != 80).any(axis=2))  # the mask at half scale: rows 5-14, columns 25-39
    assert ys.min() >= 4 and ys.max() <= 15 and xs.min() >= 24 and xs.max() <= 40
    assert (small[30:] < 128).any()  # the caption is written
    strip = label_strip([small] * 5)  # up to 4 per row
    assert strip.shape == (2 * 48 + 4, 4 * 45 + 3 * 4, 3)
    assert (strip[52:, 49:] == 255).all()  # the second row holds one thumbnail, the rest is background
    assert label_strip([small] * 6, columns=3).shape == (2 * 48 + 4, 3 * 45 + 2 * 4, 3)


def test_training_chart_draws_the_losses_accuracy_and_jf_against_the_epoch():
    epochs = [
        {"epoch_done": e, "loss": 5 - e / 10, "info_nce": 5 - e / 10, "nn_loss": 0.0, "accuracy": 2.0 * e}
        for e in range(1, 31)
    ]
    evaluations = [{"epoch_done": 10, "J&F": 0.2}, {"epoch_done": 30, "J&F": 0.6}]
    with_jf = figure_to_rgb(training_chart(epochs, evaluations, queue_size=64))
    without = figure_to_rgb(training_chart(epochs, queue_size=64))
    assert with_jf.shape[1] > without.shape[1] * 1.3  # a third panel for J&F
    assert _colour_pixels(with_jf, "#55a868").sum() > 100  # the accuracy line
    red = _colour_pixels(with_jf, "#c44e52")
    assert red.sum() > 50 and np.nonzero(red)[1].min() > 2 * with_jf.shape[1] // 3  # J&F in the third panel
