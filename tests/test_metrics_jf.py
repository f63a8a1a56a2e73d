"""Whole-frame J&F (all objects at once) against the per-object definitions and vos-benchmark."""

import numpy as np
import pytest

from dense_retrieval.metrics.boundary import f_measure
from dense_retrieval.metrics.jf import JFConventions, global_scores, object_scores, score_frame
from dense_retrieval.metrics.region import jaccard
from tests.scoring_data import moving_objects, perturb, vos_per_frame


def _random_labels(rng, shape, num_ids):
    labels = np.zeros(shape, np.uint8)
    for k in range(1, num_ids + 1):
        y, x = rng.integers(0, shape[0]), rng.integers(0, shape[1])
        labels[y : y + rng.integers(1, shape[0]), x : x + rng.integers(1, shape[1])] = k
    return labels


@pytest.mark.parametrize("seed", range(12))
def test_cropped_scores_equal_full_image_definitions(seed):
    """Per-object crops give exactly the full-image J and F, with void, ids above K and absent objects."""
    rng = np.random.default_rng(seed)
    shape = (int(rng.integers(2, 60)), int(rng.integers(2, 90)))
    gt = _random_labels(rng, shape, 4)  # id 4 is above K = 3: never scored
    if seed % 2:
        gt[rng.integers(0, shape[0]) :, ::3] = 255
    pred = np.roll(_random_labels(rng, shape, 3), 1, axis=seed % 2)
    bound_th = [0.008, 0.1, 2, 3.0][seed % 4]
    for void in ("background", "ignore"):
        j, f = score_frame(gt, pred, 3, bound_th=bound_th, void=void)
        void_mask = (gt == 255) if void == "ignore" else None
        for k in range(1, 4):
            assert j[k - 1] == jaccard(gt == k, pred == k, void_mask)
            assert f[k - 1] == f_measure(gt == k, pred == k, void_mask, bound_th=bound_th)


@pytest.mark.parametrize("extra", [None, 2, 255])
@pytest.mark.parametrize("seed", range(4))
def test_single_object_frames_equal_full_image_definitions(seed, extra):
    """One object as 0/1 label maps (the label maps are the masks), or with other ids / void around."""
    rng = np.random.default_rng(seed)
    shape = (int(rng.integers(2, 50)), int(rng.integers(2, 70)))
    gt = _random_labels(rng, shape, 1)
    pred = np.roll(_random_labels(rng, shape, 1), 2, axis=0) if seed else np.zeros(shape, np.uint8)
    if extra is not None:
        gt[: shape[0] // 3, : shape[1] // 2] = extra
    j, f = score_frame(gt, pred, 1)
    assert j[0] == jaccard(gt == 1, pred == 1) and f[0] == f_measure(gt == 1, pred == 1)
    np.testing.assert_array_equal(score_frame(gt.astype(np.int64), pred.astype(np.int32), 1), (j, f))


@pytest.mark.parametrize(("height", "width", "num_objects"), [(48, 85, 3), (480, 910, 2)])
def test_sequence_equals_vos_benchmark(height, width, num_objects):
    gts = moving_objects(8, height, width, num_objects)
    preds = [perturb(g, t) for t, g in enumerate(gts)]
    ours = np.array([score_frame(g, p, num_objects) for g, p in zip(gts, preds, strict=True)])  # [T, 2, K]
    vos_j, vos_f = vos_per_frame(gts, preds)
    assert sorted(vos_j) == list(range(1, num_objects + 1))
    for k in range(1, num_objects + 1):
        np.testing.assert_allclose(ours[:, 0, k - 1], vos_j[k], atol=1e-6)
        np.testing.assert_allclose(ours[:, 1, k - 1], vos_f[k], atol=1e-6)
    assert ours[:, 1].min() < 1.0 and ours[:, 0].min() < 0.9  # the perturbations do cost something


def test_differences_from_vos_benchmark_follow_the_official_definition():
    """Where vos-benchmark departs from davis2017-evaluation, we follow the official one.

    1. An object absent from both annotation and prediction in a frame scores J = F = 1 (official);
       vos-benchmark only starts scoring an object at the frame where it first appears.
    2. Annotation ids above K (objects that appear after the first frame) are not scored (official);
       vos-benchmark adds them as objects.
    3. Void (255) is not an object (official); vos-benchmark scores 255 as object 255.
    """
    gts = moving_objects(6, 40, 60, 2)
    preds = [perturb(g, t) for t, g in enumerate(gts)]
    for t in (0, 1):  # object 2 enters at the third frame
        gts[t][gts[t] == 2] = 0
        preds[t][preds[t] == 2] = 0
    for t in (3, 4, 5):
        gts[t][:5, :5] = 3  # a late object: not counted by the first-frame rule
        gts[t][-3:, :] = 255  # void
    ours = np.array([score_frame(g, p, 2) for g, p in zip(gts, preds, strict=True)])
    vos_j, vos_f = vos_per_frame(gts, preds)
    assert (ours[:2, :, 1] == 1.0).all()  # 1: absent from both -> 1
    assert len(vos_j[2]) == 4  # vos-benchmark skipped those two frames ...
    np.testing.assert_allclose(ours[2:, 0, 1], vos_j[2], atol=1e-6)  # ... and agrees on the rest
    np.testing.assert_allclose(ours[2:, 1, 1], vos_f[2], atol=1e-6)
    np.testing.assert_allclose(ours[:, 0, 0], vos_j[1], atol=1e-6)
    assert 3 in vos_j and 255 in vos_j  # 2 and 3: extra objects for vos-benchmark, none for us
    assert ours.shape[-1] == 2


def test_void_modes_differ_only_on_void_pixels():
    gt = np.zeros((20, 20), np.uint8)
    gt[5:15, 5:15] = 1
    gt[5:15, 15:18] = 255
    pred = np.zeros_like(gt)
    pred[5:15, 5:18] = 1  # covers the object and the void strip
    j_bg, _ = score_frame(gt, pred, 1)
    j_ignore, f_ignore = score_frame(gt, pred, 1, void="ignore")
    assert j_bg[0] == pytest.approx(100 / 130)
    assert j_ignore[0] == 1.0 and f_ignore[0] == 1.0


def test_aggregation_is_over_objects_not_sequences():
    a = object_scores("a", np.array([[1.0, 1.0, 1.0, 1.0]]), np.array([[1.0, 1.0, 1.0, 1.0]]))
    b = object_scores("b", np.array([[0.0] * 4, [0.4] * 4]), np.array([[0.2] * 4, [0.6] * 4]))
    objects = a + b
    assert [o.name for o in objects] == ["a_1", "b_1", "b_2"]
    table = global_scores(objects)
    assert list(table) == ["J&F-Mean", "J-Mean", "J-Recall", "J-Decay", "F-Mean", "F-Recall", "F-Decay"]
    assert table["J-Mean"] == pytest.approx(1.4 / 3)
    assert table["F-Mean"] == pytest.approx(1.8 / 3)
    assert table["J&F-Mean"] == pytest.approx((1.4 / 3 + 1.8 / 3) / 2)
    assert table["J-Recall"] == pytest.approx(1 / 3) and table["F-Recall"] == pytest.approx(2 / 3)
    assert table["J-Decay"] == 0.0


def test_conventions_are_checked():
    assert JFConventions().to_dict() == {
        "skip_first_and_last": True,
        "bound_th": 0.008,
        "void": "background",
        "recall_threshold": 0.5,
        "decay_bins": 4,
    }
    with pytest.raises(ValueError, match="void"):
        JFConventions(void="skip")
    with pytest.raises(ValueError, match="void"):
        score_frame(np.zeros((2, 2), np.uint8), np.zeros((2, 2), np.uint8), 1, void="nope")
