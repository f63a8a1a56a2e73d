"""The test fence itself: deletions and renames outside the allowed folders fail, inside they work."""

from __future__ import annotations

import os
import shutil

import pytest

from tests.reliability.fence import fenced


def test_the_fence_stops_deletions_and_renames_outside_its_roots(tmp_path):
    inside, outside = tmp_path / "inside", tmp_path / "outside"
    for folder in (inside, outside):
        (folder / "sub").mkdir(parents=True)
        (folder / "sub" / "file.txt").write_text("x")
    with fenced(inside):
        with pytest.raises(PermissionError):
            shutil.rmtree(outside)
        with pytest.raises(PermissionError):
            os.remove(outside / "sub" / "file.txt")
        with pytest.raises(PermissionError):
            os.rename(inside / "sub", outside / "moved")
        with pytest.raises(PermissionError):
            shutil.rmtree(inside / ".." / "outside")
        (inside / "link").symlink_to(outside / "sub")
        with pytest.raises(PermissionError):
            os.remove(inside / "link" / "file.txt")
        os.remove(inside / "link")  # the link itself is inside
        shutil.rmtree(inside / "sub")
    assert (outside / "sub" / "file.txt").read_text() == "x"
    assert not (inside / "sub").exists()
    shutil.rmtree(outside)  # outside the block: no fence
