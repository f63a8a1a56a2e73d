"""dense-retrieval: zero-finetune segment retrieval and video label propagation.

Two roads from one pretrained backbone (DESIGN.md):

    images --> features --> mask proposals --> pooled segments --> SegmentIndex --> hits / VOC mIoU
    frames --> features --> label propagation --> masks --> J&F
"""

__version__ = "0.1.0"
