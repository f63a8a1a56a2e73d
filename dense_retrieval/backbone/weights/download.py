"""Resumable, verified downloads with urllib (I/O layer).

A download streams into ``FILE.part``. When a ``.part`` exists it resumes with an HTTP ``Range`` request
(a server that answers 200 instead of 206 gets a fresh start). The finished file is checked against the
expected sha256 (or the published hash prefix) BEFORE it takes its final name (house rule 6), and the
sha256 actually found is recorded next to it as ``FILE.sha256`` (``sha256sum`` format) so that files
without a published hash are at least checked against their first download later.
"""

from __future__ import annotations

import hashlib
import http.client
import math
import os
import re
import urllib.error
import urllib.request
from pathlib import Path

from ... import progress
from ...data.atomic import atomic_open
from ...errors import DownloadError
from .registry import WeightsEntry, checkpoints_dir, embedded_path

CHUNK_BYTES = 1 << 20
TIMEOUT_S = 60.0
USER_AGENT = "dense-retrieval (urllib)"


def file_digests(path: str | os.PathLike) -> dict[str, str]:
    """sha256 and md5 hex digests of a file, read once in 1 MiB chunks."""
    sha256, md5 = hashlib.sha256(), hashlib.md5(usedforsecurity=False)
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(CHUNK_BYTES), b""):
            sha256.update(block)
            md5.update(block)
    return {"sha256": sha256.hexdigest(), "md5": md5.hexdigest()}


def sidecar_path(path: Path) -> Path:
    """``FILE.sha256``: the digest recorded when ``FILE`` was downloaded."""
    return path.with_name(path.name + ".sha256")


def read_recorded_sha256(path: Path) -> str | None:
    """The sha256 recorded for ``path`` at download time, or None."""
    try:
        text = sidecar_path(path).read_text(encoding="utf-8").split()
    except OSError:
        return None
    return text[0] if text and re.fullmatch(r"[0-9a-f]{64}", text[0]) else None


def record_sha256(path: Path, sha256: str) -> None:
    """Write ``FILE.sha256`` (``<digest>  <name>``) atomically."""
    with atomic_open(sidecar_path(path), "w", encoding="utf-8") as handle:
        handle.write(f"{sha256}  {path.name}\n")


def verify_digests(
    digests: dict[str, str],
    sha256: str | None = None,
    sha256_prefix: str | None = None,
    md5_prefix: str | None = None,
) -> str:
    """Check digests against what is expected; return which check passed.

    Returns:
        ``"sha256"``, ``"sha256-prefix"``, ``"md5-prefix"`` or ``"none"`` (nothing known to check against).

    Raises:
        DownloadError: a digest does not match (the message shows expected and found values).
    """
    checks = [
        ("sha256", sha256, digests["sha256"], digests["sha256"] == (sha256 or "").lower()),
        (
            "sha256-prefix",
            sha256_prefix,
            digests["sha256"],
            digests["sha256"].startswith((sha256_prefix or "").lower()),
        ),
        ("md5-prefix", md5_prefix, digests["md5"], digests["md5"].startswith((md5_prefix or "").lower())),
    ]
    for kind, expected, found, ok in checks:
        if expected and not ok:
            raise DownloadError(f"{kind} mismatch: expected {expected}, found {found}")
    return next((kind for kind, expected, _, _ in checks if expected), "none")


def download(
    url: str,
    destination: Path,
    sha256: str | None = None,
    sha256_prefix: str | None = None,
    resume: bool = True,
    md5_prefix: str | None = None,
) -> Path:
    """Download ``url`` to ``destination``, resumably, verified before it gets its final name.

    Args:
        url: http(s) URL (a Google Drive file: ``https://drive.usercontent.google.com/download?id=ID&export=
            download&confirm=t``).
        destination: final file path; its folder is created.
        sha256: expected full hex digest, or None.
        sha256_prefix: expected digest prefix (torchvision file names), or None.
        resume: continue a previous ``destination.part`` with a Range request.
        md5_prefix: expected md5 prefix (MoCo's published checksums), or None.

    Returns:
        ``destination``. ``destination.sha256`` records the digest found.

    Raises:
        DownloadError: network failure (the ``.part`` is kept: rerun to resume), an HTML page instead of
            the file, a short read, or a digest mismatch (the bad file is removed).
    """
    return _download(url, Path(destination), sha256, sha256_prefix, resume, md5_prefix)[0]


def _download(
    url: str,
    destination: Path,
    sha256: str | None,
    sha256_prefix: str | None,
    resume: bool,
    md5_prefix: str | None,
) -> tuple[Path, str, str]:
    """:func:`download`, also returning which check passed and the sha256 found."""
    destination.parent.mkdir(parents=True, exist_ok=True)
    part = destination.with_name(destination.name + ".part")
    if not resume and part.exists():
        part.unlink()
    try:
        _fetch(url, part)
    except DownloadError:
        raise
    except (urllib.error.URLError, http.client.HTTPException, OSError) as error:
        kept = f"; {part.stat().st_size} bytes kept in {part}, rerun to resume" if part.exists() else ""
        raise DownloadError(f"download of {url} failed: {_describe(error)}{kept}") from error
    digests = file_digests(part)
    try:
        verified = verify_digests(digests, sha256, sha256_prefix, md5_prefix)
    except DownloadError as error:
        part.unlink()
        raise DownloadError(
            f"downloaded file from {url} is not the expected one ({error.message}); it was removed",
            hint="check the URL; the publisher may have replaced the file",
        ) from None
    os.replace(part, destination)
    record_sha256(destination, digests["sha256"])
    return destination, verified, digests["sha256"]


def download_weights(entry: WeightsEntry, directory: Path | None = None, url: str | None = None) -> dict:
    """Make the file of a registry entry present and verified; download it only when needed.

    A file already in place is hashed: when it matches the published hash (or, lacking one, the sha256
    recorded at its first download) nothing is downloaded; when it does not, it is downloaded again.

    Args:
        entry: the registry entry.
        directory: where to put it; default :func:`checkpoints_dir`.
        url: another URL for the same file (a mirror); the entry's hashes still apply.

    Returns:
        ``{"name", "path", "sha256", "verified", "downloaded", "embedded", "bytes", "replaced_stale"}``
        (a file that failed its check was downloaded again); ``verified`` is
        ``"sha256"``, ``"sha256-prefix"``, ``"md5-prefix"``, ``"recorded-sha256"`` or ``"none"`` (no
        published hash: the sha256 found is recorded in ``FILE.sha256``).

    Raises:
        DownloadError: the download failed or the file is not the expected one.
    """
    published = {"sha256": entry.sha256, "sha256_prefix": entry.sha256_prefix, "md5_prefix": entry.md5_prefix}
    if entry.is_embedded:
        path = embedded_path(entry)
        digests = file_digests(path)
        verified = verify_digests(digests, **published)
        return _report(entry, path, digests["sha256"], verified, downloaded=False)
    path = Path(directory or checkpoints_dir()) / entry.file_name
    stale = False
    if path.is_file():
        digests = file_digests(path)
        recorded = read_recorded_sha256(path)
        try:
            verified = verify_digests(digests, **published)
            if verified == "none" and recorded is not None:
                verify_digests(digests, sha256=recorded)
                verified = "recorded-sha256"
        except DownloadError:
            stale = True  # not the expected file: fetch it again below
        else:
            if recorded is None:
                record_sha256(path, digests["sha256"])
            return _report(entry, path, digests["sha256"], verified, downloaded=False)
    source = url or entry.url
    if not source:
        raise DownloadError(f"weights {entry.name!r} have no download URL", hint="pass one with --url")
    _, verified, sha256 = _download(source, path, resume=True, **published)
    return _report(entry, path, sha256, verified, downloaded=True, replaced_stale=stale)


def _report(
    entry: WeightsEntry,
    path: Path,
    sha256: str,
    verified: str,
    downloaded: bool,
    replaced_stale: bool = False,
) -> dict:
    return {
        "name": entry.name,
        "path": str(path),
        "sha256": sha256,
        "verified": verified,
        "downloaded": downloaded,
        "embedded": entry.is_embedded,
        "bytes": path.stat().st_size,
        "replaced_stale": replaced_stale,
    }


def _fetch(url: str, part: Path) -> None:
    """Stream ``url`` into ``part``, continuing from its current size when the server allows."""
    offset = part.stat().st_size if part.exists() else 0
    request = urllib.request.Request(url, headers={"User-Agent": USER_AGENT})
    if offset:
        request.add_header("Range", f"bytes={offset}-")
    try:
        response = urllib.request.urlopen(request, timeout=TIMEOUT_S)
    except urllib.error.HTTPError as error:
        if error.code == 416 and offset and _range_total(error.headers.get("Content-Range")) == offset:
            return  # the .part is already complete
        if error.code == 416 and offset:
            part.unlink()
            return _fetch(url, part)
        raise DownloadError(f"download of {url} failed: HTTP {error.code} {error.reason}") from None
    with response:
        content_type = response.headers.get("Content-Type", "")
        if content_type.startswith("text/html"):
            raise DownloadError(
                f"{url} returned an HTML page instead of the file (Google Drive quota or confirmation page?)",
                hint="open the URL in a browser, save the file and pass its path, or retry later",
            )
        if offset and (response.status != 206 or _range_start(response.headers.get("Content-Range")) != offset):
            offset = 0  # the server ignored the Range header: start over
        length = response.headers.get("Content-Length")
        remaining = int(length) if length is not None else None
        _stream(response, part, append=offset > 0, remaining=remaining, url=url)


def _stream(response, part: Path, append: bool, remaining: int | None, url: str) -> None:
    received = 0
    total = math.ceil(remaining / CHUNK_BYTES) if remaining else None
    with open(part, "ab" if append else "wb") as handle:
        blocks = iter(lambda: response.read(CHUNK_BYTES), b"")
        try:
            for block in progress.track(blocks, total=total, desc=part.name.removesuffix(".part"), unit="MiB"):
                handle.write(block)
                received += len(block)
        except http.client.IncompleteRead as error:
            handle.write(error.partial)  # keep every byte that arrived, for the resume
            received += len(error.partial)
    if remaining is not None and received < remaining:
        raise DownloadError(
            f"download of {url} stopped after {received} of {remaining} bytes; "
            f"{part.stat().st_size} bytes kept in {part}, rerun to resume"
        )


def _range_start(content_range: str | None) -> int | None:
    match = re.match(r"bytes (\d+)-", (content_range or "").strip())
    return int(match.group(1)) if match else None


def _range_total(content_range: str | None) -> int | None:
    match = re.fullmatch(r"bytes \*/(\d+)", (content_range or "").strip())
    return int(match.group(1)) if match else None


def _describe(error: BaseException) -> str:
    if isinstance(error, urllib.error.URLError) and not isinstance(error, urllib.error.HTTPError):
        return f"{error.reason}"
    return " ".join(str(error).split()) or error.__class__.__name__
