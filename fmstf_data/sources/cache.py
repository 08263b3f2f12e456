"""The download cache: one folder per (video, dynamic range, format request), completion marked by our own file.

Layout (``CACHE`` is the build's ``--cache-dir``)::

    CACHE/youtube/<VIDEO_ID>/<HDR10|SDR>/<format key>/video.<ext>        the downloaded stream (video only)
                                                      video.info.json    yt-dlp's info JSON (sanitize_info)
                                                      complete.json      our completion marker (written last)
                                                      video.<ext>.part   a partial download, resumed on rerun
    CACHE/url/<sha256(url)[:16]>/<HDR10|SDR>/<format key>/...            the same for http/https/file URLs

yt-dlp's own download archive keys on (extractor, video ID) only, so after the SDR version of a video it would skip
the HDR10 one; it is never used. Completion is tracked per (ID, dynamic range) - and format request - by
``complete.json``, written atomically (temporary file + rename) after the file and its info JSON are in place, so a
crash at any moment leaves either a complete entry or one that the next run resumes.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

from fmstf_data.errors import InvalidValueError
from fmstf_data.manifest.schema import FormatSpec, SourceSpec
from fmstf_data.sources.fetched import FetchedSource, sha256_file

logger = logging.getLogger(__name__)

MARKER_NAME = "complete.json"
INFO_JSON_NAME = "video.info.json"
FILE_STEM = "video"
MARKER_VERSION = 1


def format_key(format_spec: FormatSpec | None, default_height: int) -> str:
    """Folder name for a format request: ``h2160``, ``h1440-vp09``, or ``sel-<12 hex>`` for a raw selector."""
    spec = format_spec or FormatSpec()
    if spec.selector is not None:
        return "sel-" + hashlib.sha256(spec.selector.encode("utf-8")).hexdigest()[:12]
    key = f"h{spec.height if spec.height is not None else default_height}"
    return key + (f"-{spec.vcodec}" if spec.vcodec else "")


def write_json_atomic(path: Path, payload: Any) -> None:
    """Write JSON to ``path`` through a temporary file in the same folder, fsync'ed, then renamed into place."""
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(temporary, "w", encoding="utf-8") as handle:
        json.dump(payload, handle, indent=1, sort_keys=True, ensure_ascii=False, default=str)
        handle.write("\n")
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(temporary, path)


@dataclass(frozen=True)
class CacheEntry:
    """The cache folder of one (source, dynamic range, format request).

    Attributes:
        directory: the folder.
        kind: ``youtube`` or ``url``.
        location: the video ID or URL.
        dynamic_range: ``HDR10`` or ``SDR``.
        format_key: see :func:`format_key`.
    """

    directory: Path
    kind: str
    location: str
    dynamic_range: str
    format_key: str

    @classmethod
    def for_source(cls, spec: SourceSpec, cache_dir: str | os.PathLike, default_height: int) -> CacheEntry:
        if spec.kind not in ("youtube", "url"):
            raise InvalidValueError(f"{spec.describe()}: only youtube and url sources are cached, not {spec.kind}")
        key = spec.location if spec.kind == "youtube" else \
            hashlib.sha256(spec.location.encode("utf-8")).hexdigest()[:16]
        fkey = format_key(spec.format, default_height)
        directory = Path(cache_dir).expanduser().resolve() / spec.kind / key / spec.dynamic_range / fkey
        return cls(directory, spec.kind, spec.location, spec.dynamic_range, fkey)

    @property
    def marker_path(self) -> Path:
        return self.directory / MARKER_NAME

    @property
    def info_json_path(self) -> Path:
        return self.directory / INFO_JSON_NAME

    @property
    def output_template(self) -> str:
        """yt-dlp ``outtmpl`` (relative to the folder, given to yt-dlp as ``paths.home``)."""
        return f"{FILE_STEM}.%(ext)s"

    def partial_files(self) -> list[Path]:
        """Partial downloads (``*.part``, and ``*.part-Frag*`` of fragmented streams) that a fetch would resume."""
        if not self.directory.is_dir():
            return []
        return sorted(self.directory.glob("*.part*"))

    def read(self, *, verify_sha256: bool = False) -> FetchedSource | None:
        """The completed entry, or None when it is absent, incomplete, or its file no longer matches the marker."""
        try:
            marker = json.loads(self.marker_path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as error:
            logger.warning("%s: unreadable completion marker (%s); fetching again", self.marker_path, error)
            return None
        if not isinstance(marker, dict) or marker.get("marker_version") != MARKER_VERSION \
                or not isinstance(marker.get("file"), str) or "/" in marker["file"]:
            logger.warning("%s: unexpected completion marker; fetching again", self.marker_path)
            return None
        path = self.directory / marker["file"]
        try:
            size = path.stat().st_size
        except FileNotFoundError:
            logger.warning("%s: marked complete but %s is gone; fetching again", self.directory, path.name)
            return None
        if size != marker.get("size_bytes"):
            logger.warning("%s: size %d differs from the marker's %s; fetching again", path, size,
                           marker.get("size_bytes"))
            return None
        if verify_sha256:
            sha256, _ = sha256_file(path)
            if sha256 != marker.get("sha256"):
                logger.warning("%s: sha256 differs from the marker's; fetching again", path)
                return None
        return FetchedSource(path=path, sha256=marker["sha256"], size_bytes=size, info=dict(marker.get("info", {})),
                             from_cache=True)

    def write_marker(self, fetched: FetchedSource) -> None:
        """Mark this entry complete (atomic); call after the file and its info JSON are in place."""
        if fetched.path.parent != self.directory:
            raise InvalidValueError(f"{fetched.path} is not inside the cache entry {self.directory}")
        write_json_atomic(self.marker_path, {
            "marker_version": MARKER_VERSION, "kind": self.kind, "location": self.location,
            "dynamic_range": self.dynamic_range, "format_key": self.format_key, "file": fetched.path.name,
            "size_bytes": fetched.size_bytes, "sha256": fetched.sha256, "info": fetched.info,
        })

    def invalidate(self) -> None:
        """Forget completion (the file stays, so a fetch may reuse or resume it)."""
        with contextlib.suppress(FileNotFoundError):
            self.marker_path.unlink()

    @contextlib.contextmanager
    def locked(self) -> Iterator[None]:
        """Hold an exclusive lock on this entry (one fetch per entry at a time on this machine)."""
        self.directory.mkdir(parents=True, exist_ok=True)
        try:
            import fcntl
        except ImportError:  # not POSIX: no locking
            yield
            return
        with open(self.directory / ".lock", "a+b") as handle:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle.fileno(), fcntl.LOCK_UN)
