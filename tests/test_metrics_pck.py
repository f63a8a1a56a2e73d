"""PCK (metrics/pck.py) on hand-made cases with known answers, and against a plain transliteration of
CRW's eval_pck.py loops (written here from its description: per-frame box of the scored joints,
0.6 x its diagonal, frame 0 skipped, per-joint PCK, mean over joints)."""

from __future__ import annotations

import numpy as np
import pytest

from dense_retrieval.metrics.conventions import PCKConventions
from dense_retrieval.metrics.pck import normalised_errors, pck

# a 15-joint figure whose ground-truth box is 60 x 80 pixels in every frame: diagonal 100, normaliser 60
BOX = np.array([[0, 0], [60, 80]], dtype=np.float64)


def figure(frames: int = 4, joints: int = 15) -> np.ndarray:
    rng = np.random.default_rng(0)
    truth = rng.uniform(0, 1, (frames, joints, 2)) * BOX[1] + 100  # inside the box
    truth[:, 0] = BOX[0] + 100  # two joints on its corners: it spans exactly 60 x 80
    truth[:, 1] = BOX[1] + 100
    return truth


def crw_reference(predicted: list[np.ndarray], truth: list[np.ndarray], thresholds) -> np.ndarray:
    """CRW's procedure with plain loops: returns [len(thresholds), J + 1] PCK fractions (last column: mean)."""
    joints = truth[0].shape[1]
    distances = {j: [] for j in range(joints)}
    for pred, gt in zip(predicted, truth, strict=True):
        for k in range(gt.shape[0]):
            visible = [j for j in range(joints) if not np.isnan(pred[k, j, 0])]
            xs = [gt[k, j, 0] for j in visible]
            ys = [gt[k, j, 1] for j in visible]
            if not visible:
                continue
            scale = 0.6 * np.hypot(max(xs) - min(xs), max(ys) - min(ys))
            if k == 0:
                continue
            for j in visible:
                d = np.hypot(pred[k, j, 0] - gt[k, j, 0], pred[k, j, 1] - gt[k, j, 1])
                distances[j].append(d / scale if scale > 0 else np.inf)
    table = np.zeros((len(thresholds), joints + 1))
    for row, threshold in enumerate(thresholds):
        for j in range(joints):
            table[row, j] = sum(1 for d in distances[j] if d <= threshold) / len(distances[j])
        table[row, joints] = table[row, :joints].mean()
    return table


def test_a_known_shift_gives_a_known_pck():
    truth = figure()
    shifted = truth + [9.0, 0.0]  # 9 px against a normaliser of 0.6 x 100 = 60 px: error 0.15
    errors = normalised_errors(shifted, truth)
    assert np.isnan(errors[0]).all(), "frame 0 is given as input and not scored"
    np.testing.assert_allclose(errors[1:], 0.15)
    scores = pck([errors], (0.1, 0.2))
    assert scores.at(0.1) == 0.0 and scores.at(0.2) == 1.0
    assert list(scores.scored) == [3] * 15


def test_half_the_joints_off_gives_half_the_pck_and_the_mean_is_over_joints():
    truth = figure(frames=3)
    predicted = truth.copy()
    predicted[:, 8:] += [0.0, 24.0]  # 24 / 60 = 0.4 for joints 8..14, exact for 0..7
    scores = pck([normalised_errors(predicted, truth)], (0.1, 0.3, 0.5))
    np.testing.assert_allclose(scores.per_joint[0], [1.0] * 8 + [0.0] * 7)
    assert scores.at(0.1) == pytest.approx(8 / 15) and scores.at(0.3) == pytest.approx(8 / 15)
    assert scores.at(0.5) == 1.0


def test_a_threshold_is_inclusive():
    truth = figure(frames=2)
    predicted = truth + [12.0, 0.0]  # exactly 0.2
    errors = normalised_errors(predicted, truth)
    assert pck([errors], (0.2,)).at(0.2) == 1.0


def test_joints_without_a_prediction_are_left_out_of_the_box_and_the_score():
    truth = figure(frames=3)
    predicted = truth.copy()
    predicted[:, 1] = np.nan  # a corner of the box: the box shrinks, the joint is not scored
    errors = normalised_errors(predicted, truth)
    assert np.isnan(errors[:, 1]).all()
    scores = pck([errors], (0.1,))
    assert np.isnan(scores.per_joint[0, 1]) and scores.scored[1] == 0
    assert scores.at(0.1) == 1.0  # the mean runs over the 14 scored joints
    strict = normalised_errors(predicted, truth, PCKConventions(visible="all"))
    assert np.isinf(strict[1:, 1]).all()
    assert pck([strict], (0.1,)).at(0.1) == pytest.approx(14 / 15)


def test_a_zero_normaliser_scores_a_miss():
    truth = np.zeros((2, 3, 2))
    predicted = truth.copy()
    errors = normalised_errors(predicted, truth)  # every joint at one point: the box has no diagonal
    assert np.isinf(errors[1]).all()
    assert pck([errors], (0.5,)).at(0.5) == 0.0


def test_the_conventions_are_named_parameters():
    truth = figure(frames=2)
    predicted = truth + [30.0, 0.0]
    first = normalised_errors(predicted, truth, PCKConventions(skip_first=False))
    assert not np.isnan(first[0]).any()
    wider = normalised_errors(predicted, truth, PCKConventions(box_scale=1.0))
    np.testing.assert_allclose(wider[1], 0.3)
    with pytest.raises(ValueError):
        PCKConventions(thresholds=(0.0,))
    with pytest.raises(ValueError):
        normalised_errors(predicted[:, :3], truth)


def test_random_videos_match_the_plain_reference():
    rng = np.random.default_rng(7)
    predicted, truth = [], []
    for frames in (5, 9, 3):
        gt = rng.uniform(0, 320, (frames, 15, 2))
        pred = gt + rng.normal(0, 25, gt.shape)
        pred[rng.random((frames, 15)) < 0.1] = np.nan  # some joints never predicted
        predicted.append(pred)
        truth.append(gt)
    thresholds = (0.1, 0.2, 0.3, 0.4, 0.5)
    scores = pck([normalised_errors(p, t) for p, t in zip(predicted, truth, strict=True)], thresholds)
    expected = crw_reference(predicted, truth, thresholds)
    np.testing.assert_allclose(scores.per_joint, expected[:, :15], atol=1e-12)
    np.testing.assert_allclose(scores.mean, expected[:, 15], atol=1e-12)
