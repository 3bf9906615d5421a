"""Verified downloads with a progress bar, and safe tarball unpacking."""

from __future__ import annotations

import hashlib
import re
import ssl
import tarfile
from functools import lru_cache
from pathlib import Path

import httpx
from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeRemainingColumn, TransferSpeedColumn

from graph.errors import ChecksumMismatch, DownloadError

@lru_cache(maxsize=1)
def tls_context() -> ssl.SSLContext:
    """The operating system's trust store, so corporate TLS proxies work as they do for pip."""
    import truststore

    return truststore.SSLContext(ssl.PROTOCOL_TLS_CLIENT)


# Strongest first; Maven Central always has .sha1, newer artifacts also .sha256/.sha512.
CHECKSUM_ALGORITHMS = ("sha512", "sha256", "sha1")


def download(url: str, target: Path, *, require_checksum: bool, show_progress: bool = True) -> None:
    """Fetch `url` into `target`, checked against the checksum published beside it."""
    expected = published_checksum(url)
    if expected is None and require_checksum:
        # Probe the artifact itself so the message says whether it exists at all.
        try:
            head = httpx.head(url, follow_redirects=True, timeout=30, verify=tls_context())
        except httpx.HTTPError as exc:
            raise DownloadError(f"{url}: {exc}") from exc
        if head.status_code == 404:
            raise DownloadError(f"{url} is not published (HTTP 404)")
        raise DownloadError(f"{url} has no published checksum; refusing an unverified download")
    progress = Progress(
        TextColumn("{task.description}"), BarColumn(), DownloadColumn(), TransferSpeedColumn(),
        TimeRemainingColumn(), disable=not show_progress,
    )
    try:
        with httpx.stream("GET", url, follow_redirects=True, timeout=60, verify=tls_context()) as response:
            if response.status_code != 200:
                raise DownloadError(f"{url}: HTTP {response.status_code}")
            total = int(response.headers.get("content-length") or 0) or None
            with progress, target.open("wb") as out:
                task = progress.add_task(f"Downloading {target.name}", total=total)
                for chunk in response.iter_bytes(1 << 16):
                    out.write(chunk)
                    progress.update(task, advance=len(chunk))
    except httpx.HTTPError as exc:
        raise DownloadError(f"{url}: {exc}") from exc
    if expected:
        verify_checksum(target, *expected)


def file_digest(path: Path, algorithm: str) -> str:
    digest = hashlib.new(algorithm)
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def verify_checksum(path: Path, algorithm: str, expected: str) -> None:
    actual = file_digest(path, algorithm)
    if actual.lower() != expected.lower():
        raise ChecksumMismatch(
            f"{path.name} is corrupt: its {algorithm} is {actual[:16]}… but the publisher lists {expected[:16]}…; "
            "delete it and download again"
        )


def parse_checksum_file(text: str) -> str | None:
    """Maven's checksum files hold the bare hex; `sha*sum` output holds 'hex  name'."""
    token = text.strip().split()[0] if text.strip() else ""
    return token if re.fullmatch(r"[0-9a-fA-F]{32,128}", token) else None


def published_checksum(url: str) -> tuple[str, str] | None:
    for algorithm in CHECKSUM_ALGORITHMS:
        try:
            response = httpx.get(f"{url}.{algorithm}", follow_redirects=True, timeout=30, verify=tls_context())
        except httpx.HTTPError:
            continue
        if response.status_code == 200:
            value = parse_checksum_file(response.text)
            if value:
                return algorithm, value
    return None


def sibling_checksum(path: Path) -> tuple[str, str] | None:
    """A checksum file next to a local download (`x.tar.gz.sha512` and so on)."""
    for algorithm in CHECKSUM_ALGORITHMS:
        sibling = path.with_name(f"{path.name}.{algorithm}")
        if sibling.is_file():
            value = parse_checksum_file(sibling.read_text())
            if value:
                return algorithm, value
    return None


def unpack_tarball(tarball: Path, destination: Path) -> Path:
    """Extract safely (no absolute paths, links out or devices); return the single top directory if there is one."""
    try:
        with tarfile.open(tarball) as archive:
            archive.extractall(destination, filter="data")
    except (tarfile.TarError, OSError, EOFError) as exc:
        raise DownloadError(f"{tarball.name} is not a readable tar.gz ({exc}); delete it and retry") from exc
    entries = list(destination.iterdir())
    if len(entries) == 1 and entries[0].is_dir():
        return entries[0]
    return destination
