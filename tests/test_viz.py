import numpy as np
import torch

from dense_retrieval.data.masks import DAVIS_PALETTE
from dense_retrieval.viz.charts import class_iou_chart, figure_to_rgb, jf_bar_chart
from dense_retrieval.viz.layout import caption, resize_to_height, tile
from dense_retrieval.viz.overlay import label_boundaries, outline_mask, overlay_labels
from dense_retrieval.viz.pca import feature_pca_rgb


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
