"""Dense retrieval end to end against a plain reference written from the protocol's definition.

The reference (:func:`reference_predictions`) holds the whole memory as one torch tensor: per memory image
and pass, void mapped to class 0, soft labels counted patch by patch, the bounded sampling by the loop of
tests/test_dense_patches.py, L2-normalised features; per query patch, cosine similarity to every memory
patch, ``torch.topk``, softmax(cos / 0.02), the weighted labels, bilinear upsampling, argmax. The toolkit
builds a real FAISS memory on disk in shards and reads it through ``readout.predict``. With exact search
the predicted labels must be identical; with an inverted file the recall is recorded and the mIoU stays
within 0.5 points of the reference's.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from dense_retrieval.metrics.segmentation import ConfusionMeter
from dense_retrieval.retrieval.dense.memory import PatchMemory
from dense_retrieval.retrieval.dense.memory_build import MemoryPlan, PatchBatch, build_memory
from dense_retrieval.retrieval.dense.readout import predict
from dense_retrieval.retrieval.dense.transforms import derived_seed
from dense_retrieval.retrieval.index.stages import IndexOptions
from tests.test_dense_patches import _reference_sample

CLASSES, DIM, GRID, PATCH = 6, 64, 8, 4
K, TEMPERATURE = 30, 0.02


def _blocky(rng: np.random.Generator, size: int) -> np.ndarray:
    labels = np.zeros((size, size), np.int64)
    for _ in range(3):
        top, left = rng.integers(0, size - 6, 2)
        height, width = rng.integers(5, size // 2, 2)
        labels[top : top + height, left : left + width] = rng.integers(1, CLASSES)
    labels[rng.random((size, size)) < 0.03] = 255  # void pixels, as on VOC boundaries
    return labels


class RandomPatches:
    """Images of GRID x GRID patches: features = a prototype of each patch's main class plus noise."""

    def __init__(self, count: int, passes: int, seed: int):
        self.names = [f"random-{i}" for i in range(count)]
        self.passes, self.seed = passes, seed
        self.prototypes = np.random.default_rng(99).normal(size=(CLASSES, DIM)).astype(np.float32)

    def item(self, image: int, epoch: int) -> tuple[torch.Tensor, torch.Tensor]:
        rng = np.random.default_rng((self.seed, image, epoch))
        labels = _blocky(rng, GRID * PATCH)
        main = labels.reshape(GRID, PATCH, GRID, PATCH).transpose(0, 2, 1, 3).reshape(GRID * GRID, -1).max(1) % 255
        features = self.prototypes[np.minimum(main, CLASSES - 1)] + 1.2 * rng.normal(size=(GRID * GRID, DIM))
        return torch.from_numpy(features.T.reshape(DIM, GRID, GRID).astype(np.float32)), torch.from_numpy(labels)

    def batches(self, images):
        for image in images:
            for epoch in range(self.passes):
                features, labels = self.item(image, epoch)
                yield PatchBatch(image, epoch, features, labels, (0, 0, GRID * PATCH, GRID * PATCH))


def reference_predictions(source: RandomPatches, queries: list, per_image: int | None, seed: int) -> list:
    """The protocol written out plainly (module doc): predicted classes [S, S] per query item."""
    keys, values = [], []
    for image in range(len(source.names)):
        for epoch in range(source.passes):
            features, labels = source.item(image, epoch)
            labels = labels.clone()
            labels[labels == 255] = 0
            cells = [
                labels[r : r + PATCH, c : c + PATCH].reshape(-1)
                for r in range(0, GRID * PATCH, PATCH)
                for c in range(0, GRID * PATCH, PATCH)
            ]
            chosen = list(range(len(cells)))
            if per_image is not None:
                generator = torch.Generator().manual_seed(derived_seed(seed, epoch, image, 1))
                noise = torch.rand(len(cells), generator=generator).tolist()
                chosen = _reference_sample(labels, PATCH, CLASSES, per_image, noise)
            vectors = features.reshape(DIM, -1).T
            for cell in chosen:
                keys.append(vectors[cell] / vectors[cell].norm())
                values.append(torch.bincount(cells[cell], minlength=CLASSES).float() / PATCH**2)
    keys, values = torch.stack(keys), torch.stack(values)
    predictions = []
    for features in queries:
        q = features.reshape(DIM, -1).T
        similarity = (q / q.norm(dim=1, keepdim=True)) @ keys.T
        top = similarity.topk(K, dim=1)
        weights = torch.softmax(top.values / TEMPERATURE, dim=1)
        patch_labels = (weights.unsqueeze(2) * values[top.indices]).sum(1)  # [P, C]
        grid = patch_labels.T.reshape(1, CLASSES, GRID, GRID)
        upsampled = F.interpolate(grid, size=(GRID * PATCH,) * 2, mode="bilinear", align_corners=False)
        predictions.append(upsampled[0].argmax(0))
    return predictions


def _queries(count: int = 6) -> tuple[list, list]:
    source = RandomPatches(count, 1, seed=7)
    items = [source.item(i, 0) for i in range(count)]
    return [features for features, _ in items], [labels.numpy() for _, labels in items]


def _miou(predictions, labels) -> float:
    meter = ConfusionMeter(CLASSES)
    for predicted, truth in zip(predictions, labels, strict=True):
        meter.update(np.asarray(predicted), truth)
    return meter.miou()


def _build(tmp_path, source, per_image, options, name="memory", shard_images=5):
    plan = MemoryPlan(CLASSES, per_image, 3, "float16", {"test": name}, GRID * PATCH, (GRID, GRID), recall_k=K)
    report = build_memory(source, tmp_path / name, plan, options, shard_images=shard_images)
    return report, PatchMemory.open(tmp_path / name)


def _toolkit(memory, queries) -> list:
    items = [(n, features, (GRID * PATCH, GRID * PATCH)) for n, features in enumerate(queries)]
    return [predicted for _, predicted in predict(memory, items, K, TEMPERATURE, query_batch=100)]


@pytest.mark.parametrize("per_image", [None, 20])
def test_exact_memory_predicts_the_references_labels(tmp_path, per_image):
    source = RandomPatches(12, passes=2, seed=1)
    queries, labels = _queries()
    report, memory = _build(tmp_path, source, per_image, IndexOptions())
    with memory:
        found = _toolkit(memory, queries)
        assert memory.ntotal == 12 * 2 * (per_image or GRID * GRID) == report["patches"]
        assert memory.factory == "Flat" and report["recall"] is None
    expected = reference_predictions(source, queries, per_image, seed=3)
    for got, want in zip(found, expected, strict=True):
        assert torch.equal(got, want)
    assert 0.3 < _miou(found, labels) < 1.0  # the task is learnable but not trivial


def test_inverted_file_memory_records_recall_and_keeps_the_miou(tmp_path):
    source = RandomPatches(40, passes=2, seed=2)
    queries, labels = _queries()
    flat_bytes = 40 * 2 * 20 * DIM * 4
    report, memory = _build(tmp_path, source, 20, IndexOptions(max_memory=flat_bytes // 2))
    with memory:
        found = _toolkit(memory, queries)
        assert memory.factory.startswith("IVF") and memory.record["recall"] == report["recall"]
    recall = report["recall"]
    assert recall["k"] == K and recall["queries"] == 160 and 0.5 < recall[f"recall_at_{K}"] <= 1.0
    reference = _miou(reference_predictions(source, queries, 20, seed=3), labels)
    assert abs(_miou(found, labels) - reference) <= 0.005, (reference, recall)


def test_memory_files_agree_with_its_record(tmp_path):
    source = RandomPatches(4, passes=1, seed=3)
    _, memory = _build(tmp_path, source, None, IndexOptions(), shard_images=3)
    with memory:
        origins = memory.origins_of(np.arange(memory.ntotal))
        assert origins[:, 0].tolist() == sorted(origins[:, 0].tolist())  # image-major, shard by shard
        assert set(origins[:, 2].tolist()) == set(range(GRID * GRID))
        labels = memory.labels_of(np.array([[0, 1], [2, 3]]))
        assert labels.shape == (2, 2, CLASSES) and np.allclose(labels.sum(-1), 1.0)
        images = memory.images()
        assert images["images"] == source.names and images["crops"]["0"]["0"] == [0, 0, 32, 32]
    record = json.loads((tmp_path / "memory" / "memory.json").read_text())
    assert record["grid"] == [GRID, GRID] and record["classes"] == CLASSES and record["label_dtype"] == "float16"
