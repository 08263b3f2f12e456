"""Deterministic WebDataset tar shards, staged and published atomically.

A :class:`ShardWriter` writes the samples of one pair, in the order given, into numbered tar files
``{prefix}-{n:06d}.tar``, starting a new file before one would pass ``max_shard_bytes`` (shards are sized by bytes,
not by sample count). Tar members carry fixed metadata (mtime 0, uid/gid 0, empty owner names, mode 0644) so the
same samples give byte-identical shards (contract 5). Files are written under a staging directory and only moved to
their final names by :meth:`ShardWriter.publish`, so a crash never leaves a half-written shard where readers look.
The tars are plain POSIX (GNU) tar files: ``tar tf`` lists them and ``webdataset`` reads them.
"""

from __future__ import annotations

import hashlib
import io
import logging
import posixpath
import tarfile
import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from fmstf_data.errors import FmstfError
from fmstf_data.store.storage import Storage

logger = logging.getLogger(__name__)

TAR_BLOCK_BYTES = 512
#: upper bound of the end-of-archive marker plus padding to tarfile's record size, counted when sizing shards
TAR_END_BYTES = tarfile.RECORDSIZE
DEFAULT_MAX_SHARD_BYTES = 1 << 30


class ShardError(FmstfError):
    """Shard writing was used out of order (writing after close, publishing twice, ...)."""


@dataclass(frozen=True)
class ShardInfo:
    """One finished shard.

    Attributes:
        name: final path relative to the build directory, e.g. ``shards/train/city-000000.tar``.
        sample_count: samples in it.
        size_bytes: bytes of the tar file.
        keys: sample keys in order.
        sha256: hex sha256 of the tar file's bytes, computed while writing.
    """

    name: str
    sample_count: int
    size_bytes: int
    keys: tuple[str, ...]
    sha256: str = ""

    def __post_init__(self) -> None:
        if self.sample_count != len(self.keys):
            raise ShardError(f"{self.name}: sample_count {self.sample_count} != {len(self.keys)} keys")


class _HashingStream:
    """A write-only stream that hashes what passes through it (tarfile's streaming mode only calls write)."""

    def __init__(self, stream) -> None:
        self.stream = stream
        self.digest = hashlib.sha256()
        self.bytes_written = 0

    def write(self, data: bytes) -> int:
        self.digest.update(data)
        self.bytes_written += len(data)
        return self.stream.write(data)


@dataclass(frozen=True)
class StoredSample:
    """Where :meth:`ShardWriter.write` put one sample.

    Attributes:
        shard: the shard's final name.
        offset_bytes: byte of the sample's first member header in the shard.
        size_bytes: bytes from there to the end of its last member's padded data.
        data_offsets: suffix -> byte of that member's data in the shard.
        data_sizes: suffix -> bytes of that member's data.
        json_crc32: CRC-32 of the ``json`` member's bytes (None without one).
    """

    shard: str
    offset_bytes: int
    size_bytes: int
    data_offsets: dict[str, int]
    data_sizes: dict[str, int]
    json_crc32: int | None = None

    def index_columns(self) -> dict[str, int | None]:
        """The columns of ``index/samples.parquet`` that let a loader read the sample without its tar headers:
        ``offset_bytes``, ``size_bytes``, ``json_bytes``, ``json_crc32``."""
        return {"offset_bytes": self.offset_bytes, "size_bytes": self.size_bytes,
                "json_bytes": self.data_sizes.get("json"), "json_crc32": self.json_crc32}


def member_bytes(size: int) -> int:
    """Bytes a member of ``size`` bytes takes in a tar: one header block plus data padded to 512."""
    return TAR_BLOCK_BYTES + -(-size // TAR_BLOCK_BYTES) * TAR_BLOCK_BYTES


def header_bytes(name: str) -> int:
    """Bytes of the header blocks :class:`ShardWriter` writes before a member's data (one block; a GNU long-name
    record first for names over 100 bytes)."""
    return len(tar_member(name, 0).tobuf(tarfile.GNU_FORMAT, "utf-8", "surrogateescape"))


def member_data_offsets(key: str, sizes: Sequence[tuple[str, int]], offset_bytes: int) -> dict[str, int]:
    """suffix -> data offset of the members of ``key`` (suffix, size), written in that order from
    ``offset_bytes``: the layout :meth:`ShardWriter.write` produces, so a reader can find members without the tar
    headers."""
    offsets = {}
    position = offset_bytes
    for suffix, size in sizes:
        position += header_bytes(f"{key}.{suffix}")
        offsets[suffix] = position
        position += -(-size // TAR_BLOCK_BYTES) * TAR_BLOCK_BYTES
    return offsets


def tar_member(name: str, size: int) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.size = size
    info.mtime = 0
    info.mode = 0o644
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    info.type = tarfile.REGTYPE
    return info


class ShardWriter:
    """Writes samples into numbered shards under a staging directory; :meth:`publish` moves them into place.

    Args:
        storage: where the build lives.
        prefix: final shard path prefix relative to ``storage``, e.g. ``shards/train/city``.
        staging_dir: directory relative to ``storage`` for unfinished files, e.g. ``.staging/city``.
        max_shard_bytes: a new shard is started before one would grow past this (a single larger sample still
            gets a shard of its own).
        first_number: the number of the first shard (a chunk of a pair numbers its shards from its own base);
        max_shards: more shards than this raise :class:`ShardError` (the next base would be reached).
    """

    def __init__(self, storage: Storage, prefix: str, staging_dir: str, *,
                 max_shard_bytes: int = DEFAULT_MAX_SHARD_BYTES, first_number: int = 0,
                 max_shards: int | None = None) -> None:
        if max_shard_bytes < 10 * TAR_BLOCK_BYTES:
            raise ShardError(f"max_shard_bytes must be at least {10 * TAR_BLOCK_BYTES}, got {max_shard_bytes}")
        self.storage = storage
        self.prefix = prefix
        self.staging_dir = staging_dir
        self.max_shard_bytes = max_shard_bytes
        self.first_number = first_number
        self.max_shards = max_shards
        self._finished: list[ShardInfo] = []
        self._stream = None
        self._tar: tarfile.TarFile | None = None
        self._keys: list[str] = []
        self._bytes = 0
        self._closed = False
        self._published = False

    def _shard_name(self, number: int) -> str:
        return f"{self.prefix}-{self.first_number + number:06d}.tar"

    def _staged(self, name: str) -> str:
        return posixpath.join(self.staging_dir, name)

    def _open_next(self) -> None:
        if self.max_shards is not None and len(self._finished) >= self.max_shards:
            raise ShardError(f"{self.prefix}: more than {self.max_shards} shards from shard {self.first_number} on; "
                             f"raise max_shard_bytes or shorten chunk_seconds")
        name = self._shard_name(len(self._finished))
        self._stream = self.storage.open_output(self._staged(name))
        self._hashing = _HashingStream(self._stream)
        self._tar = tarfile.open(fileobj=self._hashing, mode="w|", format=tarfile.GNU_FORMAT)
        self._keys = []
        self._bytes = TAR_END_BYTES

    def _finish_current(self) -> None:
        if self._tar is None:
            return
        self._tar.close()
        self._stream.close()
        name = self._shard_name(len(self._finished))
        size = self.storage.size_bytes(self._staged(name))
        if size != self._hashing.bytes_written:
            raise ShardError(f"{name}: {self._hashing.bytes_written} bytes written but {size} bytes stored")
        self._finished.append(ShardInfo(name=name, sample_count=len(self._keys), size_bytes=size,
                                        keys=tuple(self._keys), sha256=self._hashing.digest.hexdigest()))
        logger.debug("finished shard %s: %d samples, %d bytes", name, len(self._keys), size)
        self._tar = None
        self._stream = None

    def write(self, key: str, members: Mapping[str, bytes]) -> StoredSample:
        """Append one sample (suffix -> bytes, written in the mapping's order); returns where it lies."""
        if self._closed:
            raise ShardError("write() after close()")
        sample_bytes = sum(member_bytes(len(data)) for data in members.values())
        if self._tar is not None and self._keys and self._bytes + sample_bytes > self.max_shard_bytes:
            self._finish_current()
        if self._tar is None:
            self._open_next()
        start = self._tar.offset
        offsets = {}
        for suffix, data in members.items():
            self._tar.addfile(tar_member(f"{key}.{suffix}", len(data)), io.BytesIO(data))
            offsets[suffix] = self._tar.offset - -(-len(data) // TAR_BLOCK_BYTES) * TAR_BLOCK_BYTES
        sizes = {suffix: len(data) for suffix, data in members.items()}
        if offsets != member_data_offsets(key, list(sizes.items()), start):
            raise ShardError(f"{key}: tarfile laid the members out differently from member_data_offsets()")
        self._keys.append(key)
        self._bytes += sample_bytes
        return StoredSample(shard=self._shard_name(len(self._finished)), offset_bytes=start,
                            size_bytes=self._tar.offset - start, data_offsets=offsets, data_sizes=sizes,
                            json_crc32=zlib.crc32(members["json"]) if "json" in members else None)

    def close(self) -> list[ShardInfo]:
        """Finish the current shard; returns every shard written (still staged until :meth:`publish`)."""
        if not self._closed:
            self._finish_current()
            self._closed = True
        return list(self._finished)

    def publish(self) -> list[ShardInfo]:
        """Move the finished shards from staging to their final names."""
        if not self._closed:
            self.close()
        if self._published:
            raise ShardError("publish() called twice")
        for shard in self._finished:
            self.storage.move(self._staged(shard.name), shard.name)
        self._published = True
        return list(self._finished)

    def abort(self) -> None:
        """Drop everything staged (after a failure)."""
        if self._tar is not None:
            try:
                self._tar.close()
                self._stream.close()
            except (OSError, ValueError):
                logger.debug("closing an aborted shard failed", exc_info=True)
            self._tar = None
        self._closed = True
        self.storage.delete(self.staging_dir)
