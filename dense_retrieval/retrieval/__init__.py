"""Segment retrieval: images -> dense features -> mask proposals -> pooled segments -> index -> hits.

config.py        pooling modes and the VOC retrieval protocol's settings (torch-free)
proposals/       mask proposals: gt, coco, kmeans, superpixels, saliency
pooling.py       mask-weighted mean of a feature map, L2-normalised (pure torch)
segments.py      segments as stored: image, method, COCO RLE mask, bbox, area, label
index/           SegmentIndex: FAISS vectors + SQLite metadata, atomic commits
pipeline.py      build and add to indexes, query by mask / proposals (features needed)
queries.py       hits, queries by stored segment, batches of queries (JSON lines), gallery pictures (torch-free)
voc_protocol.py  the MaskContrast protocol on PASCAL VOC (21- and 7-class mIoU)
"""

from .._lazy import lazy_exports

__getattr__, __dir__ = lazy_exports(
    __name__,
    {
        "POOLING_MODES": ".config",
        "VocProtocol": ".config",
        "pool_masks": ".pooling",
        "Segment": ".segments",
        "SegmentRecord": ".segments",
        "SegmentIndex": ".index",
        "Hit": ".queries",
        "QueryResult": ".queries",
        "add_images": ".pipeline",
        "build_index": ".pipeline",
        "extractor_for_index": ".pipeline",
        "iter_segments": ".pipeline",
        "query_mask": ".pipeline",
        "query_proposals": ".pipeline",
        "query_segment": ".queries",
        "render_gallery": ".queries",
        "evaluate_voc": ".voc_protocol",
    },
)
