"""The demo: what the toolkit does, on the embedded backbone, offline, in about a minute on 2 CPU cores.

Stages (each writes into its own sub-folder of the output folder):
    features/     scikit-image's bundled photos and their feature PCA (the spatial structure of features)
"""

from __future__ import annotations

import time
from pathlib import Path

import skimage.data

from .backbones import BackboneConfig, build_backbone
from .data.atomic import write_json
from .data.images import write_image
from .features import FeatureConfig, FeatureExtractor
from .viz.layout import caption, resize_to_height, tile
from .viz.pca import feature_pca_rgb

DEMO_PHOTOS = ("chelsea", "astronaut", "coffee", "rocket")
DEMO_BACKBONE = BackboneConfig(name="mobilenet_v2", layer="features.13", output_stride=8)


def demo_features(extractor: FeatureExtractor, out: Path) -> dict:
    """Extract features of the bundled photos; write each photo beside its feature PCA."""
    out.mkdir(parents=True, exist_ok=True)
    panels, written = [], []
    for name in DEMO_PHOTOS:
        photo = getattr(skimage.data, name)()
        features = extractor.extract([photo]).features[0]
        pca = feature_pca_rgb(features, size=photo.shape[:2])
        pair = tile(
            [caption(resize_to_height(photo, 200), name), caption(resize_to_height(pca, 200), "feature PCA")], 2
        )
        path = out / f"{name}_pca.png"
        write_image(path, pair)
        written.append(str(path))
        panels.append(pair)
        grid = tuple(features.shape[1:])
    return {"photos": list(DEMO_PHOTOS), "feature_grid_last": grid, "files": written}


def run_demo(out: Path, device: str = "auto") -> dict:
    """Run every demo stage into ``out``; returns a summary (also written to ``out/summary.json``)."""
    out = Path(out)
    start = time.perf_counter()
    backbone = build_backbone(DEMO_BACKBONE)
    extractor = FeatureExtractor(backbone, FeatureConfig(l2_normalize=True, device=device))
    summary: dict = {"output": str(out), "backbone": extractor.describe()}
    summary["features"] = demo_features(extractor, out / "features")
    summary["seconds"] = round(time.perf_counter() - start, 1)
    write_json(out / "summary.json", summary)
    return summary
