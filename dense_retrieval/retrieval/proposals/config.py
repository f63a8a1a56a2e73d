"""How mask proposals are made: the methods and their settings (torch-free, so CLI help stays fast)."""

from __future__ import annotations

from dataclasses import asdict, dataclass

from ...errors import InputError

PROPOSAL_METHODS: tuple[str, ...] = ("gt", "coco", "kmeans", "superpixels", "saliency")


@dataclass(frozen=True)
class ProposalConfig:
    """How masks are proposed. Only the fields of the chosen ``method`` matter.

    Attributes:
        method: one of :data:`PROPOSAL_METHODS`.
        min_area: masks with fewer pixels (at the working size) are dropped and counted.
        clusters: k-means K (MaskContrast authors: 5).
        seed: k-means initialisation seed (results are deterministic).
        superpixels: ``"felzenszwalb"`` or ``"slic"``.
        felzenszwalb_scale: higher means larger segments.
        slic_segments: approximate number of SLIC segments.
        gt_root: VOC root (with SegmentationClass/), or a folder of label PNGs named like the images;
            None: the VOC layout around the image (``../SegmentationClass``).
        gt_kind: ``"class"`` (SegmentationClass) or ``"object"`` (SegmentationObject).
        include_background: ``gt`` class masks include class 0.
        coco_json: the COCO-format annotation file (``coco``).
        saliency_dir: folder of saliency maps named like the images (``saliency``).
        saliency_threshold: a pixel is salient when its value / 255 is above this.
    """

    method: str = "kmeans"
    min_area: int = 32
    clusters: int = 5
    seed: int = 0
    superpixels: str = "felzenszwalb"
    felzenszwalb_scale: float = 400.0
    slic_segments: int = 40
    gt_root: str | None = None
    gt_kind: str = "class"
    include_background: bool = False
    coco_json: str | None = None
    saliency_dir: str | None = None
    saliency_threshold: float = 0.5

    def __post_init__(self) -> None:
        if self.method not in PROPOSAL_METHODS:
            raise InputError(
                f"unknown proposal method {self.method!r}", hint=f"use one of {', '.join(PROPOSAL_METHODS)}"
            )
        if self.method == "coco" and not self.coco_json:
            raise InputError("proposal method 'coco' needs a COCO JSON file", hint="pass --coco FILE.json")
        if self.method == "saliency" and not self.saliency_dir:
            raise InputError("proposal method 'saliency' needs a folder of saliency maps", hint="pass --saliency DIR")
        if self.gt_kind not in ("class", "object"):
            raise InputError(f"unknown gt kind {self.gt_kind!r}", hint="use 'class' or 'object'")
        if self.superpixels not in ("felzenszwalb", "slic"):
            raise InputError(f"unknown superpixel algorithm {self.superpixels!r}", hint="use 'felzenszwalb' or 'slic'")
        if self.clusters < 1:
            raise InputError(f"k-means needs at least 1 cluster, got {self.clusters}")

    def describe(self) -> dict:
        """The settings that matter for ``method`` (recorded in reports)."""
        keys = {"method", "min_area"} | _METHOD_KEYS[self.method]
        return {k: v for k, v in asdict(self).items() if k in keys}


_METHOD_KEYS = {
    "gt": {"gt_root", "gt_kind", "include_background"},
    "coco": {"coco_json"},
    "kmeans": {"clusters", "seed"},
    "superpixels": {"superpixels", "felzenszwalb_scale", "slic_segments"},
    "saliency": {"saliency_dir", "saliency_threshold"},
}
