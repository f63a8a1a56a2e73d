"""Readers and writers: images, label PNGs, videos, the DAVIS and VOC layouts, feature files, synthetic sets.

Every writer is atomic (:mod:`.atomic`); every reader turns a file that is not what it should be into a
DataFormatError naming it. Nothing here computes features or scores.
"""

from .._lazy import lazy_exports

__getattr__, __dir__ = lazy_exports(
    __name__,
    {
        "write_json": ".atomic",
        "read_image": ".images",
        "write_image": ".images",
        "collect_images": ".images",
        "read_label_png": ".masks",
        "write_label_png": ".masks",
        "open_video": ".video",
        "DavisDataset": ".davis",
        "write_davis_sequence": ".davis",
        "write_image_set": ".davis",
        "VOC_CLASSES": ".voc",
        "VocDataset": ".voc",
        "make_synthetic_davis": ".synth",
        "make_synthetic_voc": ".synth",
        "make_synthetic_ade20k": ".synth",
        "open_split": ".segmentation_sets",
        "LabelledImages": ".segmentation_sets",
    },
)
