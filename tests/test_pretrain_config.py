"""Pretraining settings: the presets are the published recipes, bad values are named errors."""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import replace

import pytest

from dense_retrieval.errors import InputError
from dense_retrieval.pretrain.config import MOCO_V2, OURS, OURS_CPU, PRESETS, PretrainConfig, get_preset
from tests.conftest import PROJECT_ROOT


def test_ours_is_the_papers_recipe():
    crops = OURS.crops
    assert (crops.large_crops, crops.large_size, crops.large_scale) == (2, 160, (0.2, 1.0))
    assert (crops.small_crops, crops.small_size, crops.small_scale) == (4, 96, (0.05, 0.14))
    assert crops.constrained and crops.min_overlap == 0.1 and crops.tries == 10 and crops.key_index == 1
    assert OURS.auto_augment_crops == (0, 2, 3, 4, 5)
    assert (OURS.recipe_nn_topk, OURS.nn_weight, OURS.temperature, OURS.key_momentum) == (20, 0.4, 0.2, 0.995)
    assert (OURS.lr, OURS.batch_size, OURS.recipe_queue_size, OURS.arch, OURS.dim) == (0.3, 256, 65536, "resnet50", 128)
    assert OURS.queue_size == OURS.nn_topk == "auto"
    assert OURS.queries_per_sample == 5 and OURS.scaled_lr() == 0.3


def test_moco_v2_is_the_papers_baseline():
    assert (MOCO_V2.crops.large_crops, MOCO_V2.crops.large_size, MOCO_V2.crops.small_crops) == (2, 224, 0)
    assert not MOCO_V2.crops.constrained and MOCO_V2.auto_augment_crops == () and MOCO_V2.nn_weight == 0
    assert (MOCO_V2.key_momentum, MOCO_V2.temperature, MOCO_V2.queries_per_sample) == (0.999, 0.2, 1)


def test_cpu_preset_keeps_the_recipes_shape():
    crops = OURS_CPU.crops
    assert (crops.large_crops, crops.small_crops, crops.constrained) == (2, 4, True)
    assert (crops.large_scale, crops.small_scale) == (OURS.crops.large_scale, OURS.crops.small_scale)
    assert OURS_CPU.auto_augment_crops == OURS.auto_augment_crops and OURS_CPU.nn_weight == 0.4


def test_batch_norm_groups_and_world_size():
    assert OURS_CPU.resolved_bn_splits(1) == 2 and OURS_CPU.resolved_bn_splits(4) == 1
    assert replace(OURS_CPU, bn_splits=4).resolved_bn_splits(2) == 4
    OURS.check_world(8)
    with pytest.raises(InputError, match="does not split into 3 process"):
        OURS.check_world(3)


@pytest.mark.parametrize(
    "bad",
    [
        {"arch": "vit"},
        {"auto_augment_crops": (6,)},
        {"queue_size": 0},
        {"queue_size": "big"},
        {"queue_size": 2.5},
        {"nn_topk": "most"},
        {"nn_topk": 30, "queue_size": 20},
        {"recipe_nn_topk": 30, "recipe_queue_size": 20},
        {"key_momentum": 1.0},
        {"temperature": 0.0},
        {"nn_weight": -1.0},
    ],
)
def test_bad_values_are_input_errors(bad):
    with pytest.raises(InputError):
        replace(OURS, **bad)


def test_configs_round_trip_through_json():
    for config in PRESETS.values():
        assert PretrainConfig.from_dict(json.loads(json.dumps(config.to_dict()))) == config
    with pytest.raises(InputError, match="unknown pretraining preset"):
        get_preset("byol")


def test_the_config_module_does_not_import_torch():
    code = "import sys, dense_retrieval.pretrain, dense_retrieval.cli.pretrain_cmd; print('torch' in sys.modules)"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=PROJECT_ROOT)
    assert proc.stdout.strip() == "False", proc.stderr
