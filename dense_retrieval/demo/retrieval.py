"""The retrieval part of ``dense-retrieval demo``: index photos and a synthetic VOC set, query, draw.

1. scikit-image's bundled photos are written to ``OUT/photos`` and indexed with k-means proposals
   (segments found from the features alone, no labels);
2. a small synthetic VOC set is written to ``OUT/voc`` and its ``train`` images are added with their
   ground-truth class masks (labelled segments);
3. every object of the first ``val`` image queries the index; hits go to ``OUT/query.json`` and a
   gallery picture to ``OUT/gallery.png`` (query segment in yellow, hits outlined in green, with scores).
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import skimage.data

from .. import protocols
from ..backbone.features import FeatureExtractor
from ..backbone.specs import DEFAULT_ARCHITECTURE
from ..data.atomic import write_json
from ..data.images import write_image
from ..data.synth import make_synthetic_voc
from ..data.voc import VOC_CLASSES, VocDataset
from ..retrieval.index import SegmentIndex
from ..retrieval.pipeline import add_images, build_index, query_proposals
from ..retrieval.proposals import ProposalConfig
from ..retrieval.queries import render_gallery

DEMO_PHOTOS = ("chelsea", "astronaut", "coffee", "rocket")
"""Photos with a cat, a person, a cup, a rocket (the synthetic VOC classes take their textures from them)."""


def run_retrieval_demo(out: str | Path, extractor: FeatureExtractor | None = None, device: str = "auto") -> dict:
    """Build a small index, query it and draw the gallery; returns a summary of what was written.

    Args:
        out: folder to write into (photos/, voc/, index/, query.json, gallery.png); replaced pieces are
            rebuilt, never reused.
        extractor: the feature extractor (default: the embedded ImageNet MobileNetV2 under the segment-index
            protocol: default layer at its natural stride, native size).
        device: torch device when ``extractor`` is None.
    """
    out = Path(out)
    started = time.perf_counter()
    if extractor is None:
        features = protocols.SEGMENT_INDEX.features
        extractor = FeatureExtractor.build(features.backbone(DEFAULT_ARCHITECTURE), features.features(device=device))
    photos = []
    for name in DEMO_PHOTOS:
        path = out / "photos" / f"{name}.png"
        write_image(path, _rgb(getattr(skimage.data, name)()))
        photos.append(path)
    voc_root = out / "voc"
    make_synthetic_voc(voc_root, num_train=10, num_val=2, size=192, seed=0, overwrite=True)
    train, val = VocDataset(voc_root, "train"), VocDataset(voc_root, "val")

    index_path = out / "index"
    built = build_index(photos, index_path, extractor, ProposalConfig(method="kmeans"), overwrite=True)
    gt = ProposalConfig(method="gt", gt_root=str(voc_root))
    with SegmentIndex.open(index_path, readonly=False) as index:
        added = add_images(index, [train.image_path(i) for i in train.ids], extractor, gt)
    with SegmentIndex.open(index_path) as index:
        results = query_proposals(index, extractor, val.image_path(val.ids[0]), gt, k=6)
        total = index.ntotal
    queries = [result.as_dict() for result in results]
    for query in queries:  # keep query.json readable: masks are in the index, not repeated here
        for hit in query["hits"]:
            hit.pop("mask_rle")
    write_json(out / "query.json", {"index": str(index_path), "queries": queries})
    write_image(out / "gallery.png", render_gallery(results))
    return {
        "index": str(index_path),
        "segments": total,
        "photo_segments": built["segments"],
        "voc_segments": added["added"],
        "query_image": str(val.image_path(val.ids[0])),
        "queries": [
            {
                "label": VOC_CLASSES[q["label"]],
                "hits": [
                    {"score": round(h["score"], 3), "label": h["label_name"], "image": Path(h["image"]).name}
                    for h in q["hits"]
                ],
            }
            for q in queries
        ],
        "files": [str(out / "gallery.png"), str(out / "query.json")],
        "seconds": round(time.perf_counter() - started, 1),
    }


def _rgb(image: np.ndarray) -> np.ndarray:
    """Bundled photos may be grayscale or RGBA: uint8 [H, W, 3] RGB."""
    if image.ndim == 2:
        image = np.stack([image] * 3, axis=-1)
    return np.ascontiguousarray(image[..., :3])
