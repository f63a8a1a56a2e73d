"""Backbones: the architecture table, networks built by name, dense features, and their weights.

specs.py     every architecture fact in one torch-free table (layers, channels, strides, heads, defaults)
config.py    BackboneConfig and FeatureConfig: plain, checked settings (torch-free)
preprocessing.py  each reference's way from a file to the network input, as named recipes (torch-free)
networks.py  build_backbone: a truncated, stride-adjusted, frozen network (DenseBackbone)
vit.py       vision transformers through timm: patch tokens of blocks.N as an NCHW map (ViTBody)
features.py  FeatureExtractor: uint8 images -> FeatureMaps (NCHW + stride), streamed in batches
weights/     the registry of known weights, safe checkpoint loading, verified downloads
"""

from .._lazy import lazy_exports

__getattr__, __dir__ = lazy_exports(
    __name__,
    {
        "ARCHITECTURES": ".specs",
        "ARCHITECTURE_NAMES": ".specs",
        "ArchitectureSpec": ".specs",
        "LayerInfo": ".specs",
        "get_spec": ".specs",
        "BackboneConfig": ".config",
        "FeatureConfig": ".config",
        "Preprocessing": ".preprocessing",
        "PREPROCESSINGS": ".preprocessing",
        "get_preprocessing": ".preprocessing",
        "DenseBackbone": ".networks",
        "build_backbone": ".networks",
        "FeatureExtractor": ".features",
        "FeatureMaps": ".features",
        "ViTTokens": ".vit",
    },
)
