"""Where build outputs live: local paths or object stores, through ``pyarrow.fs``.

A location is either a plain local path or a URI that ``pyarrow.fs.FileSystem.from_uri`` understands
(``s3://bucket/prefix``, ``gs://...``, ``hdfs://...``, ``file:///...``). Everything the build writes goes through a
:class:`Storage`, so the same code writes to a laptop disk or a bucket. Writes that must never be seen half-done
(shards, records, the index) are written under a temporary name and moved into place.
"""

from __future__ import annotations

import hashlib
import logging
import os
import posixpath
import re
import uuid
from dataclasses import dataclass
from urllib.parse import parse_qsl, urlencode, urlsplit

import pyarrow.fs as pafs

from fmstf_data.errors import FmstfError

logger = logging.getLogger(__name__)


class StorageError(FmstfError):
    """An output or input location that cannot be used."""


#: URI query parameters whose values are secrets (``secret_key``, ``access_key``, ``session_token``, ...)
_SECRET_PARAMETER = re.compile(r"secret|key|token|password|passwd|credential|signature", re.IGNORECASE)


def redact_uri(uri: str) -> str:
    """``uri`` as it may be shown, logged or stored: ``user:secret@`` dropped and secret-looking query parameters
    (:data:`_SECRET_PARAMETER`) replaced by ``***``; other parameters (``endpoint_override``, ``region``) are kept.
    A plain path is returned unchanged."""
    if "://" not in uri:
        return uri
    parts = urlsplit(uri)
    host = parts.netloc.rpartition("@")[2]
    query = [(name, "***" if _SECRET_PARAMETER.search(name) else value)
             for name, value in parse_qsl(parts.query, keep_blank_values=True)]
    shown = f"{parts.scheme}://{host}{parts.path}"
    return f"{shown}?{urlencode(query, safe='*:/')}" if query else shown


@dataclass(frozen=True)
class Storage:
    """A file system and a base path inside it.

    Attributes:
        filesystem: the ``pyarrow.fs.FileSystem`` holding the files.
        base_path: the root of this location inside ``filesystem`` (no trailing slash).
        uri: how the user named the location (for messages and reports).
    """

    filesystem: pafs.FileSystem
    base_path: str
    uri: str

    def __post_init__(self) -> None:
        if not self.base_path:
            raise StorageError(f"empty base path for location {redact_uri(self.uri)!r}")

    @property
    def is_local(self) -> bool:
        return isinstance(self.filesystem, pafs.LocalFileSystem)

    def path(self, relative: str) -> str:
        """The file-system path of ``relative`` (a '/'-separated path under the base)."""
        return posixpath.join(self.base_path, relative) if relative else self.base_path

    def display(self, relative: str = "") -> str:
        """How a person names ``relative`` under this location, without secrets (:func:`redact_uri`; the query
        parameters kept at the end)."""
        base, _, query = redact_uri(self.uri).partition("?")
        joined = posixpath.join(base.rstrip("/"), relative) if relative else base
        return f"{joined}?{query}" if query else joined

    def makedirs(self, relative: str) -> None:
        self.filesystem.create_dir(self.path(relative), recursive=True)

    def exists(self, relative: str) -> bool:
        return self.filesystem.get_file_info(self.path(relative)).type != pafs.FileType.NotFound

    def size_bytes(self, relative: str) -> int:
        info = self.filesystem.get_file_info(self.path(relative))
        if info.type == pafs.FileType.NotFound:
            raise StorageError(f"{self.path(relative)} does not exist")
        return int(info.size)

    def read_bytes(self, relative: str) -> bytes:
        try:
            with self.filesystem.open_input_stream(self.path(relative)) as stream:
                return stream.read()
        except FileNotFoundError as error:
            raise StorageError(f"{self.path(relative)} does not exist") from error

    def sha256(self, relative: str, chunk_bytes: int = 8 << 20) -> str:
        """Hex sha256 of a file's bytes, read in ``chunk_bytes`` pieces (never the whole file in memory)."""
        digest = hashlib.sha256()
        try:
            with self.filesystem.open_input_stream(self.path(relative)) as stream:
                while chunk := stream.read(chunk_bytes):
                    digest.update(chunk)
        except FileNotFoundError as error:
            raise StorageError(f"{self.path(relative)} does not exist") from error
        return digest.hexdigest()

    def open_output(self, relative: str):
        """A binary output stream (``pyarrow.NativeFile``) for ``relative``; parent directories are created."""
        parent = posixpath.dirname(self.path(relative))
        if parent:
            self.filesystem.create_dir(parent, recursive=True)
        return self.filesystem.open_output_stream(self.path(relative))

    def move(self, source_relative: str, target_relative: str) -> None:
        """Move a file into place (a rename on local disks: atomic there)."""
        parent = posixpath.dirname(self.path(target_relative))
        if parent:
            self.filesystem.create_dir(parent, recursive=True)
        self.filesystem.move(self.path(source_relative), self.path(target_relative))

    def write_bytes_atomic(self, relative: str, data: bytes) -> None:
        """Write ``data`` to ``relative`` so that readers see either the old file or the whole new one."""
        directory, name = posixpath.split(relative)
        temporary = posixpath.join(directory, f".{name}.{uuid.uuid4().hex}.partial")
        with self.open_output(temporary) as stream:
            stream.write(data)
        self.move(temporary, relative)

    def delete(self, relative: str, *, attempts: int = 3) -> None:
        """Delete a file or a folder (recursively); absent is fine, and so is a part of it vanishing meanwhile
        (another process removing its own files): the deletion is retried ``attempts`` times."""
        for attempt in range(attempts):
            info = self.filesystem.get_file_info(self.path(relative))
            try:
                if info.type == pafs.FileType.Directory:
                    self.filesystem.delete_dir(self.path(relative))
                elif info.type == pafs.FileType.File:
                    self.filesystem.delete_file(self.path(relative))
                return
            except FileNotFoundError:
                if attempt == attempts - 1:
                    raise

    def list_top(self, relative: str = "") -> list[str]:
        """Names of the entries (files and folders) directly under ``relative``, sorted; none when it is absent."""
        selector = pafs.FileSelector(self.path(relative), recursive=False, allow_not_found=True)
        return sorted(posixpath.basename(info.path.rstrip("/")) for info in self.filesystem.get_file_info(selector))

    def list_files(self, relative: str, suffix: str = "") -> list[str]:
        """Relative paths of the files under ``relative`` (recursively) ending in ``suffix``, sorted."""
        selector = pafs.FileSelector(self.path(relative), recursive=True, allow_not_found=True)
        prefix_length = len(self.base_path) + 1
        names = [
            info.path[prefix_length:]
            for info in self.filesystem.get_file_info(selector)
            if info.type == pafs.FileType.File and info.path.endswith(suffix)
        ]
        return sorted(names)


def open_storage(location: str | os.PathLike[str]) -> Storage:
    """A :class:`Storage` for a local path or a ``pyarrow.fs`` URI (s3://, gs://, hdfs://, file://)."""
    text = os.fspath(location)
    if "://" in text:
        try:
            filesystem, base_path = pafs.FileSystem.from_uri(text)
        except (ValueError, OSError) as error:  # pyarrow's ArrowInvalid is a ValueError
            raise StorageError(f"cannot open location {redact_uri(text)!r}: {error}") from error
        return Storage(filesystem=filesystem, base_path=base_path.rstrip("/"), uri=text)
    absolute = os.path.abspath(text)
    return Storage(filesystem=pafs.LocalFileSystem(), base_path=absolute.replace(os.sep, "/"), uri=text)
