"""`davis evaluate` end to end: official files and numbers, bad input, stale results, real data."""

import csv
import json
import shutil
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from dense_retrieval.data.davis import DavisDataset
from dense_retrieval.data.masks import DAVIS_PALETTE, write_label_png
from dense_retrieval.errors import OutputExistsError
from dense_retrieval.vos.davis_eval import evaluate_davis
from tests.scoring_data import moving_objects, perturb, vos_per_frame, write_dataset, write_results

SEQUENCES = {"two-cars": (40, 64, 3, 7), "wide-910": (480, 910, 2, 5)}  # H, W, objects, frames


@pytest.fixture()
def davis(tmp_path):
    """A DAVIS-2017 root with a 3-object and a 910-wide 2-object sequence, plus perturbed results."""
    gts = {name: moving_objects(t, h, w, k) for name, (h, w, k, t) in SEQUENCES.items()}
    preds = {name: [perturb(g, 3 * i + t) for t, g in enumerate(seq)] for i, (name, seq) in enumerate(gts.items())}
    root, results = tmp_path / "DAVIS", tmp_path / "results"
    write_dataset(root, gts)
    write_results(results, preds)
    return root, results, gts, preds


def _csv_files(folder):
    return sorted(p.name for p in folder.glob("*.csv"))


def test_official_files_and_vos_benchmark_numbers(davis, run_cli):
    root, results, gts, preds = davis
    r = run_cli("davis", "evaluate", "--davis-root", root, "--results", results, "--processes", "1", "--json")
    assert r.exit_code == 0, r
    report = r.json()
    assert report["frames_scored"] == 5 + 3 and report["num_objects"] == 5
    assert {s["name"]: s["dilation_radius"] for s in report["sequences"]} == {
        "two-cars": 1.0,
        "wide-910": 9.0,
    }
    assert report["conventions"]["skip_first_and_last"] and report["set"] == "val" and report["year"] == "2017"
    rows = {row["name"]: row for row in report["per_object"]}
    for name in SEQUENCES:
        vos_j, vos_f = vos_per_frame(gts[name][1:-1], preds[name][1:-1])
        for k in vos_j:
            assert rows[f"{name}_{k}"]["J-Mean"] == pytest.approx(np.mean(vos_j[k]), abs=1e-6)
            assert rows[f"{name}_{k}"]["F-Mean"] == pytest.approx(np.mean(vos_f[k]), abs=1e-6)
    with open(results / "global_results-val.csv") as handle:
        header, values = list(csv.reader(handle))
    assert header == ["J&F-Mean", "J-Mean", "J-Recall", "J-Decay", "F-Mean", "F-Recall", "F-Decay"]
    assert values == [f"{report['global'][column]:.3f}" for column in header]
    lines = (results / "per-sequence_results-val.csv").read_text().splitlines()
    assert lines[0] == "Sequence,J-Mean,F-Mean"
    assert lines[1] == f"two-cars_1,{rows['two-cars_1']['J-Mean']:.3f},{rows['two-cars_1']['F-Mean']:.3f}"
    assert [line.split(",")[0] for line in lines[1:]] == [
        "two-cars_1",
        "two-cars_2",
        "two-cars_3",
        "wide-910_1",
        "wide-910_2",
    ]
    saved = json.loads((results / "evaluation_report-val.json").read_text())
    assert saved["global"] == report["global"] and saved["results"] == str(results.resolve())


def test_table_output_and_output_folder(davis, run_cli, tmp_path):
    root, results, _, _ = davis
    out = tmp_path / "scores"
    r = run_cli("davis", "evaluate", "--davis-root", root, "--results", results, "--output", out, "--processes", "1")
    assert r.exit_code == 0, r
    assert "Global results for val" in r.stdout and "J&F-Mean" in r.stdout and "wide-910_2" in r.stdout
    assert "scored 8 frames" in r.stderr
    assert _csv_files(out) == ["global_results-val.csv", "per-sequence_results-val.csv"]
    assert _csv_files(results) == []


def test_conventions_are_options(davis, run_cli, tmp_path):
    """--keep-first-last scores every frame (like skip_first_and_last=False in vos-benchmark); --bound-th."""
    root, results, gts, preds = davis
    args = ["davis", "evaluate", "--davis-root", root, "--results", results, "--output", tmp_path / "o"]
    r = run_cli(*args, "--keep-first-last", "--bound-th", "3", "--processes", "1", "--json")
    assert r.exit_code == 0, r
    report = r.json()
    assert report["frames_scored"] == 7 + 5 and report["conventions"]["skip_first_and_last"] is False
    assert {s["dilation_radius"] for s in report["sequences"]} == {3.0}
    rows = {row["name"]: row for row in report["per_object"]}
    vos_j, _ = vos_per_frame(gts["two-cars"], preds["two-cars"])
    assert rows["two-cars_2"]["J-Mean"] == pytest.approx(np.mean(vos_j[2]), abs=1e-6)
    assert run_cli(*args, "--bound-th", "0").exit_code == 2


def test_two_processes_give_the_same_scores(davis):
    root, results, _, _ = davis
    one = evaluate_davis(root, results, processes=1)
    two = evaluate_davis(root, results, processes=2)
    assert two.processes == 2 and one.global_scores == two.global_scores
    for a, b in zip(one.objects, two.objects, strict=True):
        np.testing.assert_array_equal(a.j, b.j)
        np.testing.assert_array_equal(a.f, b.f)


def test_workers_are_forked_only_from_a_process_that_has_done_no_threaded_work():
    """After torch (propagation's thread pools) a forked worker can hang on their locks: a fork server then."""
    script = (
        "import dense_retrieval.vos.davis_eval as e\n"
        "print(e._pool_context().get_start_method())\n"
        "import torch\n"
        "torch.ones(64, 64) @ torch.ones(64, 64)\n"
        "print(e._pool_context().get_start_method())\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True, timeout=120)
    assert done.stdout.split() == ["fork", "forkserver"]


def test_stale_results_are_recomputed_or_refused(davis, run_cli):
    root, results, _, _ = davis
    stale = "J&F-Mean,J-Mean,J-Recall,J-Decay,F-Mean,F-Recall,F-Decay\n" + ",".join(["0.999"] * 7) + "\n"
    (results / "global_results-val.csv").write_text(stale)
    (results / "per-sequence_results-val.csv").write_text("Sequence,J-Mean,F-Mean\nold_1,0.999,0.999\n")
    refused = run_cli("davis", "evaluate", "--davis-root", root, "--results", results, "--no-overwrite")
    assert refused.exit_code == 2 and refused.stderr.count("\n") == 1
    assert "already exists" in refused.stderr and "--no-overwrite" in refused.stderr
    assert (results / "global_results-val.csv").read_text() == stale
    r = run_cli("davis", "evaluate", "--davis-root", root, "--results", results, "--processes", "1", "--json")
    assert r.exit_code == 0, r
    fresh = (results / "global_results-val.csv").read_text()
    assert fresh != stale and fresh.splitlines()[1].split(",")[0] == f"{r.json()['global']['J&F-Mean']:.3f}"
    assert "old_1" not in (results / "per-sequence_results-val.csv").read_text()
    with pytest.raises(OutputExistsError):
        from dense_retrieval.vos.davis_eval import run_davis_evaluation

        run_davis_evaluation(root, results, overwrite=False)


def _write_rgb(path, rgb):
    Image.fromarray(rgb.astype(np.uint8), "RGB").save(path)


def _break_missing_sequence(root, results):
    shutil.rmtree(results / "two-cars")


def _break_missing_frame(root, results):
    (results / "two-cars" / "00003.png").unlink()


def _break_wrong_size(root, results):
    write_label_png(results / "two-cars" / "00003.png", np.zeros((40, 60), np.uint8))


def _break_rgb_off_palette(root, results):
    rgb = DAVIS_PALETTE[np.asarray(Image.open(results / "two-cars" / "00003.png"))]
    rgb[0, 0] = (1, 2, 3)
    _write_rgb(results / "two-cars" / "00003.png", rgb)


def _break_id_too_large(root, results):
    labels = np.zeros((40, 64), np.uint8)
    labels[3:9, 3:9] = 5
    write_label_png(results / "two-cars" / "00003.png", labels)


def _break_unreadable_png(root, results):
    (results / "two-cars" / "00003.png").write_bytes(b"\x89PNG\r\n\x1a\n not really a png")


def _break_missing_image_set(root, results):
    (root / "ImageSets" / "2017" / "val.txt").unlink()


@pytest.mark.parametrize(
    ("breaker", "expected"),
    [
        (_break_missing_sequence, "no folder for sequence 'two-cars'"),
        (_break_missing_frame, "miss frame 00003.png"),
        (_break_wrong_size, "two-cars/00003.png is 60x40"),
        (_break_rgb_off_palette, "two-cars/00003.png has colour (1, 2, 3)"),
        (_break_id_too_large, "two-cars/00003.png has object id 5 but sequence 'two-cars' has 3"),
        (_break_unreadable_png, "unreadable mask"),
        (_break_missing_image_set, "missing ImageSets file"),
    ],
)
@pytest.mark.parametrize("processes", ["1", "2"])
def test_bad_input_is_one_line_exit_2_and_writes_nothing(davis, run_cli, breaker, expected, processes):
    root, results, _, _ = davis
    breaker(root, results)
    r = run_cli("davis", "evaluate", "--davis-root", root, "--results", results, "--processes", processes)
    assert r.exit_code == 2, r
    assert r.stderr.startswith("error: ") and r.stderr.count("\n") == 1, r.stderr
    assert expected in r.stderr
    if breaker is _break_unreadable_png:
        assert "00003.png" in r.stderr
    assert _csv_files(results) == [] and not list(results.glob("*.json"))


def test_missing_results_folder(davis, run_cli, tmp_path):
    root, _, _, _ = davis
    r = run_cli("davis", "evaluate", "--davis-root", root, "--results", tmp_path / "nope")
    assert r.exit_code == 2 and "results folder not found" in r.stderr


def test_rgb_masks_with_exact_palette_colours_are_accepted(davis):
    root, results, _, _ = davis
    before = evaluate_davis(root, results, processes=1).global_scores
    for path in sorted((results / "two-cars").glob("*.png")):
        _write_rgb(path, DAVIS_PALETTE[np.asarray(Image.open(path))])
    assert evaluate_davis(root, results, processes=1).global_scores == before


def test_decay_on_a_300_frame_sequence(tmp_path):
    """J = 1 on frames 0..149 and 0.2 after; scored frames 1..298 -> Mean 0.6, Recall 0.5, Decay 0.8.

    (Bin edges for 298 scored frames: [0, 74, 149, 223, 297]; the first bin is frames 1..75, the last
    224..298.) The official code wraps its uint8 edges here and reports no Decay.
    """
    gt = np.zeros((6, 12), np.uint8)
    gt[2, 1:11] = 1  # 10 pixels
    weak = np.zeros_like(gt)
    weak[2, 1:3] = 1  # 2 of them: J = 0.2
    write_dataset(tmp_path / "DAVIS", {"long": [gt] * 300})
    write_results(tmp_path / "res", {"long": [gt] * 150 + [weak] * 150})
    evaluation = evaluate_davis(tmp_path / "DAVIS", tmp_path / "res", processes=1)
    row = evaluation.objects[0].row()
    assert evaluation.frames_scored == 298
    assert row["J-Mean"] == pytest.approx(0.6) and row["J-Recall"] == pytest.approx(0.5)
    assert row["J-Decay"] == pytest.approx(0.8)
    assert np.isfinite(row["F-Decay"]) and row["F-Decay"] > 0


def test_help_teaches_the_measures(run_cli):
    r = run_cli("davis", "evaluate", "--help")
    assert r.exit_code == 0
    for phrase in ("J&F-Mean", "first and last", "Decay", "ceil(0.008", "--no-overwrite", "bike-packing_1"):
        assert phrase in r.stdout


@pytest.mark.realdata
def test_davis16_mini_equals_vos_benchmark(davis_mini, tmp_path, run_cli):
    """Perturbed 0/255 predictions on real DAVIS-2016 frames: per-frame J and F equal vos-benchmark's."""
    dataset = DavisDataset(davis_mini, year="2016", split="val")
    gts, preds = {}, {}
    for s, name in enumerate(dataset.sequences):
        gts[name] = [dataset.read_annotation(p) for p in dataset.sequence(name).annotations]
        preds[name] = [perturb(g, 5 * s + t) for t, g in enumerate(gts[name])]
    write_results(tmp_path / "res", preds, binary=True)
    r = run_cli(
        "davis",
        "evaluate",
        "--davis-root",
        davis_mini,
        "--results",
        tmp_path / "res",
        "--year",
        "2016",
        "--output",
        tmp_path / "out",
        "--json",
    )
    assert r.exit_code == 0, r
    assert r.json()["frames_scored"] == 179 - 8
    evaluation = evaluate_davis(davis_mini, tmp_path / "res", year="2016", processes=1)
    for obj in evaluation.objects:
        # vos-benchmark compares raw values: give it 0/255 like the annotations
        vos_j, vos_f = vos_per_frame(
            [255 * g for g in gts[obj.sequence][1:-1]], [255 * p for p in preds[obj.sequence][1:-1]]
        )
        np.testing.assert_allclose(obj.j, vos_j[255], atol=1e-6)
        np.testing.assert_allclose(obj.f, vos_f[255], atol=1e-6)
    assert 0.3 < evaluation.global_scores["J&F-Mean"] < 0.95
