import numpy as np
import pytest
import skimage.data
import torch

from dense_retrieval.backbone.config import FeatureConfig
from dense_retrieval.backbone.features import FeatureExtractor
from dense_retrieval.backbone.networks import build_backbone
from dense_retrieval.errors import InputError


@pytest.fixture(scope="module")
def random_backbone():
    torch.manual_seed(0)
    return build_backbone(name="mobilenet_v2", layer="features.6", output_stride=8, weights="random")


def _images(count, height=48, width=80, seed=0):
    rng = np.random.default_rng(seed)
    return [rng.integers(0, 256, (height, width, 3), dtype=np.uint8) for _ in range(count)]


@pytest.mark.parametrize(
    "resize, image_size, input_size",
    [
        ("native", (480, 854), (480, 854)),
        ("short:240", (480, 854), (240, 427)),
        ("short:240", (854, 480), (427, 240)),
        ("fixed:512x512", (375, 500), (512, 512)),
    ],
)
def test_resize_policy(resize, image_size, input_size):
    assert FeatureConfig(resize=resize).input_size(*image_size) == input_size


def test_feature_maps_follow_the_contract(random_backbone):
    extractor = FeatureExtractor(random_backbone, FeatureConfig(resize="fixed:50x70"))
    maps = extractor.extract(_images(3))
    assert maps.features.shape == (3, 32, 7, 9) and maps.stride == 8 and maps.input_size == (50, 70)
    assert extractor.grid_size(48, 80) == (7, 9)


def test_streaming_equals_one_batch_and_is_deterministic(random_backbone):
    images = _images(5)
    one_by_one = FeatureExtractor(random_backbone, FeatureConfig(batch_size=1))
    batched = FeatureExtractor(random_backbone, FeatureConfig(batch_size=4))
    streamed = torch.stack([maps.single() for _, maps in batched.stream(iter(images))])
    assert torch.allclose(streamed, one_by_one.extract(images).features, atol=1e-5)
    assert torch.equal(batched.extract(images).features, batched.extract(images).features)


def test_mixed_sizes_stream_in_order(random_backbone):
    images = _images(2, 48, 80) + _images(1, 64, 64) + _images(2, 48, 80, seed=1)
    pairs = list(FeatureExtractor(random_backbone).stream(images))
    assert [maps.grid for _, maps in pairs] == [(6, 10), (6, 10), (8, 8), (6, 10), (6, 10)]
    assert all(image is original for (image, _), original in zip(pairs, images, strict=True))
    assert {maps.stride for _, maps in pairs} == {8} and pairs[2][1].input_size == (64, 64)


def test_stream_pairs_records_with_their_features(random_backbone):
    """Any record that carries an image streams through; at most one batch waits for its features."""
    records = [{"name": f"im{i}", "rgb": image} for i, image in enumerate(_images(5))]
    extractor = FeatureExtractor(random_backbone, FeatureConfig(batch_size=2))
    expected = extractor.extract([r["rgb"] for r in records]).features
    pairs = list(extractor.stream(iter(records), lambda record: record["rgb"]))
    assert [record["name"] for record, _ in pairs] == ["im0", "im1", "im2", "im3", "im4"]
    assert torch.allclose(torch.cat([maps.features for _, maps in pairs]), expected, atol=1e-5)


def test_l2_normalisation(random_backbone):
    features = FeatureExtractor(random_backbone, FeatureConfig(l2_normalize=True)).extract(_images(2)).features
    assert torch.allclose(features.norm(dim=1), torch.ones(2, 6, 10), atol=1e-5)


def test_bad_inputs(random_backbone):
    extractor = FeatureExtractor(random_backbone)
    with pytest.raises(InputError, match="uint8"):
        extractor.extract([np.zeros((10, 10), dtype=np.uint8)])
    with pytest.raises(InputError, match="resize policy"):
        FeatureConfig(resize="half")
    with pytest.raises(
        InputError, match="CUDA is not available" if not torch.cuda.is_available() else "unknown device"
    ):
        FeatureExtractor(random_backbone, FeatureConfig(device="cuda:0" if not torch.cuda.is_available() else "tpu"))


def _cells_finding_their_own_photo(backbone) -> float:
    """Fraction of the right-half cells of `chelsea` whose nearest cell (among the left halves of four
    bundled photos: chelsea, astronaut, coffee, rocket) is a cell of the cat photo."""
    names = ["chelsea", "astronaut", "coffee", "rocket"]
    extractor = FeatureExtractor(backbone, FeatureConfig(resize="short:256", l2_normalize=True))
    features = {name: extractor.extract([getattr(skimage.data, name)()]).features[0] for name in names}
    keys, owners = [], []
    for index, name in enumerate(names):
        left = features[name][:, :, : features[name].shape[2] // 2]
        keys.append(left.flatten(1).T)
        owners += [index] * left[0].numel()
    cat = features["chelsea"]
    queries = cat[:, :, cat.shape[2] // 2 :].flatten(1).T
    nearest = (queries @ torch.cat(keys).T).argmax(dim=1)
    return float((torch.tensor(owners)[nearest] == 0).float().mean())


@pytest.mark.weights
def test_embedded_features_are_meaningful_and_random_ones_are_not():
    """Cat patches find other cat patches with ImageNet weights; random weights mostly do not."""
    real = build_backbone(name="mobilenet_v2", layer="features.13", output_stride=16)
    torch.manual_seed(0)
    random = build_backbone(name="mobilenet_v2", layer="features.13", output_stride=16, weights="random")
    real_score, random_score = _cells_finding_their_own_photo(real), _cells_finding_their_own_photo(random)
    assert real_score > 0.65, real_score
    assert random_score < 0.6 and real_score - random_score > 0.15, (real_score, random_score)
