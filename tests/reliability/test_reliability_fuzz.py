"""Property-based fuzzing of the readers: label PNGs (DAVIS, VOC, results), images, COCO JSON, checkpoints.

The property, for every generated file: the reader returns what its contract says (a ``uint8 [H, W]``
label map of the declared size, an RGB image, masks of the image size, a state dict of tensors) or
raises one of the toolkit's errors (:class:`~dense_retrieval.errors.DenseRetrievalError`); it never
crashes the process, never hangs, and never allocates more than :data:`BUDGET_MIB` beyond what the
process held before.

Every example runs in a forked child: a segfault, a hang (:data:`TIMEOUT_S`) or an allocation past the
budget (the child's address space is capped at its size plus the budget, so such an allocation fails
with MemoryError, which is not one of ours) is reported as a failure of that example, with the input
that caused it, instead of killing the test run.

Examples per reader: ``$DENSE_RETRIEVAL_FUZZ_EXAMPLES`` (default 60); the runs are derandomized so CI
sees the same inputs every time; set ``DENSE_RETRIEVAL_FUZZ_RANDOM=1`` to explore new ones.
"""

from __future__ import annotations

import importlib
import io
import json
import os
import pickle
import resource
import select
import signal
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from tests.reliability import hostile

BUDGET_MIB = 512
TIMEOUT_S = 30
EXAMPLES = int(os.environ.get("DENSE_RETRIEVAL_FUZZ_EXAMPLES", "60"))
FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
    derandomize=not os.environ.get("DENSE_RETRIEVAL_FUZZ_RANDOM"),
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.function_scoped_fixture],
)


def _module(*names: str):
    """The first module that imports (the package is being reorganised; both layouts work)."""
    for name in names:
        try:
            return importlib.import_module(name)
        except ImportError:
            continue
    raise ImportError(names)


# ------------------------------------------------------------------------------------------ isolation
def _virtual_size() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmSize:"):
            return int(line.split()[1]) * 1024
    return 0


def isolated(function, *args):
    """Run ``function(*args)`` in a forked child; returns ("ok", summary) or ("error", class, ours, message).

    Raises AssertionError for a crash (signal), a hang or a child that died without reporting.
    """
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: cap memory, run, report, leave without cleanup
        os.close(read_end)
        try:
            limit = _virtual_size() + BUDGET_MIB * 2**20
            resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
            from dense_retrieval.errors import DenseRetrievalError

            try:
                report = ("ok", function(*args))
            except BaseException as error:  # noqa: BLE001 - reported to the parent
                message = " ".join(str(error).split())[:300]
                report = ("error", type(error).__qualname__, isinstance(error, DenseRetrievalError), message)
            os.write(write_end, pickle.dumps(report))
        finally:
            os._exit(0)
    os.close(write_end)
    chunks = []
    try:
        while True:
            ready, _, _ = select.select([read_end], [], [], TIMEOUT_S)
            if not ready:
                os.kill(pid, signal.SIGKILL)
                os.waitpid(pid, 0)
                raise AssertionError(f"the reader hung for more than {TIMEOUT_S} s")
            chunk = os.read(read_end, 1 << 16)
            if not chunk:
                break
            chunks.append(chunk)
    finally:
        os.close(read_end)
    _, status = os.waitpid(pid, 0)
    if os.WIFSIGNALED(status):
        raise AssertionError(f"the reader crashed the process with signal {os.WTERMSIG(status)}")
    if not chunks:
        raise AssertionError("the reader's process died without a word")
    return pickle.loads(b"".join(chunks))


def expect_contract(report, check=None) -> None:
    """An 'ok' passing ``check``, or one of our errors; anything else fails with what happened."""
    if report[0] == "error":
        _, name, ours, message = report
        assert ours, f"{name}: {message}"
        return
    if check is not None:
        check(report[1])


# ------------------------------------------------------------------------------------------ PNG bytes
MODES = ["1", "L", "P", "I;16", "RGB", "RGBA", "LA"]


@st.composite
def pil_png(draw) -> bytes:
    mode = draw(st.sampled_from(MODES))
    height, width = draw(st.integers(1, 24)), draw(st.integers(1, 24))
    seed = draw(st.integers(0, 2**16))
    rng = np.random.default_rng(seed)
    if mode == "I;16":
        top = draw(st.sampled_from([2, 255, 256, 65535]))
        values = rng.integers(0, top + 1, (height, width)).astype(np.uint16)
        image = Image.fromarray(values)
    else:
        channels = {"1": 1, "L": 1, "P": 1, "RGB": 3, "RGBA": 4, "LA": 2}[mode]
        raw = rng.integers(0, 256, height * width * channels, dtype=np.uint8).tobytes()
        image = Image.frombytes("L" if mode in ("1", "P") else mode, (width, height), raw)
        if mode in ("1", "P"):
            image = image.convert(mode)
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def _rewrite_header(data: bytes, width: int, height: int, fix_crc: bool) -> bytes:
    if len(data) < 33 or data[12:16] != b"IHDR":
        return data
    header = struct.pack(">II", width, height) + data[24:29]
    crc = struct.pack(">I", zlib.crc32(b"IHDR" + header) & 0xFFFFFFFF) if fix_crc else data[29:33]
    return data[:16] + header + crc + data[33:]


@st.composite
def mutated(draw, base) -> bytes:
    data = bytearray(draw(base))
    for _ in range(draw(st.integers(0, 4))):
        kind = draw(st.sampled_from(["truncate", "flip", "insert", "header"]))
        if kind == "truncate" and data:
            del data[draw(st.integers(0, len(data) - 1)) :]
        elif kind == "flip" and data:
            data[draw(st.integers(0, len(data) - 1))] ^= draw(st.integers(1, 255))
        elif kind == "insert":
            at = draw(st.integers(0, len(data)))
            data[at:at] = draw(st.binary(max_size=16))
        elif kind == "header":
            size = st.one_of(st.integers(0, 64), st.integers(0, 2**31 - 1), st.just(2**32 - 1))
            data = bytearray(_rewrite_header(bytes(data), draw(size), draw(size), draw(st.booleans())))
    return bytes(data)


@st.composite
def declared_png(draw) -> bytes:
    """Valid-looking PNGs whose header declares large sizes with almost no data."""
    colour, depth = draw(st.sampled_from([(0, 1), (0, 8), (0, 16), (2, 8), (2, 16), (3, 8), (4, 8), (6, 8), (6, 16)]))
    width = draw(st.one_of(st.integers(1, 64), st.integers(1, 70000)))
    height = draw(st.one_of(st.integers(1, 64), st.integers(1, 70000)))
    return hostile.png_declaring(width, height, bit_depth=depth, colour=colour)


PNG_INPUTS = st.one_of(
    pil_png(),
    mutated(pil_png()),
    declared_png(),
    st.binary(max_size=256),
    st.binary(max_size=64).map(lambda tail: b"\x89PNG\r\n\x1a\n" + tail),
)


def _write(tmp_path: Path, name: str, data: bytes) -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


def _label_shape(labels) -> tuple:
    assert isinstance(labels, np.ndarray) and labels.dtype == np.uint8 and labels.ndim == 2, labels
    return labels.shape


@FUZZ
@given(data=PNG_INPUTS, binary=st.booleans())
def test_label_png_reader(tmp_path_factory, data, binary):
    masks = _module("dense_retrieval.data.masks")
    path = _write(tmp_path_factory.mktemp("png"), "labels.png", data)
    report = isolated(lambda: _label_shape(masks.read_label_png(path, binary=binary)))
    expect_contract(report)


@FUZZ
@given(data=PNG_INPUTS, binary=st.booleans(), objects=st.integers(0, 3))
def test_result_mask_reader(tmp_path_factory, data, binary, objects):
    results = _module("dense_retrieval.data.davis_results")
    path = _write(tmp_path_factory.mktemp("png"), "00001.png", data)
    report = isolated(lambda: _label_shape(results.read_result_mask(path, (16, 16), objects, binary, "seq")))
    expect_contract(report, lambda shape: shape == (16, 16))


def _rgb_shape(image) -> tuple:
    assert isinstance(image, np.ndarray) and image.dtype == np.uint8 and image.ndim == 3 and image.shape[2] == 3
    return image.shape


@FUZZ
@given(data=PNG_INPUTS)
def test_image_reader(tmp_path_factory, data):
    images = _module("dense_retrieval.data.images")
    path = _write(tmp_path_factory.mktemp("png"), "image.png", data)
    expect_contract(isolated(lambda: _rgb_shape(images.read_image(path))))


# ------------------------------------------------------------------------------------------ COCO JSON
NUMBERS = st.one_of(
    st.integers(-(2**40), 2**40),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([0, 1, 31, 32, 47, 48, 1e10, 1e11, 1e30, -1e30, -0.5]),
)
JUNK = st.recursive(
    st.one_of(st.none(), st.booleans(), NUMBERS, st.text(max_size=8)),
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=6), inner, max_size=4)),
    max_leaves=12,
)
POLYGON = st.lists(NUMBERS, min_size=0, max_size=12)
COUNTS = st.one_of(
    st.lists(st.one_of(st.integers(-5, 2000), st.integers(0, 2**40)), max_size=8),
    st.text(alphabet=st.characters(min_codepoint=32, max_codepoint=126), max_size=24),
)
SIZE = st.one_of(st.just([32, 48]), st.lists(st.one_of(st.integers(-2, 100), NUMBERS), min_size=0, max_size=3))
SEGMENTATION = st.one_of(
    st.lists(POLYGON, max_size=3),
    st.fixed_dictionaries({"size": SIZE, "counts": COUNTS}),
    JUNK,
)


@st.composite
def coco_document(draw):
    image = {"id": 1, "file_name": "image.png", "height": 32, "width": 48}
    if draw(st.booleans()):
        image.update(draw(st.dictionaries(st.sampled_from(["id", "file_name", "height", "width"]), JUNK, max_size=2)))
    annotations = draw(
        st.lists(
            st.fixed_dictionaries(
                {"id": st.integers(0, 9), "image_id": st.sampled_from([1, 1, 1, 2, "1"]), "segmentation": SEGMENTATION},
                optional={"category_id": st.one_of(st.integers(-3, 100), JUNK)},
            ),
            max_size=4,
        )
    )
    document = {"images": [image], "annotations": annotations}
    return draw(st.one_of(st.just(document), JUNK)) if draw(st.integers(0, 9)) == 0 else document


def _masks_of(files_module, path: Path):
    proposals = files_module.CocoProposals(path)
    masks, labels = proposals.masks(Path("image.png"), (32, 48))
    assert masks.dtype == bool and masks.shape[1:] == (32, 48) and len(labels) == len(masks), masks.shape
    return masks.shape


@FUZZ
@given(document=coco_document())
def test_coco_reader(tmp_path_factory, document):
    files = _module("dense_retrieval.retrieval.proposals.files", "dense_retrieval.proposals.files")
    path = tmp_path_factory.mktemp("coco") / "ann.json"
    path.write_text(json.dumps(document, allow_nan=True))
    expect_contract(isolated(lambda: _masks_of(files, path)))


@FUZZ
@given(size=SIZE, counts=COUNTS)
def test_stored_rle_decoder(size, counts):
    """Segments read back from an index database (a tampered one included) decode or raise ours."""
    segments = _module("dense_retrieval.retrieval.segments", "dense_retrieval.segments")
    expect_contract(isolated(lambda: segments.decode_rle({"size": size, "counts": counts}).shape))


# ------------------------------------------------------------------------------------------ checkpoints
@st.composite
def tensors(draw):
    import torch

    dtype = draw(st.sampled_from(["float32", "float16", "int64", "uint8", "bool"]))
    shape = draw(st.lists(st.integers(0, 3), max_size=3))
    count = int(np.prod(shape)) if shape else 1
    values = draw(st.lists(st.floats(allow_nan=True, allow_infinity=True, width=16), min_size=count, max_size=count))
    array = np.asarray(values, dtype=np.float32).reshape(shape)
    if dtype in ("int64", "uint8", "bool"):
        array = np.nan_to_num(array, nan=0, posinf=1, neginf=0).clip(0, 200)
    return torch.from_numpy(np.array(array, dtype=dtype, ndmin=1).reshape(shape))


KEYS = st.one_of(
    st.sampled_from(["conv1.weight", "bn1.running_mean", "fc.weight", "features.0.0.weight", "module.encoder_q.x"]),
    st.text(max_size=12),
)


@st.composite
def checkpoint_payload(draw):
    leaf = st.one_of(tensors(), st.integers(), st.text(max_size=6), st.none())
    state = draw(st.dictionaries(KEYS, leaf, max_size=5))
    wrapper = draw(st.sampled_from([None, "state_dict", "model", "teacher", "list"]))
    if wrapper == "list":
        return [state]
    return state if wrapper is None else {wrapper: state, "epoch": 1}


@st.composite
def checkpoint_bytes(draw) -> bytes:
    import torch

    buffer = io.BytesIO()
    torch.save(draw(checkpoint_payload()), buffer)
    base = buffer.getvalue()
    return draw(st.one_of(st.just(base), mutated(st.just(base)), st.binary(max_size=128)))


def _checkpoint_summary(checkpoints, path: Path):
    loaded = checkpoints.load_checkpoint(path)
    import torch

    assert all(isinstance(v, torch.Tensor) for v in loaded.state_dict.values())
    assert all(torch.isfinite(v).all() for v in loaded.state_dict.values() if v.is_floating_point()), "non-finite"
    return len(loaded.state_dict)


@FUZZ
@given(data=checkpoint_bytes())
def test_checkpoint_reader(tmp_path_factory, data):
    checkpoints = _module("dense_retrieval.backbone.weights.checkpoints", "dense_retrieval.checkpoints")
    path = _write(tmp_path_factory.mktemp("ckpt"), "weights.pth", data)
    expect_contract(isolated(lambda: _checkpoint_summary(checkpoints, path)))


@pytest.mark.parametrize("width,height", [(13000, 13000), (70000, 70000), (2**31 - 1, 1)])
def test_declared_sizes_past_the_budget_are_refused_by_every_png_reader(tmp_path, width, height):
    """The deterministic corner of the fuzzing above: headers that lie about huge sizes."""
    masks = _module("dense_retrieval.data.masks")
    images = _module("dense_retrieval.data.images")
    results = _module("dense_retrieval.data.davis_results")
    path = _write(tmp_path, "big.png", hostile.png_declaring(width, height, colour=0))
    for reader in (
        lambda: masks.read_label_png(path).shape,
        lambda: images.read_image(path).shape,
        lambda: results.read_result_mask(path, (16, 16), 1, False, "seq").shape,
    ):
        report = isolated(reader)
        assert report[0] == "error" and report[2], report
