"""The record of a fetched source: where its bytes are, and what they are."""

from __future__ import annotations

import hashlib
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fmstf_data.errors import InvalidValueError

_SHA256 = re.compile(r"[0-9a-f]{64}\Z")
HASH_CHUNK_BYTES = 1 << 20


@dataclass(frozen=True)
class FetchedSource:
    """A source ready to be read.

    Attributes:
        path: the local file (a cache file for URL/YouTube sources; the file itself for local ones).
        sha256: hex sha256 of the file's bytes.
        size_bytes: the file's size.
        info: what was fetched, JSON-ready: kind, location, dynamic_range; for yt-dlp downloads also format_id,
            vcodec, width, height, fps, filesize, upload_date, extractor, webpage_url and ``info_json`` (the path of
            the full yt-dlp info JSON kept beside the file).
        from_cache: True when no download happened in this call.
    """

    path: Path
    sha256: str
    size_bytes: int
    info: dict[str, Any] = field(default_factory=dict)
    from_cache: bool = False

    def __post_init__(self) -> None:
        object.__setattr__(self, "path", Path(self.path))
        if not isinstance(self.sha256, str) or not _SHA256.match(self.sha256):
            raise InvalidValueError(f"sha256 must be 64 lower-case hex digits, got {self.sha256!r}")
        if isinstance(self.size_bytes, bool) or not isinstance(self.size_bytes, int) or self.size_bytes < 0:
            raise InvalidValueError(f"size_bytes must be an integer >= 0, got {self.size_bytes!r}")


def sha256_file(path: str | os.PathLike) -> tuple[str, int]:
    """(hex sha256, size in bytes) of a file, read in 1 MiB chunks (constant memory)."""
    digest = hashlib.sha256()
    size = 0
    with open(path, "rb") as handle:
        while chunk := handle.read(HASH_CHUNK_BYTES):
            digest.update(chunk)
            size += len(chunk)
    return digest.hexdigest(), size
