"""Mask proposals: ground truth, COCO files, k-means, superpixels, saliency; counts and bad input."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image
from pycocotools import mask as mask_utils

from dense_retrieval.data.images import write_image
from dense_retrieval.data.masks import write_label_png
from dense_retrieval.errors import DataFormatError, InputError
from dense_retrieval.retrieval.proposals import ProposalConfig, Proposer, kmeans_masks, superpixel_masks

H, W = 40, 60


@pytest.fixture()
def voc_like(tmp_path):
    """One image in the VOC layout: a cat (8) and two persons (15), a void band, background."""
    root = tmp_path / "VOC2012"
    classes = np.zeros((H, W), dtype=np.uint8)
    objects = np.zeros((H, W), dtype=np.uint8)
    classes[5:20, 5:25], objects[5:20, 5:25] = 8, 1
    classes[22:38, 30:40], objects[22:38, 30:40] = 15, 2
    classes[22:38, 45:55], objects[22:38, 45:55] = 15, 3
    classes[20, :], objects[20, :] = 255, 255
    image = root / "JPEGImages" / "a.jpg"
    write_image(image, np.full((H, W, 3), 120, dtype=np.uint8))
    write_label_png(root / "SegmentationClass" / "a.png", classes)
    write_label_png(root / "SegmentationObject" / "a.png", objects)
    return image, classes, objects


def test_gt_class_and_object_masks(voc_like):
    image, classes, objects = voc_like
    rgb = np.zeros((H, W, 3), dtype=np.uint8)
    found = Proposer(ProposalConfig(method="gt", min_area=1))(image, rgb)  # VOC layout found from the image path
    assert found.labels == [8, 15]
    np.testing.assert_array_equal(found.masks[1], classes == 15)
    by_object = Proposer(ProposalConfig(method="gt", gt_kind="object", min_area=1))(image, rgb)
    assert by_object.labels == [8, 15, 15]
    np.testing.assert_array_equal(by_object.masks[2], objects == 3)
    with_background = Proposer(ProposalConfig(method="gt", include_background=True, min_area=1))(image, rgb)
    assert with_background.labels == [0, 8, 15] and not (with_background.masks.any(0) & (classes == 255)).any()


def test_gt_resized_to_working_size_and_wrong_size_refused(voc_like, tmp_path):
    image, classes, _ = voc_like
    found = Proposer(ProposalConfig(method="gt", min_area=1))(
        image, np.zeros((80, 120, 3), np.uint8), native_size=(H, W)
    )
    assert found.masks.shape == (2, 80, 120)
    expected = np.asarray(Image.fromarray(classes).resize((120, 80), Image.NEAREST)) == 8
    np.testing.assert_array_equal(found.masks[0], expected)
    with pytest.raises(DataFormatError, match="ground truth of a.jpg is 40x60 but the image is 41x60"):
        Proposer(ProposalConfig(method="gt"))(image, np.zeros((41, W, 3), np.uint8))
    with pytest.raises(InputError, match="no ground-truth mask for b.jpg"):
        Proposer(ProposalConfig(method="gt"))(tmp_path / "b.jpg", np.zeros((H, W, 3), np.uint8))


def test_tiny_and_empty_masks_are_counted(voc_like):
    image, _, _ = voc_like
    proposer = Proposer(ProposalConfig(method="gt", gt_kind="object", min_area=200))
    found = proposer(image, np.zeros((H, W, 3), np.uint8))
    assert found.labels == [8]  # 15x20 = 300 kept; 16x10 = 160 twice dropped
    stats = proposer.stats.as_dict()
    assert stats["kept"] == 1 and stats["dropped_small"] == 2 and stats["dropped_empty"] == 0
    masks = kmeans_masks(torch.zeros(4, 2, 2), (8, 8), clusters=3)  # identical features -> 1 non-empty cluster
    assert masks.sum() == 64 and (masks.flatten(1).sum(1) == 0).sum() == 2


def _coco(tmp_path, images, annotations):
    path = tmp_path / "ann.json"
    path.write_text(json.dumps({"images": images, "annotations": annotations, "categories": [{"id": 3, "name": "x"}]}))
    return path


def test_coco_polygons_and_rle(tmp_path):
    image = tmp_path / "imgs" / "p.png"
    write_image(image, np.zeros((H, W, 3), np.uint8))
    box = np.zeros((H, W), dtype=np.uint8)
    box[10:30, 20:50] = 1
    compressed = mask_utils.encode(np.asfortranarray(box))
    compressed["counts"] = compressed["counts"].decode("ascii")
    uncompressed = {"size": [H, W], "counts": [0, 20 * H, H * W - 20 * H]}  # column-major: first 20 columns
    ann = _coco(
        tmp_path,
        [{"id": 7, "file_name": "sub/p.png", "height": H, "width": W}],
        [
            {"id": 1, "image_id": 7, "category_id": 3, "segmentation": [[0, 0, 10, 0, 10, 10, 0, 10]]},
            {"id": 2, "image_id": 7, "category_id": 4, "segmentation": compressed},
            {"id": 3, "image_id": 7, "category_id": 5, "segmentation": uncompressed},
        ],
    )
    proposer = Proposer(ProposalConfig(method="coco", coco_json=str(ann), min_area=1))
    proposer.check_images([image])
    found = proposer(image, np.zeros((H, W, 3), np.uint8))
    assert found.labels == [3, 4, 5]
    assert 90 <= found.masks[0].sum() <= 121 and found.masks[0][:10, :10].mean() > 0.8
    np.testing.assert_array_equal(found.masks[1], box.astype(bool))
    assert found.masks[2][:, :20].all() and not found.masks[2][:, 20:].any()


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ('{"images": [', "malformed COCO JSON"),
        ('{"annotations": []}', "has no 'images' list"),
        ('{"images": [{"id": 1}], "annotations": []}', "lacks id/file_name/height/width"),
        (
            '{"images": [{"id": 1, "file_name": "p.png", "height": 40, "width": 60}], '
            '"annotations": [{"id": 5, "image_id": 2, "segmentation": []}]}',
            "annotation 5 references missing image id 2",
        ),
    ],
)
def test_malformed_coco_is_one_line_error(tmp_path, content, message):
    path = tmp_path / "bad.json"
    path.write_text(content)
    with pytest.raises(DataFormatError, match=message) as error:
        Proposer(ProposalConfig(method="coco", coco_json=str(path)))
    assert "\n" not in str(error.value)


def test_coco_references_to_missing_images_and_wrong_sizes(tmp_path):
    image = tmp_path / "p.png"
    write_image(image, np.zeros((H, W, 3), np.uint8))
    entries = [{"id": 1, "file_name": "p.png", "height": H, "width": W + 1},
               {"id": 2, "file_name": "gone.png", "height": H, "width": W}]  # fmt: skip
    bad_polygon = [{"id": 9, "image_id": 1, "segmentation": [[1, 2, 3]]}]
    proposer = Proposer(ProposalConfig(method="coco", coco_json=str(_coco(tmp_path, entries, bad_polygon))))
    with pytest.raises(DataFormatError, match="references image 'gone.png'"):
        proposer.check_images([image])
    with pytest.raises(DataFormatError, match="gives p.png size 40x61, but the image is 40x60"):
        proposer(image, np.zeros((H, W, 3), np.uint8))
    entries[0]["width"] = W
    proposer = Proposer(ProposalConfig(method="coco", coco_json=str(_coco(tmp_path, entries, bad_polygon))))
    with pytest.raises(DataFormatError, match="annotation 9: polygons must be"):
        proposer(image, np.zeros((H, W, 3), np.uint8))


def test_kmeans_is_deterministic_and_finds_the_regions():
    generator = torch.Generator().manual_seed(0)
    features = torch.randn(16, 8, 8, generator=generator) * 0.1
    features[0, :, :4] += 3.0  # left half differs strongly from the right half
    features[1, :, 4:] += 3.0
    first = kmeans_masks(features, (64, 64), clusters=2, seed=3)
    again = kmeans_masks(features, (64, 64), clusters=2, seed=3)
    assert torch.equal(first, again)
    assert torch.equal(first.sum(0), torch.ones(64, 64, dtype=torch.long))  # a partition of the image
    left = first[:, :, :32].flatten(1).float().mean(1)
    assert sorted(left.tolist()) == [0.0, 1.0]


def test_kmeans_through_the_proposer_needs_features():
    proposer = Proposer(ProposalConfig(method="kmeans", clusters=3))
    assert proposer.needs_features
    with pytest.raises(InputError, match="need the image's features"):
        proposer("x.jpg", np.zeros((16, 16, 3), np.uint8))
    found = proposer("x.jpg", np.zeros((16, 16, 3), np.uint8), torch.randn(8, 4, 4))
    assert found.masks.shape[1:] == (16, 16) and found.labels == [None] * len(found.masks)


@pytest.mark.parametrize("algorithm", ["felzenszwalb", "slic"])
def test_superpixels_follow_colour_regions(algorithm):
    image = np.zeros((60, 80, 3), np.uint8)
    image[:, 40:] = (250, 30, 30)
    masks = superpixel_masks(image, algorithm, segments=4)
    assert masks.sum(0).max() == 1 and masks.sum() == 60 * 80
    for mask in masks:  # no superpixel straddles the colour edge
        assert not (mask[:, :40].any() and mask[:, 40:].any())


def test_saliency_threshold_size_and_missing(tmp_path):
    maps = tmp_path / "sal"
    maps.mkdir()
    saliency = np.zeros((H, W), np.uint8)
    saliency[10:30, 10:30] = 200
    saliency[0, 0] = 100  # below 0.5 * 255
    Image.fromarray(saliency).save(maps / "a.png")
    proposer = Proposer(ProposalConfig(method="saliency", saliency_dir=str(maps)))
    found = proposer(tmp_path / "a.jpg", np.zeros((H, W, 3), np.uint8))
    np.testing.assert_array_equal(found.masks[0], saliency > 127)
    with pytest.raises(DataFormatError, match="saliency map a.png of a.jpg is 40x60 but the image is 50x60"):
        proposer(tmp_path / "a.jpg", np.zeros((50, W, 3), np.uint8))
    with pytest.raises(InputError, match="no saliency map for b.jpg"):
        proposer(tmp_path / "b.jpg", np.zeros((H, W, 3), np.uint8))


def test_config_validation():
    with pytest.raises(InputError, match="unknown proposal method 'sam'"):
        ProposalConfig(method="sam")
    with pytest.raises(InputError, match="needs a COCO JSON"):
        ProposalConfig(method="coco")
    assert ProposalConfig(method="kmeans").describe() == {"method": "kmeans", "min_area": 32, "clusters": 5, "seed": 0}
