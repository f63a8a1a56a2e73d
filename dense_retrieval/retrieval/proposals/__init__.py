"""Mask proposals: boolean masks per image, from ground truth, COCO files, features, pixels or saliency.

Methods (``ProposalConfig.method``):

- ``gt``: VOC ``SegmentationClass`` (one mask per class present, background and void excluded) or
  ``SegmentationObject`` PNGs (one mask per object id), labels known.
- ``coco``: a COCO-format JSON (RLE or polygons, via pycocotools), matched to images by file name;
  masks from any external generator can be indexed this way. Labels = ``category_id``.
- ``kmeans``: per-image k-means of the dense feature grid (K=5): the authors' segments for plain
  MoCo backbones (REFERENCES.md, "Segment retrieval"). Needs the image's features.
- ``superpixels``: scikit-image Felzenszwalb or SLIC segments.
- ``saliency``: one mask per image from a folder of saliency maps (MaskContrast), thresholded.

Masks come back at the working image size; masks read from files must have the size of the original
image (else DataFormatError) and are resized with nearest neighbour when the working size differs.
Empty masks and masks smaller than ``min_area`` pixels are dropped and counted in :class:`ProposalStats`.
"""

from ..._lazy import lazy_exports

__getattr__, __dir__ = lazy_exports(
    __name__,
    {
        "PROPOSAL_METHODS": ".config",
        "ProposalConfig": ".config",
        "ImageProposals": ".proposer",
        "ProposalStats": ".proposer",
        "Proposer": ".proposer",
        "kmeans_masks": ".clustering",
        "superpixel_masks": ".clustering",
    },
)
