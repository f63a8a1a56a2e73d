"""dense-retrieval: zero-finetune segment retrieval, dense patch retrieval and video label propagation.

Three roads from one pretrained backbone (docs/architecture.md):

    images --> features --> mask proposals --> pooled segments --> SegmentIndex --> hits / VOC mIoU
    images --> features --> patches + soft labels --> PatchMemory --> nearest patches --> mIoU (Hummingbird)
    frames --> features --> label propagation --> masks --> J&F

The names below are the public API; they are imported on first use, so ``import dense_retrieval``
is instant and imports no torch. ``protocols`` holds the named presets (CRW, DINO, MaskContrast),
``data`` the readers and writers, ``viz`` the pictures.
"""

from ._lazy import lazy_exports

__version__ = "0.1.0"

__getattr__, __dir__ = lazy_exports(
    __name__,
    {
        # backbones and features
        "BackboneConfig": ".backbone.config",
        "FeatureConfig": ".backbone.config",
        "FeatureExtractor": ".backbone.features",
        "FeatureMaps": ".backbone.features",
        "build_backbone": ".backbone.networks",
        # named protocols (feature side + algorithm side)
        "protocols": "",
        # video: propagation and J&F
        "DavisDataset": ".data.davis",
        "propagate_davis": ".vos.davis_run",
        "run_davis_evaluation": ".vos.davis_eval",
        # segment retrieval
        "SegmentIndex": ".retrieval.index",
        "ProposalConfig": ".retrieval.proposals.config",
        "Proposer": ".retrieval.proposals.proposer",
        "build_index": ".retrieval.pipeline",
        "add_images": ".retrieval.pipeline",
        "query_mask": ".retrieval.pipeline",
        "query_proposals": ".retrieval.pipeline",
        "query_segment": ".retrieval.queries",
        "render_gallery": ".retrieval.queries",
        "VocDataset": ".data.voc",
        "VocProtocol": ".retrieval.config",
        "evaluate_voc": ".retrieval.voc_protocol",
        # dense (patch) retrieval: the Hummingbird protocol
        "evaluate_dense": ".retrieval.dense.evaluate",
        "PatchMemory": ".retrieval.dense.memory",
        # files and pictures
        "read_image": ".data.images",
        "write_image": ".data.images",
        "data": "",
        "viz": "",
        "DenseRetrievalError": ".errors",
    },
)
