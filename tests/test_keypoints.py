"""Keypoints on the feature grid (propagation/keypoints.py): CRW's Gaussian encoding against a per-cell
reference written from its description, the top-3 read-out on hand-made maps, the frame/grid mapping."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from dense_retrieval.errors import InputError
from dense_retrieval.propagation.keypoints import frame_to_grid, gaussian_grid, grid_to_frame, read_out


def reference_channel(x: float, y: float, grid: tuple[int, int], sigma: float) -> np.ndarray:
    """One joint's channel, cell by cell: the window runs from trunc(p - 3 sigma) (inclusive) to
    trunc(p + 3 sigma + 1) (exclusive) on each axis; its peak is floor((6 sigma + 1) / 2) past the start."""
    height, width = grid
    out = np.zeros(grid)
    left, top = math.trunc(x - 3 * sigma), math.trunc(y - 3 * sigma)
    right, bottom = math.trunc(x + 3 * sigma + 1), math.trunc(y + 3 * sigma + 1)
    if left >= width or top >= height or right < 0 or bottom < 0:
        return out
    peak = math.floor((6 * sigma + 1) / 2)
    for row in range(max(top, 0), min(bottom, height)):
        for col in range(max(left, 0), min(right, width)):
            dy, dx = row - (top + peak), col - (left + peak)
            out[row, col] = math.exp(-(dx * dx + dy * dy) / (2 * sigma * sigma))
    return out


@pytest.mark.parametrize("sigma", [0.5, 1.0, 1.5])
def test_gaussian_channels_match_the_per_cell_reference(sigma):
    rng = np.random.default_rng(3)
    grid = (40, 30)
    points = np.concatenate(
        [rng.uniform(-3, 43, (30, 2)), [[0.2, 0.7], [1.4, 1.6], [-0.4, 5.0], [29.9, 39.9], [50.0, 5.0]]]
    )
    channels = gaussian_grid(points, grid, sigma).numpy()
    assert channels.shape == (len(points) + 1, 40, 30) and channels.dtype == np.float32
    for joint, (x, y) in enumerate(points, start=1):
        np.testing.assert_allclose(channels[joint], reference_channel(x, y, grid, sigma), atol=1e-6)
    expected_background = (channels[1:].sum(axis=0) == 0).astype(np.float32)
    np.testing.assert_array_equal(channels[0], expected_background)


def test_the_peak_is_the_nearest_cell_inside_and_an_outside_joint_is_empty():
    channels = gaussian_grid(np.array([[10.3, 7.6], [10.7, 7.4], [-9.0, 3.0]]), (20, 20), 0.5).numpy()
    assert np.unravel_index(channels[1].argmax(), (20, 20)) == (8, 10)  # (row, col) = round(y), round(x)
    assert np.unravel_index(channels[2].argmax(), (20, 20)) == (7, 11)
    assert channels[1].max() == 1.0 and channels[1][8, 11] == pytest.approx(math.exp(-2))
    assert channels[3].sum() == 0  # far outside the grid: no label, the joint is never predicted
    assert np.isnan(read_out(torch.from_numpy(channels))[2]).all()


def test_read_out_takes_the_value_weighted_mean_of_the_three_best_cells():
    soft = torch.zeros(4, 6, 8)
    soft[1, 2, 3] = 1.0  # one cell: exactly there
    soft[2, 1, 1], soft[2, 1, 3], soft[2, 4, 6] = 0.5, 0.4, 0.1  # three cells of different weight
    soft[2, 5, 7] = 0.05  # a fourth, ignored
    positions = read_out(soft)
    np.testing.assert_allclose(positions[0], [3.0, 2.0])
    expected = (np.array([1, 1]) * 0.5 + np.array([3, 1]) * 0.4 + np.array([6, 4]) * 0.1) / 1.0
    np.testing.assert_allclose(positions[1], expected)
    assert np.isnan(positions[2]).all()  # an empty channel has no position
    np.testing.assert_allclose(read_out(soft, topk=1)[1], [1.0, 1.0])


def test_encoding_then_reading_out_returns_the_nearest_cell():
    rng = np.random.default_rng(1)
    points = rng.uniform(2, 37, (15, 2))
    back = read_out(gaussian_grid(points, (40, 40), 0.5))
    assert np.abs(back - points).max() <= 0.5 + 0.15  # the peak cell, pulled a little by its neighbours


def test_frame_and_grid_coordinates_scale_without_a_half_cell_offset():
    points = np.array([[0.0, 0.0], [319.0, 239.0], [160.0, 120.0]])
    cells = frame_to_grid(points, (240, 320), (40, 40))
    np.testing.assert_allclose(cells[2], [20.0, 20.0])
    np.testing.assert_allclose(grid_to_frame(cells, (240, 320), (40, 40)), points)
    assert np.isnan(grid_to_frame(np.array([[np.nan, np.nan]]), (240, 320), (40, 40))).all()


def test_bad_settings_are_input_errors():
    with pytest.raises(InputError):
        gaussian_grid(np.zeros((3, 2)), (8, 8), sigma=0.0)
    with pytest.raises(InputError):
        gaussian_grid(np.zeros((3, 3)), (8, 8))
    with pytest.raises(InputError):
        read_out(torch.zeros(2, 4, 4), topk=0)
