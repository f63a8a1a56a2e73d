"""Downloads against a real HTTP server on 127.0.0.1: resume with Range, verification, failures."""

from __future__ import annotations

import dataclasses
import hashlib
import socket

import pytest

from dense_retrieval.backbone.weights.download import download, download_weights, read_recorded_sha256
from dense_retrieval.backbone.weights.registry import get_entry
from dense_retrieval.errors import DownloadError
from tests.checkpoint_files import serving

PAYLOAD = bytes(range(256)) * (3 * 4096 + 7)  # ~3 MiB: several 1 MiB chunks
SHA256 = hashlib.sha256(PAYLOAD).hexdigest()
MD5 = hashlib.md5(PAYLOAD).hexdigest()


@pytest.fixture()
def server(monkeypatch):
    monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")
    with serving(PAYLOAD) as state:
        yield state


def test_download_verifies_and_records(server, tmp_path):
    target = tmp_path / "sub" / "weights.pth"
    assert download(server.url, target, sha256=SHA256) == target
    assert target.read_bytes() == PAYLOAD
    assert read_recorded_sha256(target) == SHA256
    assert not (tmp_path / "sub" / "weights.pth.part").exists()
    assert server.requests == [None]


def test_interrupted_download_resumes_with_range(server, tmp_path):
    target = tmp_path / "weights.pth"
    half = len(PAYLOAD) // 2 + 12345
    server.cut_after = half
    with pytest.raises(DownloadError, match=f"stopped after {half} of {len(PAYLOAD)} bytes.*rerun to resume"):
        download(server.url, target, sha256=SHA256)
    part = tmp_path / "weights.pth.part"
    assert part.stat().st_size == half and not target.exists()
    download(server.url, target, sha256=SHA256)
    assert server.requests == [None, f"bytes={half}-"]
    assert server.bytes_sent == [half, len(PAYLOAD) - half]  # only the rest travelled the second time
    assert target.read_bytes() == PAYLOAD and not part.exists()


def test_server_without_range_support_starts_over(server, tmp_path):
    target = tmp_path / "weights.pth"
    (tmp_path / "weights.pth.part").write_bytes(b"stale bytes from an older attempt")
    server.ignore_range = True
    download(server.url, target, sha256=SHA256)
    assert target.read_bytes() == PAYLOAD
    assert server.requests == ["bytes=33-"]  # asked, got 200, rewrote from the start


def test_complete_part_file_is_finished_on_416(server, tmp_path):
    target = tmp_path / "weights.pth"
    (tmp_path / "weights.pth.part").write_bytes(PAYLOAD)
    download(server.url, target, sha256=SHA256)
    assert target.read_bytes() == PAYLOAD and server.bytes_sent == []


def test_resume_false_discards_part(server, tmp_path):
    target = tmp_path / "weights.pth"
    (tmp_path / "weights.pth.part").write_bytes(PAYLOAD[:1000])
    download(server.url, target, sha256=SHA256, resume=False)
    assert server.requests == [None] and target.read_bytes() == PAYLOAD


@pytest.mark.parametrize(
    "expected",
    [{"sha256": "0" * 64}, {"sha256_prefix": "deadbeef"}, {"md5_prefix": "00000000"}],
    ids=["sha256", "sha256-prefix", "md5-prefix"],
)
def test_wrong_hash_leaves_no_file(server, tmp_path, expected):
    target = tmp_path / "weights.pth"
    with pytest.raises(DownloadError, match="is not the expected one .*mismatch.*it was removed"):
        download(server.url, target, **expected)
    assert list(tmp_path.iterdir()) == []


def test_published_prefixes_pass(server, tmp_path):
    download(server.url, tmp_path / "a.pth", sha256_prefix=SHA256[:8])
    download(server.url, tmp_path / "b.pth", md5_prefix=MD5[:8])
    assert (tmp_path / "a.pth").read_bytes() == (tmp_path / "b.pth").read_bytes() == PAYLOAD


def test_http_errors_name_the_url(server, tmp_path):
    missing = server.url.replace("/file", "/missing")
    with pytest.raises(DownloadError, match=f"download of {missing} failed: HTTP 404"):
        download(missing, tmp_path / "w.pth")
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    refused = f"http://127.0.0.1:{port}/file"
    with pytest.raises(DownloadError, match=f"download of {refused} failed: .*refused"):
        download(refused, tmp_path / "w.pth")
    assert list(tmp_path.iterdir()) == []


def test_html_page_instead_of_file(server, tmp_path):
    server.content_type = "text/html; charset=utf-8"
    with pytest.raises(DownloadError, match="returned an HTML page instead of the file"):
        download(server.url, tmp_path / "w.pth")
    assert not (tmp_path / "w.pth").exists()


def _entry(url: str, **hashes) -> object:
    base = get_entry("resnet18-imagenet")
    fields = {"sha256": None, "sha256_prefix": None, "md5_prefix": None, **hashes}
    return dataclasses.replace(base, name="test-weights", url=url, file_name="test-weights.pth", **fields)


def test_download_weights_skips_a_verified_file(server, tmp_path):
    entry = _entry(server.url, sha256=SHA256)
    first = download_weights(entry, tmp_path)
    assert first["downloaded"] and first["verified"] == "sha256" and first["sha256"] == SHA256
    second = download_weights(entry, tmp_path)
    assert not second["downloaded"] and second["verified"] == "sha256"
    assert len(server.requests) == 1
    (tmp_path / "test-weights.pth").write_bytes(b"corrupted")
    third = download_weights(entry, tmp_path)
    assert third["downloaded"] and third["replaced_stale"]
    assert (tmp_path / "test-weights.pth").read_bytes() == PAYLOAD


def test_download_weights_without_published_hash_records_one(server, tmp_path):
    entry = _entry(server.url)
    first = download_weights(entry, tmp_path)
    assert first["verified"] == "none" and first["sha256"] == SHA256
    assert read_recorded_sha256(tmp_path / "test-weights.pth") == SHA256
    second = download_weights(entry, tmp_path)
    assert not second["downloaded"] and second["verified"] == "recorded-sha256"
    assert len(server.requests) == 1


def test_download_weights_url_override(server, tmp_path):
    entry = _entry("https://example.invalid/never-used", sha256=SHA256)
    report = download_weights(entry, tmp_path, url=server.url)
    assert report["downloaded"] and server.requests == [None]
