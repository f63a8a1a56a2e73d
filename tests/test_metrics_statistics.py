"""Mean / Recall / Decay, hand-checked; Decay stays right past 255 frames (the reference's uint8 wraps)."""

import numpy as np
import pytest

from dense_retrieval.metrics.statistics import decay, decay_bin_edges, mean, recall, summarize


def test_mean_and_recall_by_hand():
    values = np.array([1.0, 0.5, 0.75, 0.0])
    assert mean(values) == pytest.approx(0.5625)
    assert recall(values) == 0.5  # strictly above 0.5: 1.0 and 0.75
    assert recall(values, threshold=0.7) == 0.5
    assert mean(np.array([np.nan, 1.0, 0.0])) == 0.5  # NaN frames are ignored by the mean ...
    assert recall(np.array([np.nan, 1.0])) == 0.5  # ... and count as misses in Recall


def test_decay_bins_by_hand():
    # 10 frames: edges round(linspace(1, 10, 5)) - 1 = [0, 2, 5, 7, 9]; bins share their edge frame
    np.testing.assert_array_equal(decay_bin_edges(10), [0, 2, 5, 7, 9])
    values = np.arange(10, dtype=float)
    assert decay(values) == pytest.approx(np.mean([0, 1, 2]) - np.mean([7, 8, 9]))
    assert decay(np.ones(1)) == 0.0
    assert np.isnan(decay(np.array([])))


def test_decay_on_300_frames_is_finite_and_correct():
    """A linear drop from 1 to 0 over 300 frames.

    Edges: round(linspace(1, 300, 5)) - 1 = [0, 75, 150, 224, 299]; first bin frames 0..75, last bin
    224..299; with v_t = 1 - t / 299 the decay is (224 + 299) / 2 / 299 - 75 / 2 / 299 = 224 / 299.
    The reference stores these edges as uint8: 299 wraps to 43, the last bin is empty, Decay is NaN.
    """
    values = 1 - np.arange(300) / 299
    np.testing.assert_array_equal(decay_bin_edges(300), [0, 75, 150, 224, 299])
    result = summarize(values)
    assert np.isfinite(result.decay)
    assert result.decay == pytest.approx(224 / 299, abs=1e-12)
    assert result.mean == pytest.approx(0.5)
    assert result.recall == pytest.approx(150 / 300)
    assert decay_bin_edges(300).astype(np.uint8)[-1] == 43  # what the reference would have used


def test_edges_match_the_reference_up_to_255_frames():
    for n in (1, 2, 3, 4, 5, 17, 68, 104, 255):
        edges = decay_bin_edges(n)
        assert (edges >= 0).all() and (edges < n).all() and (np.diff(edges) >= 0).all()
        assert edges[-1] == n - 1


def test_rejects_2d():
    with pytest.raises(ValueError, match="1-D"):
        mean(np.zeros((2, 2)))
