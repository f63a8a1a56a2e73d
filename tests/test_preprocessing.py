"""Each protocol's network input equals the one its reference script makes, rebuilt here step by step.

The references, read in their repositories (commits in dense_retrieval/backbone/preprocessing.py):

- CRW, ajabri/videowalk code/data/vos.py: ``load_image`` = cv2.imread, float32 / 255, BGR -> RGB;
  ``resize`` = cv2.resize (INTER_LINEAR) of that float image to imgSize x imgSize, only when --cropSize > 0
  (the published DAVIS command passes -1: native frames); ``color_normalize`` with ImageNet mean/std.
- DINO, facebookresearch/dino eval_video_segmentation.py: ``read_frame`` = cv2.imread, short side 480 and
  the long side ``int((long // 64) * 64)``, cv2.resize (INTER_LINEAR) of the uint8 frame, / 255, BGR -> RGB,
  ``color_normalize`` with std (0.228, 0.224, 0.225).
- MaskContrast, wvangansbeke/Unsupervised-Semantic-Segmentation segmentation/: ``VOC12._load_img`` = PIL
  RGB; ``FixedResize`` 512x512 = cv2.resize INTER_CUBIC (image) and INTER_NEAREST (labels); torchvision
  ToTensor; Normalize with ImageNet mean/std.
- Hummingbird, vpariza/open-hummingbird-eval hbird/utils/transforms.py: PIL RGB, torchvision
  ``Resize((S, S), antialias=True)`` of the PIL image, ToTensor, Normalize with std (0.229, 0.224, 0.255).

Each reference is written below in plain numpy / OpenCV / PIL and compared with the toolkit's network
input tensor (``FeatureExtractor.network_input``) on a real davis16-mini frame and on an odd 481x853 image.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from dense_retrieval.backbone.config import FeatureConfig
from dense_retrieval.backbone.features import FeatureExtractor
from dense_retrieval.backbone.networks import build_backbone
from dense_retrieval.backbone.preprocessing import PREPROCESSINGS, get_preprocessing, legacy_preprocessing
from dense_retrieval.data import images as image_io
from dense_retrieval.data.images import read_image
from dense_retrieval.errors import DataFormatError, InputError
from dense_retrieval.protocols import CRW, DINO, HUMMINGBIRD_FEATURES, MASKCONTRAST, SEGMENT_INDEX

MEAN = np.array([0.485, 0.456, 0.406], np.float32)
IMAGENET_STD = np.array([0.229, 0.224, 0.225], np.float32)
ODD = (481, 853)
TOLERANCE = 1e-6


# ------------------------------------------------------------------------------ the references, step by step
def _normalise(chw: np.ndarray, std: np.ndarray) -> np.ndarray:
    """color_normalize / Normalize: per channel (x - mean) / std, float32."""
    return (chw - MEAN[:, None, None]) / std[:, None, None]


def crw_load_image(path: Path, crop_size: int = -1) -> np.ndarray:
    """videowalk vos.py: load_image, the optional square resize, color_normalize. float32 [3, H, W]."""
    img = cv2.imread(str(path)).astype(np.float32)
    img = img / 255.0
    img = img[:, :, ::-1].copy()  # BGR -> RGB
    if crop_size > 0:
        img = cv2.resize(img, (crop_size, crop_size))  # resize(img, int(imgSize * 1.0), imgSize): square
    return _normalise(np.transpose(img, (2, 0, 1)), IMAGENET_STD)


def dino_read_frame(path: Path, scale: int = 480) -> np.ndarray:
    """eval_video_segmentation.py: read_frame + color_normalize. float32 [3, H, W]."""
    img = cv2.imread(str(path))
    ori_h, ori_w, _ = img.shape
    if ori_h > ori_w:
        tw = scale
        th = int((((tw * ori_h) / ori_w) // 64) * 64)
    else:
        th = scale
        tw = int((((th * ori_w) / ori_h) // 64) * 64)
    img = cv2.resize(img, (tw, th))
    img = img.astype(np.float32) / 255.0
    img = img[:, :, ::-1]
    return _normalise(np.transpose(img.copy(), (2, 0, 1)), np.array([0.228, 0.224, 0.225], np.float32))


def maskcontrast_val(path: Path, size: int = 512) -> np.ndarray:
    """MaskContrast VOC12._load_img, FixedResize (INTER_CUBIC), ToTensor, Normalize. float32 [3, S, S]."""
    img = np.array(Image.open(path).convert("RGB"))
    img = cv2.resize(img, (size, size), interpolation=cv2.INTER_CUBIC)
    chw = np.transpose(img, (2, 0, 1)).astype(np.float32) / 255.0
    return _normalise(chw, IMAGENET_STD)


def hummingbird_val(path: Path, size: int = 512) -> np.ndarray:
    """open-hummingbird-eval get_hbird_val_transforms on a PIL image: Resize (PIL bilinear), ToTensor, Normalize."""
    img = Image.open(path).convert("RGB").resize((size, size), Image.Resampling.BILINEAR)
    chw = np.transpose(np.asarray(img), (2, 0, 1)).astype(np.float32) / 255.0
    return _normalise(chw, np.array([0.229, 0.224, 0.255], np.float32))


# ------------------------------------------------------------------------------ inputs and the toolkit's side
@pytest.fixture(scope="module")
def network():
    """A small CNN: the network input does not depend on the network (ViTs only floor sizes, tested below)."""
    return build_backbone(name="resnet18", weights="random:0", layer="layer1")


@pytest.fixture(scope="module")
def odd_image(tmp_path_factory) -> Path:
    """A 481x853 image (odd on both axes, no multiple of 8 or 64): noise, so every filter difference shows."""
    path = tmp_path_factory.mktemp("odd") / "odd.png"
    rng = np.random.default_rng(22)
    Image.fromarray(rng.integers(0, 256, (*ODD, 3), dtype=np.uint8)).save(path)
    return path


@pytest.fixture(params=[pytest.param("davis-frame", marks=pytest.mark.realdata), "odd-481x853"])
def image_file(request, odd_image) -> Path:
    """A real 854x480 davis16-mini frame (skips when absent), then the odd-sized image."""
    if request.param == "odd-481x853":
        return odd_image
    root = request.getfixturevalue("davis_mini")
    return root / "JPEGImages" / "480p" / "blackswan" / "00000.jpg"


def toolkit_input(network, config: FeatureConfig, path: Path) -> np.ndarray:
    """What the toolkit feeds the network for ``path``: decode, prepare, normalise. float32 [3, H, W]."""
    extractor = FeatureExtractor(network, config)
    image = read_image(path, extractor.preprocessing.decode)
    return extractor.network_input([extractor.prepare(image)])[0].numpy()


def assert_same_input(ours: np.ndarray, reference: np.ndarray) -> None:
    assert ours.shape == reference.shape
    assert np.abs(ours - reference).max() <= TOLERANCE


# ------------------------------------------------------------------------------ one test per protocol
def test_crw_input_is_videowalk_load_image(network, image_file):
    config = CRW.features_for("resnet18").features(device="cpu")
    assert config.preprocess == "crw" and config.resize == "native"
    assert_same_input(toolkit_input(network, config, image_file), crw_load_image(image_file))


def test_crw_resized_input_is_videowalk_float_resize(network, image_file):
    """With --cropSize S CRW resizes the /255 float frame (no rounding) to S x S; --resize fixed:SxS does too."""
    config = CRW.features_for("resnet18").features(resize="fixed:320x320", device="cpu")
    assert_same_input(toolkit_input(network, config, image_file), crw_load_image(image_file, crop_size=320))


def test_dino_input_is_read_frame(network, image_file):
    config = DINO.features_for("vit_small_patch16").features(device="cpu")
    assert (config.preprocess, config.resize) == ("dino", "short:480/64")
    ours = toolkit_input(network, config, image_file)
    assert ours.shape == (3, 480, 832)  # 854 and 853 wide both floor to 832
    assert_same_input(ours, dino_read_frame(image_file))


def test_maskcontrast_input_is_fixed_resize_cubic(network, image_file):
    config = MASKCONTRAST.features_for("resnet18").features(device="cpu")
    assert (config.preprocess, config.resize) == ("maskcontrast", "fixed:512x512")
    assert_same_input(toolkit_input(network, config, image_file), maskcontrast_val(image_file))


def test_maskcontrast_labels_are_resized_nearest_by_opencv():
    rng = np.random.default_rng(5)
    labels = rng.integers(0, 21, ODD, dtype=np.uint8)
    ours = get_preprocessing("maskcontrast").resize_labels(labels, (512, 512))
    np.testing.assert_array_equal(ours, cv2.resize(labels, (512, 512), interpolation=cv2.INTER_NEAREST))
    # PIL's nearest samples pixel centres: another map, which is why the filter is part of the recipe
    pil = np.asarray(Image.fromarray(labels).resize((512, 512), Image.Resampling.NEAREST))
    assert (pil != ours).any()


def test_hummingbird_input_is_its_val_transform(network, image_file):
    config = HUMMINGBIRD_FEATURES.features(device="cpu")
    assert (config.preprocess, config.resize) == ("hummingbird", "fixed:512x512")
    ours = toolkit_input(network, config, image_file)
    assert_same_input(ours, hummingbird_val(image_file))
    # the same as torchvision's own transform, as the reproduction composes it
    from torchvision import transforms as T

    val = T.Compose(
        [T.Resize((512, 512), antialias=True), T.ToTensor(), T.Normalize([0.485, 0.456, 0.406], [0.229, 0.224, 0.255])]
    )
    assert np.abs(ours - val(Image.open(image_file).convert("RGB")).numpy()).max() <= TOLERANCE
    # the corrected constant is a recipe of its own; only the blue channel changes
    fixed = toolkit_input(network, HUMMINGBIRD_FEATURES.features(preprocess="hummingbird-imagenet"), image_file)
    assert np.abs(fixed[:2] - ours[:2]).max() == 0 and np.abs(fixed[2] - ours[2]).max() > 0.01


def test_hummingbird_input_of_a_patch14_model_is_504(odd_image):
    vit = build_backbone(name="vit_small_patch14_dinov2", weights="random:0")
    extractor = FeatureExtractor(vit, HUMMINGBIRD_FEATURES.features(device="cpu"))
    assert extractor.input_size(*ODD) == (504, 504)
    ours = extractor.network_input([extractor.prepare(read_image(odd_image))])[0].numpy()
    assert_same_input(ours, hummingbird_val(odd_image, size=504))


@pytest.mark.realdata
def test_dino_features_equal_read_frame_through_the_same_vit(davis_mini):
    """DINO's read_frame + color_normalize fed to the toolkit's ViT-S/16 (random weights) gives the toolkit's
    dino features: the last block's patch tokens after the norm, L2-normalised over channels."""
    frame = davis_mini / "JPEGImages" / "480p" / "blackswan" / "00000.jpg"
    vit = build_backbone(name="vit_small_patch16", weights="random:3")
    extractor = FeatureExtractor(vit, DINO.features_for("vit_small_patch16").features(device="cpu"))
    ours = extractor.extract([read_image(frame, extractor.preprocessing.decode)]).features
    with torch.inference_mode():
        reference = F.normalize(extractor.backbone(torch.from_numpy(dino_read_frame(frame))[None]), dim=1)
    assert ours.shape == reference.shape == (1, 384, 30, 52)
    assert (ours - reference).abs().max().item() <= 1e-5


# ------------------------------------------------------------------------------ the recipes themselves
def test_decoders_agree_on_colour_order_and_png(odd_image, tmp_path):
    rgb = read_image(odd_image, "pil")
    np.testing.assert_array_equal(read_image(odd_image, "opencv"), rgb)  # BGR flipped back to RGB
    assert image_io.DECODERS == ("pil", "opencv")
    with pytest.raises(InputError, match="unknown image decoder"):
        read_image(odd_image, "libjpeg")
    truncated = tmp_path / "cut.jpg"
    Image.fromarray(rgb).save(truncated)
    truncated.write_bytes(truncated.read_bytes()[:2000])
    with pytest.raises(DataFormatError):
        read_image(truncated, "opencv")  # refused like PIL refuses it, not half-decoded


def test_protocols_name_their_reference_recipes():
    assert CRW.features.preprocess == "crw"
    assert DINO.features.preprocess == DINO.vit_features.preprocess == "dino"
    assert MASKCONTRAST.features.preprocess == "maskcontrast"
    assert SEGMENT_INDEX.features.preprocess == "pil-bicubic"  # the toolkit's own: unchanged
    dino = get_preprocessing("dino")
    assert (dino.decode, dino.image_filter, dino.resize_on, dino.std) == (
        "opencv", "opencv-linear", "uint8", (0.228, 0.224, 0.225)
    )  # fmt: skip
    assert get_preprocessing("hummingbird").std == (0.229, 0.224, 0.255)
    assert legacy_preprocessing("bicubic").name == "pil-bicubic"
    assert legacy_preprocessing("bilinear").name == "pil-bilinear"
    assert legacy_preprocessing("lanczos") is None
    for recipe in PREPROCESSINGS.values():
        assert recipe.source and "source" not in recipe.record()
    with pytest.raises(InputError, match="unknown preprocessing 'dinov2'"):
        FeatureConfig(preprocess="dinov2")


def test_a_float_resizing_recipe_is_batched_apart_from_native_frames(network):
    """A crw extractor with short:N yields float inputs for resized images and uint8 for the ones already
    at size: they are never stacked together (uint8 values would go in unscaled)."""
    extractor = FeatureExtractor(network, CRW.features.features(resize="short:32", batch_size=4, device="cpu"))
    rng = np.random.default_rng(1)
    small, large = (rng.integers(0, 256, (32, 48, 3), dtype=np.uint8) for _ in range(2))
    large = cv2.resize(large, (96, 64))
    assert extractor.prepare(small).dtype == np.uint8 and extractor.prepare(large).dtype == np.float32
    together = [maps.features for _, maps in extractor.stream([small, cv2.resize(large, (48, 32)), large])]
    alone = [extractor.extract([image]).features for image in (small, cv2.resize(large, (48, 32)), large)]
    for batched, single in zip(together, alone, strict=True):
        assert torch.allclose(batched, single, atol=1e-5)
