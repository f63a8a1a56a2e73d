"""Constrained multi-crop: sizes, scales, aspect ratios, the overlap rule, the counted fallback."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch
from PIL import Image

from dense_retrieval.errors import InputError
from dense_retrieval.pretrain.config import OURS, MultiCropConfig
from dense_retrieval.pretrain.crops import MultiCrop, intersection_area, overlaps_enough

IMAGE = Image.fromarray(np.random.default_rng(0).integers(0, 255, (300, 420, 3), dtype=np.uint8))
DRAWS = 200


def _draw(config: MultiCropConfig, draws: int = DRAWS, seed: int = 0):
    torch.manual_seed(seed)
    cropper = MultiCrop(config)
    return [cropper.boxes(IMAGE) for _ in range(draws)]


def test_crop_sizes_follow_the_recipe():
    crops = MultiCrop(OURS.crops)(IMAGE)
    assert [im.size for im in crops.images] == [(160, 160)] * 2 + [(96, 96)] * 4
    assert len(crops.boxes) == 6 and len(crops.constrained) == 6


def test_crop_areas_and_aspect_ratios_stay_in_their_ranges():
    config = OURS.crops
    area = IMAGE.width * IMAGE.height
    for boxes, _, _ in _draw(config):
        for index, (_, _, height, width) in enumerate(boxes):
            low, high = config.large_scale if index < config.large_crops else config.small_scale
            # w and h are rounded to whole pixels: allow one pixel on each side
            assert (np.sqrt(low * area) - 1.5) ** 2 <= height * width <= (np.sqrt(high * area) + 1.5) ** 2
            assert config.ratio[0] - 0.02 <= width / height <= config.ratio[1] + 0.02
            assert 0 < height <= IMAGE.height and 0 < width <= IMAGE.width


def test_every_constrained_crop_that_is_not_a_fallback_overlaps_the_key():
    config = OURS.crops
    fallbacks_total = satisfied_total = 0
    for boxes, fallbacks, flags in _draw(config):
        key = boxes[config.key_index]
        small = list(zip(boxes[config.large_crops :], flags[config.large_crops :], strict=True))
        for box, satisfied in small:
            if satisfied:
                assert overlaps_enough(box, key, config.min_overlap)
                assert intersection_area(box, key) >= 0.1 * box[2] * box[3]
        assert fallbacks == sum(not satisfied for _, satisfied in small)
        fallbacks_total += fallbacks
        satisfied_total += sum(satisfied for _, satisfied in small)
    assert satisfied_total > 0.8 * DRAWS * config.small_crops  # the rule is usually met within 10 tries
    assert fallbacks_total < satisfied_total


def test_an_unsatisfiable_rule_falls_back_and_counts_every_crop():
    # a key of 1% of the image cannot hold all of a small crop of 5-14%: 10 tries fail, then the fallback
    config = MultiCropConfig(large_scale=(0.01, 0.01), min_overlap=1.0)
    for boxes, fallbacks, flags in _draw(config, draws=20):
        assert fallbacks == config.small_crops
        assert not any(flags)
        assert len(boxes) == config.total


def test_unconstrained_crops_count_no_fallbacks():
    config = replace(OURS.crops, constrained=False)
    assert all(fallbacks == 0 for _, fallbacks, _ in _draw(config, draws=20))


def test_intersection_area_equals_a_pixel_count():
    rng = np.random.default_rng(1)
    for _ in range(50):
        a = tuple(int(v) for v in (*rng.integers(0, 30, 2), *rng.integers(1, 30, 2)))
        b = tuple(int(v) for v in (*rng.integers(0, 30, 2), *rng.integers(1, 30, 2)))
        grid_a = np.zeros((70, 70), bool)
        grid_b = np.zeros((70, 70), bool)
        grid_a[a[0] : a[0] + a[2], a[1] : a[1] + a[3]] = True
        grid_b[b[0] : b[0] + b[2], b[1] : b[1] + b[3]] = True
        assert intersection_area(a, b) == int((grid_a & grid_b).sum())


def test_crops_are_a_function_of_the_seed():
    first = _draw(OURS.crops, draws=3, seed=5)
    assert _draw(OURS.crops, draws=3, seed=5) == first
    assert _draw(OURS.crops, draws=3, seed=6) != first


@pytest.mark.parametrize(
    "bad",
    [{"large_crops": 1}, {"small_scale": (0.2, 0.1)}, {"large_scale": (0.0, 1.0)}, {"ratio": (2.0, 1.0)}],
)
def test_bad_crop_settings_are_input_errors(bad):
    with pytest.raises(InputError):
        MultiCropConfig(**bad)
