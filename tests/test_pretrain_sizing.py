"""``--queue-size auto`` / ``--nn-topk auto``: the rules at their edges, explicit values, what a run records."""

from __future__ import annotations

import json
import math
from dataclasses import replace

import pytest

from dense_retrieval.pretrain.config import MOCO_V2_CPU, OURS, OURS_CPU
from dense_retrieval.pretrain.sizing import (
    NN_TOPK_FLOOR,
    QUEUE_FRACTION,
    auto_nn_topk,
    auto_queue_size,
    describe,
    queue_warning,
    size_for_data,
)
from tests.pretrain_helpers import TINY_RECIPE, write_photos


@pytest.mark.parametrize("images", [1, 2, 31])
def test_fewer_images_than_a_batch_get_one_batch(images):
    """The floor: one global batch (the trainer then refuses data smaller than a batch)."""
    assert auto_queue_size(images, 32, 2048) == 32
    sized, _ = size_for_data(OURS_CPU, images)
    assert sized.queue_size == 32 and sized.nn_topk == NN_TOPK_FLOOR


def test_the_queue_is_whole_global_batches_within_the_share_of_the_images():
    for images in range(32, 3000, 7):
        queue = auto_queue_size(images, 32, 2048)
        assert queue % 32 == 0 and 32 <= queue <= 2048
        assert queue <= max(32, QUEUE_FRACTION * images)
        assert queue < images or images <= 32  # smaller than the data whenever the data hold more than a batch


def test_the_presets_k_exactly_where_the_data_reach_it():
    needed = math.ceil(2048 / QUEUE_FRACTION)
    assert auto_queue_size(needed, 32, 2048) == 2048  # exactly the preset's K
    assert auto_queue_size(needed - 1, 32, 2048) == 2048 - 32  # one image fewer: one batch less
    assert auto_queue_size(10 * needed, 32, 2048) == 2048  # never more
    sized, record = size_for_data(OURS_CPU, needed)
    assert (sized.queue_size, sized.nn_topk) == (2048, 20)  # the preset as it was, neighbours included
    assert "the recipe's K" in record["queue_size"]["rule"]


def test_the_papers_recipe_on_coco_keeps_its_queue_and_neighbours():
    sized, _ = size_for_data(OURS, 118_287)  # COCO train2017
    assert (sized.queue_size, sized.nn_topk) == (65536, 20)


def test_neighbours_keep_the_recipes_share_of_the_queue_with_a_floor():
    assert auto_nn_topk(65536, 65536, 20) == 20
    assert auto_nn_topk(32768, 65536, 20) == 10
    assert auto_nn_topk(64, 65536, 20) == NN_TOPK_FLOOR
    assert auto_nn_topk(1, 65536, 20) <= 1  # never more neighbours than keys


def test_explicit_values_win_and_auto_follows_them():
    sized, record = size_for_data(replace(OURS_CPU, queue_size=1024), 117)
    assert sized.queue_size == 1024 and sized.nn_topk == 10  # 20 x 1024 / 2048
    assert record["queue_size"] == {"requested": 1024, "chosen": 1024, "rule": "given"}
    sized, record = size_for_data(replace(OURS_CPU, nn_topk=3), 117)
    assert (sized.queue_size, sized.nn_topk) == (64, 3) and record["nn_topk"]["rule"] == "given"
    assert describe(record) == f"queue auto -> 64: {record['queue_size']['rule']}; NN top-k 3 (given)"
    assert describe(size_for_data(MOCO_V2_CPU, 117)[1]).endswith("; no NN loss")


def test_the_queue_is_counted_in_global_batches_not_per_process_batches():
    """Under torchrun every step enqueues the gathered keys of all processes: the global batch."""
    sized, record = size_for_data(OURS, 5000)
    assert sized.queue_size == 2560 and record["global_batch"] == 256  # 0.554 x 5000 = 2770: 10 batches of 256
    sized.check_world(8)  # the size does not depend on the world size, only on the global batch


def test_the_warning_names_the_numbers_and_the_fix():
    explicit = replace(OURS_CPU, queue_size=2048, nn_topk=20)
    line = queue_warning(explicit, 117, size_for_data(explicit, 117)[1])
    assert "queue (2048 keys)" in line and "117 images" in line and "auto (here 64)" in line
    sized, record = size_for_data(OURS_CPU, 32)  # auto, data of exactly one batch: K = B = N
    line = queue_warning(sized, 32, record)
    assert "queue (32 keys)" in line and "1 global batch" in line and "--batch-size" in line


def test_a_run_prints_and_records_its_choice(tmp_path, run_cli):
    write_photos(tmp_path / "photos", 20)
    run = tmp_path / "run"
    recipe = [*TINY_RECIPE, "--queue-size", "auto", "--nn-topk", "auto"]  # the last value of an option wins
    r = run_cli("pretrain", tmp_path / "photos", "--out", run, *recipe, "--max-steps", "1", "--workers", "0")
    assert r.exit_code == 0, r
    assert f"queue auto -> 8: {float(QUEUE_FRACTION):.3f} x 20 images in whole global batches of 8" in r.stderr
    assert not [line for line in r.stderr.splitlines() if line.startswith("warning:")]
    record = json.loads((run / "config.json").read_text())
    assert record["config"]["queue_size"] == 8 and record["config"]["nn_topk"] == 1
    assert record["sizing"]["queue_size"]["requested"] == "auto" and record["sizing"]["images"] == 20


@pytest.mark.parametrize("value", ["0", "-3", "lots", "2.5"])
def test_bad_sizes_are_one_line_and_exit_2(tmp_path, run_cli, value):
    write_photos(tmp_path / "photos", 8)
    for option in ("--queue-size", "--nn-topk"):
        r = run_cli("pretrain", tmp_path / "photos", "--out", tmp_path / "run", *TINY_RECIPE, option, value)
        assert r.exit_code == 2 and option in r.stderr and "auto" in r.stderr, r
        assert not (tmp_path / "run").exists()


def test_the_examples_in_the_docstrings_hold():
    import doctest

    from dense_retrieval.pretrain import sizing

    assert doctest.testmod(sizing).failed == 0
