"""The results-folder reader: the fast PNG path gives exactly what the general reader gives."""

import numpy as np
import pytest
from PIL import Image

from dense_retrieval.data.davis_results import read_labels
from dense_retrieval.data.masks import DAVIS_PALETTE, read_label_png
from dense_retrieval.errors import DataFormatError, InputError


def _labels():
    rng = np.random.default_rng(0)
    return rng.integers(0, 4, size=(23, 37), dtype=np.uint8)


@pytest.mark.parametrize("variant", ["indexed", "indexed-4bit", "gray", "gray-0-255", "rgb", "gray-16bit"])
def test_fast_reader_equals_general_reader(tmp_path, variant):
    labels = _labels()
    path = tmp_path / f"{variant}.png"
    if variant == "indexed":
        image = Image.fromarray(labels, "L")
        image = image.convert("P")
        image.putpalette(DAVIS_PALETTE.reshape(-1).tolist())
        image.save(path)
    elif variant == "indexed-4bit":
        image = Image.fromarray(labels, "L").convert("P")
        image.putpalette(DAVIS_PALETTE[:16].reshape(-1).tolist())
        image.save(path, bits=4)
    elif variant == "gray":
        Image.fromarray(labels, "L").save(path)
    elif variant == "gray-0-255":
        Image.fromarray((labels > 1).astype(np.uint8) * 255, "L").save(path)
    elif variant == "rgb":
        Image.fromarray(DAVIS_PALETTE[labels], "RGB").save(path)
    else:
        Image.fromarray(labels.astype(np.uint16)).save(path)  # the general reader handles it
    expected = read_label_png(path)
    if variant != "gray-0-255":
        np.testing.assert_array_equal(expected, labels)
    got = read_labels(path)
    assert got.dtype == np.uint8 and got.flags.writeable
    np.testing.assert_array_equal(got, expected)
    np.testing.assert_array_equal(read_labels(path, binary=True), read_label_png(path, binary=True))


def test_errors_come_from_the_general_reader(tmp_path):
    with pytest.raises(InputError, match="not found"):
        read_labels(tmp_path / "missing.png")
    truncated = tmp_path / "truncated.png"
    Image.fromarray(_labels()).save(truncated)
    truncated.write_bytes(truncated.read_bytes()[:60])
    with pytest.raises(DataFormatError, match="truncated.png"):
        read_labels(truncated)
