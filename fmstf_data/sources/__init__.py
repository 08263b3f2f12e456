"""Fetching sources: local files in place, URLs and YouTube videos through yt-dlp's Python API, into a cache.

``fetch_source(spec, cache_dir, options=FetchOptions(...)) -> FetchedSource(path, sha256, size_bytes, info)``.

* local: the file is checked (exists, readable) and hashed; never copied.
* url (http/https/file) and youtube: downloaded with ``yt_dlp.YoutubeDL(params).extract_info(url, download=True)``
  into ``cache_dir/<kind>/<id>/<HDR10|SDR>/<format key>/`` with yt-dlp's info JSON beside the file and our own
  completion marker (see :mod:`fmstf_data.sources.cache`). A completed entry is reused without any network use; a
  partial one is resumed.

Which stream is downloaded: :mod:`fmstf_data.sources.formats`. Retries, cookies, errors:
:mod:`fmstf_data.sources.ytdlp`. The build probes every fetched file afterwards (``fmstf_data.video.probe``) and refuses
an "HDR10" download that is not PQ (yt-dlp labels HLG VP9 streams HDR10 too).
"""

from __future__ import annotations

import logging
import os

from fmstf_data.manifest.schema import SourceSpec
from fmstf_data.sources.cache import CacheEntry, format_key
from fmstf_data.sources.fetched import FetchedSource, sha256_file
from fmstf_data.sources.formats import RoleFormatSelector, codec_transfer, select_format
from fmstf_data.sources.local import fetch_local
from fmstf_data.sources.options import FetchOptions, backoff_seconds, browser_spec, parse_byte_rate
from fmstf_data.sources.ytdlp import fetch_with_ytdlp

__all__ = [
    "CacheEntry", "FetchOptions", "FetchedSource", "RoleFormatSelector", "backoff_seconds", "browser_spec",
    "cache_entry", "cached_source", "codec_transfer", "fetch_source", "format_key", "parse_byte_rate",
    "select_format", "sha256_file",
]

logger = logging.getLogger(__name__)


def cache_entry(spec: SourceSpec, cache_dir: str | os.PathLike, *, options: FetchOptions | None = None) -> CacheEntry:
    """The cache folder a url/youtube source is (or would be) fetched into."""
    options = options or FetchOptions()
    return CacheEntry.for_source(spec, cache_dir, options.format_height)


def cached_source(spec: SourceSpec, cache_dir: str | os.PathLike, *, options: FetchOptions | None = None
                  ) -> FetchedSource | None:
    """The completed cache entry of a url/youtube source, or None; never touches the network. None for local."""
    if spec.kind == "local":
        return None
    options = options or FetchOptions()
    return cache_entry(spec, cache_dir, options=options).read(verify_sha256=options.verify_cached_sha256)


def fetch_source(spec: SourceSpec, cache_dir: str | os.PathLike, *, options: FetchOptions | None = None
                 ) -> FetchedSource:
    """Make ``spec`` available as a local file.

    Args:
        spec: one side of a pair (from the manifest).
        cache_dir: the download cache (local folder; created when needed).
        options: retries, cookies, rate limits, format height ... (defaults: :class:`FetchOptions`).

    Returns:
        The file, its sha256 and size, and what was fetched (``info``).

    Raises:
        FetchError: with a message that says what to do (fix the path, pass cookies, rerun, choose a format).
    """
    options = options or FetchOptions()
    if spec.kind == "local":
        return fetch_local(spec)
    entry = cache_entry(spec, cache_dir, options=options)
    cached = entry.read(verify_sha256=options.verify_cached_sha256)
    if cached is not None:
        logger.debug("%s: cached at %s", spec.describe(), cached.path)
        return cached
    with entry.locked():
        cached = entry.read(verify_sha256=options.verify_cached_sha256)  # fetched meanwhile by another process
        if cached is not None:
            return cached
        return fetch_with_ytdlp(spec, entry, options)
