"""Pictures shared by the CLI and the notebooks: overlays, galleries, strips, skeletons, charts, feature PCA.

All functions return ``uint8 [H, W, 3]`` RGB arrays (or matplotlib figures for charts); writing them
to disk is the caller's job (``dense_retrieval.data.images.write_image``).
"""

from .._lazy import lazy_exports

__getattr__, __dir__ = lazy_exports(
    __name__,
    {
        "class_iou_chart": ".charts",
        "figure_to_rgb": ".charts",
        "frame_scores_chart": ".charts",
        "jf_bar_chart": ".charts",
        "training_chart": ".charts",
        "caption": ".layout",
        "captioned_row": ".layout",
        "hstack": ".layout",
        "resize_to_height": ".layout",
        "tile": ".layout",
        "masks_to_labels": ".overlay",
        "overlay_labels": ".overlay",
        "feature_pca_rgb": ".pca",
        "draw_skeleton": ".skeleton",
        "skeleton_strip": ".skeleton",
        "label_strip": ".strip",
        "overlay_frame": ".strip",
        "thumbnail": ".strip",
    },
)
