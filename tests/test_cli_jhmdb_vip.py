"""`jhmdb propagate/evaluate` and `vip propagate/evaluate` end to end on their synthetic sets: files written,
resumed, never mixed; and the numbers move with the backbone (ImageNet MobileNetV2 against random weights)."""

from __future__ import annotations

import json

import numpy as np
import pytest


@pytest.fixture(scope="module")
def synth_jhmdb(tmp_path_factory):
    from dense_retrieval.data.synth import make_synthetic_jhmdb

    root = tmp_path_factory.mktemp("jhmdb") / "JHMDB"
    make_synthetic_jhmdb(root, num_videos=2, num_frames=6, size=(96, 128), train_videos=1)
    return root


@pytest.fixture(scope="module")
def synth_vip(tmp_path_factory):
    from dense_retrieval.data.synth import make_synthetic_vip

    root = tmp_path_factory.mktemp("vip") / "VIP_Fine"
    make_synthetic_vip(root, num_videos=2, num_frames=5, size=(96, 128), annotate_every=2)
    return root


@pytest.mark.weights
def test_jhmdb_propagate_then_evaluate_resume_and_refuse_mixing(synth_jhmdb, tmp_path, run_cli):
    out = tmp_path / "res"
    args = ("jhmdb", "propagate", "--jhmdb-root", synth_jhmdb, "--out", out, "--resize", "fixed:160x160")
    first = run_cli(*args, "--overlay", "strip", "--json")
    assert first.exit_code == 0, first
    summary = first.json()
    assert sorted(summary["sequences"]) == ["synth_run_01", "synth_walk_00"]  # the training video is not run
    assert summary["run"]["propagation"]["context"] == 7 and summary["run"]["keypoints"]["sigma"] == 0.5
    assert summary["run"]["features"]["resize"] == "fixed:160x160"
    for name in summary["sequences"]:
        document = json.loads((out / name / "joints.json").read_text())
        assert len(document["joints"]) == 6 and len(document["joints"][0]) == 15
        assert document["grid"] == [20, 20] and document["frame_size"] == [96, 128]
        assert (out / name / "overlay.jpg").is_file()
    again = run_cli(*args, "--json")
    assert again.exit_code == 0 and {s["status"] for s in again.json()["sequences"].values()} == {"skipped"}
    mixed = run_cli(*args, "--context", "3")
    assert mixed.exit_code == 2 and "another configuration" in mixed.stderr and "propagation.context" in mixed.stderr
    scored = run_cli("jhmdb", "evaluate", "--jhmdb-root", synth_jhmdb, "--results", out, "--json")
    assert scored.exit_code == 0, scored
    report = scored.json()
    assert 0 <= report["pck"]["PCK@0.1"] <= report["pck"]["PCK@0.2"] <= 1 and report["frames_scored"] == 10
    assert (out / "pck_results-split1.csv").is_file() and (out / "pck_report-split1.json").is_file()
    text = run_cli("jhmdb", "evaluate", "--jhmdb-root", synth_jhmdb, "--results", out, "--thresholds", "0.2")
    assert text.exit_code == 0 and "left wrist" in text.stdout and "PCK@0.2" in text.stderr


@pytest.mark.weights
def test_vip_propagate_then_evaluate(synth_vip, tmp_path, run_cli):
    out = tmp_path / "res"
    args = ("vip", "propagate", "--vip-root", synth_vip, "--out", out, "--resize", "fixed:192x192")
    done = run_cli(*args, "--overlay", "video", "--json")
    assert done.exit_code == 0, done
    assert done.json()["run"]["propagation"]["context"] == 4
    masks = sorted(p.name for p in (out / "videos1").glob("*.png"))
    assert masks == ["000000000001.png", "000000000003.png", "000000000005.png"]  # the annotated frames
    assert (out / "videos1" / "overlay.mp4").stat().st_size > 0
    from dense_retrieval.data.masks import read_label_png

    assert read_label_png(out / "videos1" / masks[1]).shape == (96, 128)
    scored = run_cli("vip", "evaluate", "--vip-root", synth_vip, "--results", out, "--json")
    assert scored.exit_code == 0, scored
    report = scored.json()
    assert 0 < report["miou"] <= 1 and report["frames_scored"] == 6
    again = run_cli(*args, "--json")
    assert {s["status"] for s in again.json()["sequences"].values()} == {"skipped"}


def test_bad_input_is_one_line_and_writes_nothing(synth_jhmdb, synth_vip, tmp_path, run_cli):
    out = tmp_path / "res"
    cases = [
        ("jhmdb", "propagate", "--jhmdb-root", synth_jhmdb, "--out", out, "--split", "2"),
        ("jhmdb", "propagate", "--jhmdb-root", synth_jhmdb, "--out", out, "--videos", "nope"),
        ("jhmdb", "propagate", "--jhmdb-root", synth_jhmdb, "--out", out, "--sigma", "0"),
        ("jhmdb", "propagate", "--jhmdb-root", synth_jhmdb, "--out", out, "--preset", "stm"),
        ("jhmdb", "propagate", "--jhmdb-root", synth_jhmdb, "--out", out, "--overlay", "gif"),
        ("jhmdb", "evaluate", "--jhmdb-root", synth_jhmdb, "--results", out, "--thresholds", "0,x"),
        ("vip", "propagate", "--vip-root", synth_vip, "--out", out, "--list", tmp_path / "none.txt"),
        ("vip", "evaluate", "--vip-root", synth_vip, "--results", out),
    ]
    for args in cases:
        result = run_cli(*args)
        assert result.exit_code == 2, (args, result)
        assert len(result.stderr.strip().splitlines()) == 1 and result.stderr.startswith("error:"), result
        assert not out.exists(), args


@pytest.mark.slow
@pytest.mark.weights
def test_the_numbers_move_with_the_backbone(tmp_path, run_cli):
    """ImageNet features follow the figures' joints and parts; the same network with random weights does not
    (measured on these sets: PCK@0.1 ~0.7 against ~0.2, mIoU ~0.7 against ~0.4)."""
    from dense_retrieval.data.synth import make_synthetic_jhmdb, make_synthetic_vip

    make_synthetic_jhmdb(tmp_path / "jhmdb", num_videos=2, num_frames=12, size=(240, 320), train_videos=0)
    make_synthetic_vip(tmp_path / "vip", num_videos=2, num_frames=6, size=(240, 320))
    scores: dict[str, dict[str, float]] = {}
    for weights in ("default", "random"):
        out = tmp_path / f"jhmdb-{weights}"
        ran = run_cli("jhmdb", "propagate", "--jhmdb-root", tmp_path / "jhmdb", "--out", out, "--weights", weights)
        assert ran.exit_code == 0, ran
        report = run_cli("jhmdb", "evaluate", "--jhmdb-root", tmp_path / "jhmdb", "--results", out, "--json").json()
        out = tmp_path / f"vip-{weights}"
        ran = run_cli("vip", "propagate", "--vip-root", tmp_path / "vip", "--out", out, "--weights", weights)
        assert ran.exit_code == 0, ran
        parts = run_cli("vip", "evaluate", "--vip-root", tmp_path / "vip", "--results", out, "--json").json()
        scores[weights] = {"pck": report["pck"]["PCK@0.1"], "miou": parts["miou"]}
    assert scores["default"]["pck"] > PCK_FLOOR > scores["random"]["pck"], scores
    assert scores["default"]["miou"] > MIOU_FLOOR > scores["random"]["miou"], scores
    assert np.isfinite([v for s in scores.values() for v in s.values()]).all()


PCK_FLOOR = 0.45
MIOU_FLOOR = 0.55
