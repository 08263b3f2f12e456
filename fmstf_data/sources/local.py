"""Local sources: the file is used in place (no copy), after checking it can be read, and hashed."""

from __future__ import annotations

import logging
import os
from pathlib import Path

from fmstf_data.errors import FetchError
from fmstf_data.manifest.schema import SourceSpec
from fmstf_data.sources.fetched import FetchedSource, sha256_file

logger = logging.getLogger(__name__)


def fetch_local(spec: SourceSpec) -> FetchedSource:
    """Check that ``spec``'s file exists and is readable, and hash it (sha256, streamed).

    Raises:
        FetchError: the file is missing, a directory, or unreadable (message names the path).
    """
    path = Path(spec.location)
    where = f"{spec.pair_id}.{spec.role}" if spec.pair_id else spec.role
    if not path.exists():
        raise FetchError(f"{where}: local file not found: {path} (was it moved or deleted since the manifest was "
                         f"written? fix the path in the manifest)")
    if not path.is_file():
        raise FetchError(f"{where}: {path} is not a regular file")
    if not os.access(path, os.R_OK):
        raise FetchError(f"{where}: {path} is not readable by this user (check its permissions)")
    try:
        sha256, size_bytes = sha256_file(path)
    except OSError as error:
        raise FetchError(f"{where}: cannot read {path}: {error}") from error
    if size_bytes == 0:
        raise FetchError(f"{where}: {path} is empty (0 bytes)")
    logger.debug("%s: local %s, %d bytes, sha256 %s", where, path, size_bytes, sha256)
    return FetchedSource(path=path, sha256=sha256, size_bytes=size_bytes,
                         info={"kind": "local", "location": str(path), "dynamic_range": spec.dynamic_range},
                         from_cache=True)
