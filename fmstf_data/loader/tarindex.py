"""Where each sample lies inside a tar shard: a table of contents from the tar headers alone.

The loader reads samples by random access (one ranged read per sample, any order), so it needs the byte span of
every sample in its shard. :func:`scan_shard` walks the 512-byte tar headers of a shard without reading member data
(one small read per member; on object stores one ranged GET each), checks each header's checksum, and groups
members by key the way WebDataset does (the key is the member name up to its first dot). :func:`parse_members`
splits a span read later back into ``{suffix: bytes}``.

Handled tar variants: POSIX ustar and GNU headers (what :class:`fmstf_data.store.shards.ShardWriter` and ``tarfile``
write), GNU long names (``L``) and PAX ``path`` records; other member types (directories, links) are skipped.
Damage (a bad header checksum, a member running past the end of the file, no end-of-archive marker) is reported in
:attr:`ShardContents.problem`, with every sample before it kept.
"""

from __future__ import annotations

import tarfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from fmstf_data.errors import DamagedShardError

BLOCK_BYTES = 512
_REGULAR_TYPES = (tarfile.REGTYPE, tarfile.AREGTYPE, tarfile.CONTTYPE)
_PAX_TYPES = (tarfile.XHDTYPE, tarfile.XGLTYPE, tarfile.SOLARIS_XHDTYPE)


@dataclass(frozen=True)
class TarMember:
    """One regular member: its name, where its first header block starts, where its data starts and its size."""

    name: str
    header_offset: int
    data_offset: int
    size: int

    @property
    def end(self) -> int:
        """Byte just after the member's data (padding excluded)."""
        return self.data_offset + self.size


@dataclass
class SampleSpan:
    """The bytes of one sample in its shard: ``[start, end)`` covers every member header and data of the key."""

    key: str
    start: int
    end: int
    suffixes: list[str] = field(default_factory=list)


@dataclass
class ShardContents:
    """What :func:`scan_shard` found: the samples in tar order, and the first problem met (None when intact)."""

    samples: list[SampleSpan]
    problem: str | None
    size_bytes: int


def _padded(size: int) -> int:
    return -(-size // BLOCK_BYTES) * BLOCK_BYTES


def _pax_path(data: bytes, offset: int) -> str | None:
    """The ``path`` record of a PAX extended header ("%d path=...\\n" records) at byte ``offset``, if any.

    Raises:
        DamagedShardError: a record whose length field is not a number or points outside the header, or a path
            that is not UTF-8.
    """
    position = 0
    while position < len(data):
        if data[position:].strip(b"\0") == b"":
            break  # padding after the last record
        space = data.find(b" ", position)
        if space < 0:
            raise DamagedShardError(f"damaged PAX header at byte {offset}: a record without a length")
        try:
            length = int(data[position:space])
        except ValueError:
            raise DamagedShardError(f"damaged PAX header at byte {offset}: record length "
                                    f"{bytes(data[position:space])[:20]!r} is not a number") from None
        if length <= space - position + 1 or position + length > len(data) or data[position + length - 1] != 0x0A:
            raise DamagedShardError(f"damaged PAX header at byte {offset}: a record of {length} bytes does not fit "
                                    f"its {len(data)}-byte header")
        record = data[space + 1:position + length - 1]
        keyword, _, value = record.partition(b"=")
        if keyword == b"path":
            try:
                return value.decode("utf-8")
            except UnicodeDecodeError:
                raise DamagedShardError(f"damaged PAX header at byte {offset}: the path is not UTF-8") from None
        position += length
    return None


def iter_members(read: Callable[[int, int], bytes], size_bytes: int, *, start: int = 0,
                 stop: int | None = None) -> Iterator[TarMember]:
    """Regular members of a tar, walking headers from ``start`` until the end-of-archive marker or ``stop``.

    Args:
        read: ``read(offset, length) -> bytes`` (may return fewer bytes at the end of the file).
        size_bytes: bytes in the file; a member whose data would pass it is damage.
        start: byte offset of the first header to read.
        stop: stop cleanly when the next header would start at or after this offset (reading a span).

    Raises:
        DamagedShardError: a header that fails its checksum or is cut short, a member past the end of the file,
            or (when ``stop`` is None) a file that ends without the end-of-archive marker.
    """
    offset = start
    long_name: str | None = None
    first_header = offset
    while True:
        if stop is not None and offset >= stop:
            return
        block = read(offset, BLOCK_BYTES) if offset + BLOCK_BYTES <= size_bytes else b""
        if len(block) < BLOCK_BYTES:
            raise DamagedShardError(f"no end-of-archive marker: the file ends at byte {size_bytes}, inside or "
                                    f"before the header at byte {offset} (truncated?)")
        if block.count(0) == BLOCK_BYTES:
            return
        try:
            info = tarfile.TarInfo.frombuf(block, "utf-8", "surrogateescape")
        except tarfile.HeaderError as error:
            raise DamagedShardError(f"invalid tar header at byte {offset}: {error}") from error
        data_offset = offset + BLOCK_BYTES
        if data_offset + info.size > size_bytes:
            raise DamagedShardError(
                f"member {info.name!r} at byte {offset} needs {info.size} data bytes but the file ends at byte "
                f"{size_bytes} (truncated)")
        next_offset = data_offset + _padded(info.size)
        if info.type == tarfile.GNUTYPE_LONGNAME:
            long_name = read(data_offset, info.size).rstrip(b"\0").decode("utf-8", "surrogateescape")
        elif info.type in _PAX_TYPES:
            path = _pax_path(read(data_offset, info.size), offset)
            if info.type != tarfile.XGLTYPE and path is not None:
                long_name = path
        else:
            if info.type in _REGULAR_TYPES:
                yield TarMember(long_name or info.name, first_header, data_offset, info.size)
            long_name = None
            first_header = next_offset
        offset = next_offset


def split_name(name: str) -> tuple[str, str]:
    """WebDataset's split of a member name: the key is the name up to the first dot (after the last slash)."""
    directory, _, base = name.rpartition("/")
    stem, dot, suffix = base.partition(".")
    if not dot:
        return name, ""
    return (f"{directory}/{stem}" if directory else stem), suffix


def group_samples(members: Iterator[TarMember], samples: list[SampleSpan]) -> None:
    """Append consecutive members with the same key to ``samples`` as one :class:`SampleSpan` each."""
    for member in members:
        key, suffix = split_name(member.name)
        if samples and samples[-1].key == key:
            samples[-1].end = member.end
            samples[-1].suffixes.append(suffix)
        else:
            samples.append(SampleSpan(key, member.header_offset, member.end, [suffix]))


def scan_shard(read: Callable[[int, int], bytes], size_bytes: int) -> ShardContents:
    """Table of contents of one shard; damage stops the scan and is reported, the samples before it are kept.

    The last sample before damage may lack members (it was cut); callers check the suffixes they need.
    """
    samples: list[SampleSpan] = []
    try:
        group_samples(iter_members(read, size_bytes), samples)
        problem = None
    except DamagedShardError as error:
        problem = str(error)
    return ShardContents(samples=samples, problem=problem, size_bytes=size_bytes)


def parse_members(span: bytes | memoryview, key: str) -> dict[str, memoryview]:
    """``{suffix: data}`` of the members of ``key`` in ``span`` (the bytes ``[start, end)`` of a :class:`SampleSpan`).

    Raises:
        DamagedShardError: a header in the span is invalid, or a member does not belong to ``key``.
    """
    view = memoryview(span)

    def read(offset: int, length: int) -> bytes:
        return bytes(view[offset:offset + length])

    members: dict[str, memoryview] = {}
    for member in iter_members(read, len(view), stop=len(view)):
        member_key, suffix = split_name(member.name)
        if member_key != key:
            raise DamagedShardError(f"the bytes read for sample {key!r} hold a member of {member_key!r}: the shard "
                                    "changed since it was scanned, or the index offsets are wrong")
        members[suffix] = view[member.data_offset:member.end]
    return members
