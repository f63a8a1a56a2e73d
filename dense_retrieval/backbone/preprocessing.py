"""How an image file becomes the network input, as each reference script does it: named, frozen recipes.

The same weights give the same features only on the same input tensor, so every step that changes a
number is part of a recipe: the decoder (and with it the colour order), the resize library and filter,
what the resize works on (the 8-bit image, rounded back to 8 bits, or the /255 float image), the
normalisation constants, and the filter for label maps resized beside the image. Every step was read in
the reference's own code (commits named below); each recipe is pinned by a test that rebuilds that code
step by step in numpy/OpenCV and compares the network input tensor (tests/test_preprocessing.py).

=================== ======= ============== ========= ============== ======================================
recipe              decode  image filter   resize on label filter   std (mean is ImageNet's everywhere)
=================== ======= ============== ========= ============== ======================================
crw                 opencv  opencv-linear  float     opencv-nearest (0.229, 0.224, 0.225)
dino                opencv  opencv-linear  uint8     opencv-nearest (0.228, 0.224, 0.225): DINO's own red std
maskcontrast        pil     opencv-cubic   uint8     opencv-nearest (0.229, 0.224, 0.225)
hummingbird         pil     pil-bilinear   uint8     opencv-nearest (0.229, 0.224, 0.255): its code's typo
hummingbird-imagenet pil    pil-bilinear   uint8     opencv-nearest (0.229, 0.224, 0.225): the typo fixed
pil-bicubic         pil     pil-bicubic    uint8     pil-nearest    (0.229, 0.224, 0.225): the toolkit's own
pil-bilinear        pil     pil-bilinear   uint8     pil-nearest    (0.229, 0.224, 0.225)
=================== ======= ============== ========= ============== ======================================

Every recipe divides by 255 in float32 (after the resize, or before it for ``resize on float``) and
applies ``(x - mean) / std`` per channel; the network always receives RGB.
``opencv`` decoding is ``cv2.imread`` (BGR, applying EXIF orientation), flipped to RGB; ``pil`` is
``Image.open(...).convert("RGB")``. ``pil-bilinear`` and ``pil-bicubic`` antialias when shrinking (PIL
widens the filter), the OpenCV filters do not. Records written before recipes existed name only a PIL
filter (``interpolation``): they read as ``pil-bicubic`` / ``pil-bilinear``, what made them
(:func:`legacy_preprocessing`).

Nothing here imports torch, numpy, OpenCV or PIL at module level: the CLI reads the names for ``--help``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..errors import InputError

if TYPE_CHECKING:
    import numpy as np

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
DINO_STD = (0.228, 0.224, 0.225)
"""eval_video_segmentation.py's ``color_normalize`` default: 0.228 for red, not ImageNet's 0.229."""
HUMMINGBIRD_STD = (0.229, 0.224, 0.255)
"""open-hummingbird-eval's ``IMAGENET_STD`` (hbird/utils/transforms.py): 0.255 for blue, a typo of 0.225."""

DECODERS = ("pil", "opencv")
IMAGE_FILTERS = ("pil-bilinear", "pil-bicubic", "opencv-linear", "opencv-cubic")
LABEL_FILTERS = ("pil-nearest", "opencv-nearest")
RESIZE_ON = ("uint8", "float")


@dataclass(frozen=True)
class Preprocessing:
    """One reference's way from an image file to the network input.

    Attributes:
        name: what users type (``--preprocess dino``).
        decode: ``"pil"`` (``Image.open().convert("RGB")``) or ``"opencv"`` (``cv2.imread``: BGR, then
            flipped to RGB). The network always receives RGB.
        image_filter: the resize library and filter: ``pil-bilinear``, ``pil-bicubic`` (PIL, antialiased
            when shrinking), ``opencv-linear``, ``opencv-cubic`` (``cv2.resize``, no antialias).
        resize_on: ``"uint8"``: the decoded 8-bit image is resized and the result rounded to 8 bits
            (DINO, MaskContrast, Hummingbird); ``"float"``: the image is divided by 255 first and resized
            as float32, no rounding (CRW's loader).
        label_filter: how label maps and masks are resized beside the image: ``opencv-nearest``
            (``cv2.INTER_NEAREST``: source pixel ``floor(x * scale)``) or ``pil-nearest`` (pixel centres).
        mean, std: per RGB channel, applied as ``(x / 255 - mean) / std``.
        source: where the recipe comes from, for people (not part of the record).
    """

    name: str
    decode: str
    image_filter: str
    resize_on: str
    label_filter: str
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD
    source: str = field(default="", compare=False)

    def __post_init__(self) -> None:
        for value, allowed, what in (
            (self.decode, DECODERS, "decoder"),
            (self.image_filter, IMAGE_FILTERS, "image filter"),
            (self.resize_on, RESIZE_ON, "resize input"),
            (self.label_filter, LABEL_FILTERS, "label filter"),
        ):
            if value not in allowed:
                raise InputError(f"unknown {what} {value!r}", hint=f"use one of {', '.join(allowed)}")
        if self.resize_on == "float" and not self.image_filter.startswith("opencv"):
            raise InputError(f"recipe {self.name!r}: float resizing is done with OpenCV", hint="use an opencv filter")

    def record(self) -> dict[str, Any]:
        """What run records keep: every field that changes a number (``source`` left out)."""
        return {
            "name": self.name,
            "decode": self.decode,
            "image_filter": self.image_filter,
            "resize_on": self.resize_on,
            "label_filter": self.label_filter,
            "mean": list(self.mean),
            "std": list(self.std),
        }

    def resize(self, image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
        """Resize a uint8 [H, W, 3] RGB image to ``size`` (H, W) by this recipe.

        Returns:
            uint8 [h, w, 3] (``resize_on="uint8"``) or float32 [h, w, 3] in [0, 1] (``"float"``).
        """
        import numpy as np

        height, width = size
        library, kind = self.image_filter.split("-")
        if self.resize_on == "float":
            image = image.astype(np.float32) / np.float32(255.0)
        if library == "opencv":
            import cv2

            flag = cv2.INTER_LINEAR if kind == "linear" else cv2.INTER_CUBIC
            return cv2.resize(np.ascontiguousarray(image), (width, height), interpolation=flag)
        from PIL import Image

        resample = Image.Resampling.BILINEAR if kind == "bilinear" else Image.Resampling.BICUBIC
        return np.asarray(Image.fromarray(np.ascontiguousarray(image)).resize((width, height), resample))

    def resize_labels(self, labels: np.ndarray, size: tuple[int, int]) -> np.ndarray:
        """Nearest-neighbour resize of a label map or mask [H, W] (uint8, bool or float32) to ``size`` (H, W)."""
        import numpy as np

        height, width = size
        if labels.shape == (height, width):
            return labels.copy()
        if self.label_filter == "opencv-nearest":
            import cv2

            source = labels.astype(np.uint8) if labels.dtype == bool else np.ascontiguousarray(labels)
            resized = cv2.resize(source, (width, height), interpolation=cv2.INTER_NEAREST)
            return resized.astype(bool) if labels.dtype == bool else resized
        from PIL import Image

        source = labels.astype(np.uint8) if labels.dtype == bool else np.ascontiguousarray(labels)
        resized = np.asarray(Image.fromarray(source).resize((width, height), Image.Resampling.NEAREST))
        return resized.astype(bool) if labels.dtype == bool else resized


_VIDEOWALK = "ajabri/videowalk@047f3f4 code/data/vos.py"
_DINO = "facebookresearch/dino@7c446df eval_video_segmentation.py"
_MASKCONTRAST = "wvangansbeke/Unsupervised-Semantic-Segmentation@dfd5fa0 segmentation/"
_HUMMINGBIRD = "vpariza/open-hummingbird-eval@5e79da2 hbird/utils/transforms.py"

PREPROCESSINGS: dict[str, Preprocessing] = {
    p.name: p
    for p in (
        Preprocessing(
            "crw", "opencv", "opencv-linear", "float", "opencv-nearest",
            source=f"{_VIDEOWALK}: load_image (cv2.imread, float32 / 255, BGR->RGB), cv2.resize (INTER_LINEAR) of "
            "that float frame only when --cropSize > 0 (the published DAVIS command uses -1: native frames), "
            "color_normalize with ImageNet mean/std",
        ),
        Preprocessing(
            "dino", "opencv", "opencv-linear", "uint8", "opencv-nearest", std=DINO_STD,
            source=f"{_DINO}: read_frame (cv2.imread, cv2.resize INTER_LINEAR of the uint8 frame, / 255, BGR->RGB), "
            "color_normalize with std (0.228, 0.224, 0.225)",
        ),
        Preprocessing(
            "maskcontrast", "pil", "opencv-cubic", "uint8", "opencv-nearest",
            source=f"{_MASKCONTRAST}: VOC12._load_img (PIL, RGB), FixedResize 512x512 (cv2.resize INTER_CUBIC image, "
            "INTER_NEAREST labels), ToTensor, Normalize with ImageNet mean/std (utils/common_config.py)",
        ),
        Preprocessing(
            "hummingbird", "pil", "pil-bilinear", "uint8", "opencv-nearest", std=HUMMINGBIRD_STD,
            source=f"{_HUMMINGBIRD}: get_hbird_val_transforms: Resize((S, S), antialias=True) of the PIL image "
            "(PIL bilinear), ToTensor, Normalize with std (0.229, 0.224, 0.255) as its code has it",
        ),
        Preprocessing(
            "hummingbird-imagenet", "pil", "pil-bilinear", "uint8", "opencv-nearest",
            source=f"{_HUMMINGBIRD} with ImageNet's std (0.229, 0.224, 0.225): the 0.255 typo corrected",
        ),
        Preprocessing(
            "pil-bicubic", "pil", "pil-bicubic", "uint8", "pil-nearest",
            source="dense-retrieval's own: PIL decode, PIL bicubic resize, ImageNet mean/std (all records "
            "written before recipes existed, unless they name bilinear)",
        ),
        Preprocessing(
            "pil-bilinear", "pil", "pil-bilinear", "uint8", "pil-nearest",
            source="dense-retrieval's DINO ViT input before recipes existed: PIL bilinear, ImageNet mean/std",
        ),
    )
}  # fmt: skip
PREPROCESSING_NAMES: tuple[str, ...] = tuple(PREPROCESSINGS)


def get_preprocessing(name: str) -> Preprocessing:
    """The recipe called ``name``.

    Raises:
        InputError: no such recipe (the known ones are listed).
    """
    try:
        return PREPROCESSINGS[name]
    except (KeyError, TypeError):
        raise InputError(
            f"unknown preprocessing {name!r}", hint=f"use one of {', '.join(PREPROCESSING_NAMES)}"
        ) from None


def legacy_preprocessing(interpolation: Any) -> Preprocessing | None:
    """The recipe that made a record written before recipes existed, from its ``interpolation``; None if unknown.

    Those runs decoded with PIL, resized with PIL's ``bicubic`` or ``bilinear`` filter on the 8-bit image,
    normalised with ImageNet's mean and std and resized label maps with PIL's nearest filter.
    """
    return {"bicubic": PREPROCESSINGS["pil-bicubic"], "bilinear": PREPROCESSINGS["pil-bilinear"]}.get(interpolation)
