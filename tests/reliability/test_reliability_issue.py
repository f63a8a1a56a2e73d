"""One test per numbered finding of issue 10, each the command that failed, now expected to be safe.

Where a finding is one of the suite's cases, the test runs that case (same check); the rest build their
own scene. Numbers follow the issue: 1 deletion outside --out ... 12 one line and exit 2.
"""

from __future__ import annotations

import json
import shutil
import signal
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tests.reliability import hostile
from tests.reliability.cases import check_case
from tests.reliability.harness import (
    assert_one_line_error,
    can_drop_capabilities,
    error_lines,
    finish_child,
    make_read_only,
    make_writable,
    run_child,
    run_inprocess,
    snapshot,
    snapshot_diff,
)
from tests.reliability.points import ADD_POINTS, DAVIS_POINTS, start_at_point
from tests.reliability.test_reliability_suite import ALL_CASES

CASES = {c.id: c for c in ALL_CASES}


def run_cases(ids, data, pristine, tmp_path):
    for number, case_id in enumerate(ids):
        folder = tmp_path / f"case{number}"
        folder.mkdir()
        check_case(CASES[case_id], data, pristine, folder)


def ok(outcome) -> dict:
    assert outcome.exit_code == 0, outcome
    return json.loads(outcome.stdout) if outcome.stdout.lstrip().startswith("{") else {}


def segments(index: Path) -> int:
    return ok(run_inprocess(["index", "info", index, "--json"]))["segments"]


# ------------------------------------------------------------------------------------------ 1
def test_01_overwrite_never_deletes_outside_out(data, tmp_path):
    """A propagation.json naming `../victim` or an absolute path is refused, and nothing is deleted."""
    results = tmp_path / "res"
    shutil.copytree(data.results, results)
    victims = [tmp_path / "victim", tmp_path / "elsewhere" / "victim"]
    for victim in victims:
        victim.mkdir(parents=True)
        (victim / "precious.txt").write_text("not the toolkit's")
    record = results / "propagation.json"
    document = json.loads(record.read_text())
    entry = document["sequences"][data.sequence]
    document["sequences"]["../victim"] = entry
    document["sequences"][str(victims[1])] = entry
    record.write_text(json.dumps(document))
    before = snapshot(tmp_path)
    outcome = run_inprocess(
        ["davis", "propagate", "--davis-root", data.davis, "--out", results, "--preset", "dino", "--overwrite"]
    )
    assert_one_line_error(outcome, contains=["propagation.json"])
    assert snapshot_diff(before, snapshot(tmp_path)) == []


# ------------------------------------------------------------------------------------------ 2
def test_02_failed_build_never_replaces_a_good_index(data, pristine, tmp_path):
    run_cases(["build-no-segments-over-good-index", "build-no-segments-fresh"], data, pristine, tmp_path)
    good = tmp_path / "good"
    shutil.copytree(data.index, good)
    outcome = run_inprocess(["index", "build", data.images, "--out", good, "--overwrite", "--min-area", "999999"])
    assert_one_line_error(outcome, contains=["no segments"])
    assert segments(good) == segments(data.index) == 30


# ------------------------------------------------------------------------------------------ 3
@pytest.mark.slow
def test_03_add_and_build_on_one_index_never_lose_data(data, tmp_path):
    """An add holds the index for its whole run: a build over it is refused, and the add's segments stay."""
    index = tmp_path / "idx"
    shutil.copytree(data.index, index)
    point = {"audit": "open", "match": "*/JPEGImages/*", "occurrence": 2}
    add, hit = start_at_point(["index", "add", index, data.images, "--json"], point, "STOP", tmp_path)
    try:
        _wait_for(hit, add)
        build = run_child(["index", "build", data.images, "--out", index, "--overwrite", "--json"])
        assert_one_line_error(build, contains=["being written"])
    finally:
        add.send_signal(signal.SIGCONT)
    added = finish_child(add)
    assert added.exit_code == 0, added
    assert segments(index) == json.loads(added.stdout)["segments"]


@pytest.mark.slow
def test_03_add_during_a_build_over_the_index_is_refused(data, tmp_path):
    index = tmp_path / "idx"
    shutil.copytree(data.index, index)
    point = {"audit": "open", "match": "*/JPEGImages/*", "occurrence": 2}
    args = ["index", "build", data.images, "--out", index, "--overwrite", "--clusters", "3", "--json"]
    build, hit = start_at_point(args, point, "STOP", tmp_path)
    try:
        _wait_for(hit, build)
        add = run_child(["index", "add", index, data.images, "--json"])
        assert_one_line_error(add, contains=["being written"])
    finally:
        build.send_signal(signal.SIGCONT)
    built = finish_child(build)
    assert built.exit_code == 0, built
    assert segments(index) == json.loads(built.stdout)["segments"] != 30


def _wait_for(hit: Path, process, timeout: float = 120) -> None:
    import time

    deadline = time.monotonic() + timeout
    while not hit.exists():
        assert process.poll() is None, finish_child(process)
        assert time.monotonic() < deadline, "the command never reached its point"
        time.sleep(0.02)


# ------------------------------------------------------------------------------------------ 4
@pytest.mark.parametrize(
    "case_id",
    [
        "video-out-contains-inputs",
        "video-overlay-is-mask",
        "video-overlay-is-frame",
        "build-out-is-images",
        "propagate-out-is-annotations",
    ],
)
def test_04_overwrite_never_destroys_the_commands_inputs(case_id, data, pristine, tmp_path):
    run_cases([case_id], data, pristine, tmp_path)


# ------------------------------------------------------------------------------------------ 5
@pytest.mark.slow
def test_05_huge_polygon_coordinates_are_refused_not_a_crash(data, pristine, tmp_path):
    """pycocotools segfaults on coordinates past ~1e10: they are checked before it sees them."""
    run_cases(["build-coco-polygon-1e30", "build-coco-polygon-1e11", "add-coco-polygon-1e30"], data, pristine, tmp_path)


# ------------------------------------------------------------------------------------------ 6
@pytest.mark.slow
def test_06_interrupt_after_the_commit_reports_success(data, tmp_path):
    """Ctrl-C once the add has committed: the add is complete, says so, and a rerun adds nothing."""
    index = tmp_path / "idx"
    shutil.copytree(data.index, index)
    extra = tmp_path / "extra"
    extra.mkdir()
    for path in sorted(data.images.iterdir())[:2]:
        shutil.copy(path, extra / f"copy-{path.name}")
    args = ["index", "add", index, extra, "--json", "--clusters", "3"]
    process, hit = start_at_point(args, ADD_POINTS["committed"], "INT", tmp_path)
    report = ok(finish_child(process))
    assert hit.exists(), "the add never reached its commit"
    assert report["added"] > 0 and segments(index) == 30 + report["added"] == report["segments"]
    again = ok(run_inprocess(["index", "add", index, extra, "--json", "--clusters", "3"]))
    assert again["added"] == 0 and again["skipped"] == 2 and segments(index) == report["segments"]


# ------------------------------------------------------------------------------------------ 7
@pytest.mark.slow
def test_07_a_read_only_index_can_be_read(data, tmp_path):
    if not can_drop_capabilities():
        pytest.skip("cannot make a folder read-only for this user")
    index = tmp_path / "idx"
    shutil.copytree(data.index, index)
    make_read_only(index)
    try:
        before = snapshot(index)
        info = run_child(["index", "info", index, "--json"], read_only_root=True)
        hits = run_child(["query", index, "--segment-id", "0", "-k", "3", "--json"], read_only_root=True)
        after = snapshot(index)
    finally:
        make_writable(index)
    assert ok(info)["segments"] == 30
    assert len(ok(hits)["queries"][0]["hits"]) == 3
    assert snapshot_diff(before, after) == []


# ------------------------------------------------------------------------------------------ 8
def test_08_ivf_and_pq_indexes_build_from_the_cli(data, tmp_path):
    """Training uses the vectors of the whole build, not of the first image (5 vectors)."""
    query = ["--segment-id", "0", "-k", "5", "--json"]
    exact = ok(run_inprocess(["query", data.index, *query]))["queries"][0]["hits"]
    ivf = tmp_path / "ivf"
    assert (
        ok(run_inprocess(["index", "build", data.images, "--out", ivf, "--factory", "IVF8,Flat", "--json"]))["segments"]
        == 30
    )
    approximate = ok(run_inprocess(["query", ivf, *query, "--search-params", "nprobe=8"]))["queries"][0]["hits"]
    assert [h["segment_id"] for h in approximate] == [h["segment_id"] for h in exact]
    pq = tmp_path / "pq"
    assert (
        ok(run_inprocess(["index", "build", data.images, "--out", pq, "--factory", "PQ8x4", "--json"]))["segments"]
        == 30
    )
    assert len(ok(run_inprocess(["query", pq, *query]))["queries"][0]["hits"]) == 5


# ------------------------------------------------------------------------------------------ 9
def test_09_adding_the_same_images_again_skips_them(data, tmp_path):
    index = tmp_path / "idx"
    shutil.copytree(data.index, index)
    report = ok(run_inprocess(["index", "add", index, data.images, "--json"]))
    assert report["added"] == 0 and report["skipped"] == 6 and report["segments"] == 30
    forced = ok(run_inprocess(["index", "add", index, data.images, "--allow-duplicates", "--json"]))
    assert forced["added"] == 30 and forced["skipped"] == 0 and segments(index) == 60


def _truncated_avi(folder: Path) -> tuple[Path, Path]:
    import cv2

    path = folder / "clip.avi"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 10, (96, 64))
    rng = np.random.default_rng(0)
    for _ in range(12):
        writer.write(rng.integers(0, 255, (64, 96, 3), dtype=np.uint8))
    writer.release()
    content = path.read_bytes()
    path.write_bytes(content[: len(content) // 2])
    mask = np.zeros((64, 96), np.uint8)
    mask[10:40, 20:60] = 1
    hostile.write_labels(folder / "mask.png", mask, mode="P")
    return path, folder / "mask.png"


@pytest.mark.slow
def test_09_a_truncated_video_says_how_many_frames_it_read(tmp_path):
    video, mask = _truncated_avi(tmp_path)
    outcome = run_child(["video", "propagate", video, "--mask", mask, "--out", tmp_path / "masks", "--json"])
    report = ok(outcome)
    written = sorted((tmp_path / "masks").glob("*.png"))
    assert report["frames"] == len(written) < 12
    (warning,) = error_lines(outcome)
    assert warning.startswith("warning: ") and "12" in warning and str(len(written)) in warning, outcome
    features = run_child(["features", video, "--out", tmp_path / "f.npz", "--json"])
    assert ok(features)["count"] == len(written)
    assert len(error_lines(features)) == 1 and error_lines(features)[0].startswith("warning: "), features


def test_09_nan_weights_are_refused(data, pristine, tmp_path):
    run_cases(
        ["features-checkpoint-all-nan", "features-checkpoint-one-nan", "query-checkpoint-nan"], data, pristine, tmp_path
    )


def test_09_a_16_bit_image_is_converted_not_clipped(data, tmp_path):
    levels = np.random.default_rng(3).integers(0, 256, (48, 64), dtype=np.uint16)
    hostile.write_gray16(tmp_path / "deep.png", levels * 257)
    Image.fromarray(levels.astype(np.uint8)).convert("RGB").save(tmp_path / "flat.png")
    for name in ("deep", "flat"):
        ok(run_inprocess(["features", tmp_path / f"{name}.png", "--out", tmp_path / f"{name}.npz"]))
    deep, flat = np.load(tmp_path / "deep.npz"), np.load(tmp_path / "flat.npz")
    np.testing.assert_array_equal(deep["features_000000"], flat["features_000000"])


def test_09_negative_or_nan_radius_is_refused(data, pristine, tmp_path):
    run_cases(["propagate-radius-negative", "propagate-radius-nan", "video-radius-nan"], data, pristine, tmp_path)


# ------------------------------------------------------------------------------------------ 10
@pytest.mark.slow
def test_10_an_image_over_the_pixel_budget_is_refused_before_decoding(data, tmp_path):
    """A small PNG declaring 13000x13000 is refused from its header: the process grows no more than for a
    64x64 image (the backbone is what it holds, the picture never is)."""
    (tmp_path / "huge.png").write_bytes(hostile.png_declaring(13000, 13000, colour=2))
    baseline = run_child(["features", data.image, "--out", tmp_path / "small.npz"], memory_limit_mib=6000)
    assert baseline.exit_code == 0, baseline
    outcome = run_child(["features", tmp_path / "huge.png", "--out", tmp_path / "f.npz"], memory_limit_mib=6000)
    assert_one_line_error(outcome, contains=["13000", "pixel"])
    assert outcome.max_rss_mib < baseline.max_rss_mib + 100, (outcome, baseline)


@pytest.mark.slow
def test_10_a_huge_k_is_bounded_by_the_index(data):
    query = ["query", data.index, "--segment-id", "0", "--json", "-k"]
    baseline = run_child([*query, "5"], memory_limit_mib=6000)
    outcome = run_child([*query, "1000000000"], memory_limit_mib=6000)
    assert len(ok(baseline)["queries"][0]["hits"]) == 5
    assert len(ok(outcome)["queries"][0]["hits"]) == 29
    assert outcome.max_rss_mib < baseline.max_rss_mib + 100, (outcome, baseline)


# ------------------------------------------------------------------------------------------ 11
@pytest.mark.slow
def test_11_a_killed_propagation_leaves_nothing_behind_after_the_rerun(data, tmp_path):
    results = tmp_path / "res"
    args = ["davis", "propagate", "--davis-root", data.davis, "--out", results]
    process, hit = start_at_point(args, DAVIS_POINTS["second-sequence-masks"], "KILL", tmp_path)
    assert finish_child(process).exit_code == 128 + signal.SIGKILL and hit.exists()
    ok(run_inprocess(args))
    hidden = [p.name for p in results.iterdir() if p.name.startswith(".")]
    assert hidden == [], f"left behind: {hidden}"
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".res")] == []
    for sequence in (data.davis / "ImageSets" / "2017" / "val.txt").read_text().split():
        for mask in sorted((data.results / sequence).iterdir()):
            assert (results / sequence / mask.name).read_bytes() == mask.read_bytes()


# ------------------------------------------------------------------------------------------ 12
@pytest.mark.parametrize(
    "case_id",
    [
        "features-out-is-folder",
        "features-out-under-file",
        "features-out-name-too-long",
        "features-out-read-only-folder",
        "features-resize-zero",
        "query-gallery-is-folder",
        "build-non-utf8-image-name",
        "propagate-non-utf8-sequence",
        "build-broken-image",
        "propagate-sequences-unknown",
        "features-batch-size-zero",
        "evaluate-year-2015",
        "evaluate-bound-th-nan",
        "usage-unknown-command",
    ],
)
def test_12_every_user_error_is_one_line_and_exit_2(case_id, data, pristine, tmp_path):
    run_cases([case_id], data, pristine, tmp_path)


def test_12_the_catch_all_is_kept_for_real_bugs(monkeypatch, tmp_path):
    """A bug (not a user error) still exits 1 with one line, and --debug still shows the traceback."""
    import dense_retrieval.cli.env_cmd as env_cmd

    def broken() -> dict:
        raise RuntimeError("a bug")

    monkeypatch.setattr(env_cmd, "environment_report", broken)
    outcome = run_inprocess(["env"])
    assert outcome.exit_code == 1 and len(error_lines(outcome)) == 1 and "a bug" in outcome.stderr
    debug = run_inprocess(["--debug", "env"])
    assert isinstance(debug.exception, RuntimeError)
