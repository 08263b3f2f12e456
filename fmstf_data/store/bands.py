"""Banded planes (sample format 3): a plane stack as a ``.npy`` file in many zstd frames, one per row band.

A stored plane stack is a C-order array ``[N, H, W]`` (N frames). Its ``.npy`` bytes are compressed as a series
of concatenated zstd frames: frame 0 holds the ``.npy`` preamble and header; then, for each of the N frames in
order and each band ``b`` of ``band_rows`` rows (the last band shorter), one zstd frame holds rows
``[b * band_rows, min((b + 1) * band_rows, H))``. Concatenated frames form one standard zstd stream (RFC 8878 §3),
so ``zstd -d`` turns the member back into the plain ``.npy`` file, byte for byte.

The sample's JSON carries a :class:`BandTable` per member: the rows per band, the compressed size of every zstd
frame and the CRC-32 (``zlib.crc32``) of every frame's stored (compressed) bytes. A reader that wants rows
``[r0, r1)`` of every frame (a crop) reads frame 0 and, per frame, only the bands those rows touch (one contiguous
byte range each), checks their CRCs and decompresses them. Every damaged stored byte is an error, also those zstd
would decode without one; checking the stored bytes costs about half of checking the decoded ones, and
``verify`` can check them without decompressing.

Luma bands hold ``band_rows`` rows and 4:2:0 chroma bands ``band_rows / 2``, so band ``b`` of every plane covers
the same picture area (``ceil(ceil(H / 2) / (R / 2)) == ceil(H / R)`` for even R).
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa

from fmstf_data.errors import SampleFormatError
from fmstf_data.store.arrays import DEFAULT_ZSTD_LEVEL, npy_header_bytes, parse_npy_header, zstd_content_size

#: luma rows per band (chroma: half). Chosen from bench/bench_zstd.py's band table (docs/benchmarks.md).
DEFAULT_BAND_ROWS = 64


@dataclass(frozen=True)
class BandTable:
    """Where the zstd frames of one banded member are, and what they must decode to.

    Attributes:
        band_rows: rows per band of this plane (luma: the sample's band rows; chroma: half).
        bands: bands per frame, ``ceil(H / band_rows)``.
        sizes: compressed bytes of each zstd frame: [1 + N * bands], the header frame first.
        crc32: CRC-32 of each zstd frame's stored (compressed) bytes, same order.
    """

    band_rows: int
    bands: int
    sizes: tuple[int, ...]
    crc32: tuple[int, ...]

    def __post_init__(self) -> None:
        if self.band_rows < 1 or self.bands < 1:
            raise SampleFormatError(f"band table needs band_rows >= 1 and bands >= 1, got {self.band_rows}, "
                                    f"{self.bands}")
        if len(self.sizes) != len(self.crc32) or (len(self.sizes) - 1) % self.bands or len(self.sizes) < 2:
            raise SampleFormatError(f"band table lists {len(self.sizes)} frame sizes and {len(self.crc32)} "
                                    f"checksums for {self.bands} bands per frame")
        if not all(type(v) is int for v in self.sizes) or not all(type(v) is int for v in self.crc32) \
                or min(self.sizes) < 0 or min(self.crc32) < 0:
            raise SampleFormatError("band table sizes and checksums must be non-negative integers")
        offsets = [0]
        for size in self.sizes:
            offsets.append(offsets[-1] + size)
        object.__setattr__(self, "_offsets", tuple(offsets))

    @property
    def frames(self) -> int:
        """N, the frames of the stack."""
        return (len(self.sizes) - 1) // self.bands

    @property
    def member_bytes(self) -> int:
        return self.offsets()[-1]

    def offsets(self) -> tuple[int, ...]:
        """Byte offset of each zstd frame within the member (and the member's size last)."""
        return self._offsets  # type: ignore[attr-defined]

    def band_range(self, frame: int, first_band: int, stop_band: int) -> tuple[int, int]:
        """``[start, end)`` bytes in the member of bands ``[first_band, stop_band)`` of ``frame``."""
        offsets = self.offsets()
        first = 1 + frame * self.bands + first_band
        return offsets[first], offsets[first + stop_band - first_band]

    def to_dict(self) -> dict[str, Any]:
        return {"band_rows": self.band_rows, "bands": self.bands, "sizes": list(self.sizes),
                "crc32": list(self.crc32)}

    @classmethod
    def from_dict(cls, data: Any, where: str) -> BandTable:
        if not isinstance(data, Mapping):
            raise SampleFormatError(f"{where}: band table is not an object")
        try:
            return cls(band_rows=data["band_rows"], bands=data["bands"], sizes=tuple(data["sizes"]),
                       crc32=tuple(data["crc32"]))
        except (KeyError, TypeError) as error:
            raise SampleFormatError(f"{where}: band table lacks or misstates {error}") from error


def bands_of_rows(row_start: int, row_stop: int, band_rows: int) -> tuple[int, int]:
    """The bands ``[first, stop)`` that rows ``[row_start, row_stop)`` touch."""
    return row_start // band_rows, -(-row_stop // band_rows)


def encode_banded(array: np.ndarray, band_rows: int, zstd_level: int = DEFAULT_ZSTD_LEVEL
                  ) -> tuple[bytes, BandTable]:
    """``array`` [N, H, W] as a banded ``.npy`` member and its band table (see the module docstring)."""
    if array.ndim != 3 or band_rows < 1:
        raise SampleFormatError(f"banded planes need a [N, H, W] array and band_rows >= 1, got shape "
                                f"{list(array.shape)}, band_rows {band_rows}")
    stored = np.ascontiguousarray(array, dtype=array.dtype.newbyteorder("<"))
    codec = pa.Codec("zstd", compression_level=zstd_level)
    header = npy_header_bytes(stored.shape, stored.dtype)
    pieces = [header]
    frames, height, _ = stored.shape
    bands = max(1, math.ceil(height / band_rows))
    for frame in range(frames):
        for band in range(bands):
            pieces.append(memoryview(stored[frame, band * band_rows:(band + 1) * band_rows]).cast("B"))
    compressed = [codec.compress(piece, asbytes=True) for piece in pieces]
    table = BandTable(band_rows=band_rows, bands=bands, sizes=tuple(len(c) for c in compressed),
                      crc32=tuple(zlib.crc32(c) for c in compressed))
    return b"".join(compressed), table


def _decompress(data: bytes | memoryview, size: int, where: str) -> pa.Buffer:
    try:
        out = pa.Codec("zstd").decompress(data, decompressed_size=size)
    except (OSError, ValueError, pa.ArrowException) as error:
        raise SampleFormatError(f"{where} is damaged (does not decompress as zstd: {error})") from error
    if out.size != size:
        raise SampleFormatError(f"{where} is damaged (decompressed to {out.size} bytes, expected {size})")
    return out


def check_stored(data: bytes | memoryview, table: BandTable, first_frame: int, stop_frame: int, where: str) -> None:
    """Compare the stored bytes of zstd frames ``[first_frame, stop_frame)`` (``data``: exactly those frames) with
    their CRC-32s in the table."""
    view = memoryview(data)
    position = 0
    for index in range(first_frame, stop_frame):
        size = table.sizes[index]
        if zlib.crc32(view[position:position + size]) != table.crc32[index]:
            raise SampleFormatError(f"{where} is damaged (its stored bytes do not match the checksum in the "
                                    "sample's JSON)")
        position += size


#: reads ``length`` bytes at ``offset`` of a member
ReadMember = Callable[[int, int], bytes | memoryview]


#: the largest .npy header frame accepted (ours are 128 bytes)
MAX_HEADER_BYTES = 1 << 16


def read_header(read: ReadMember, table: BandTable, where: str) -> tuple[tuple[int, int, int], np.dtype, int]:
    """(shape, dtype, header bytes) of a banded member from its header frame, checked against the table."""
    compressed = read(0, table.sizes[0])
    check_stored(compressed, table, 0, 1, where)
    size = zstd_content_size(compressed)
    if size is None or size > MAX_HEADER_BYTES:
        raise SampleFormatError(f"{where}: its header frame does not state a plausible size ({size})")
    raw = _decompress(compressed, size, where)
    shape, fortran_order, dtype, offset = parse_npy_header(raw.to_pybytes())
    if fortran_order or offset != raw.size or len(shape) != 3 or 0 in shape:
        raise SampleFormatError(f"{where}: a banded member must hold a C-order [N, H, W] array, got {list(shape)}")
    frames, height, width = shape
    if frames != table.frames or math.ceil(height / table.band_rows) != table.bands:
        raise SampleFormatError(f"{where}: header says {list(shape)} but the band table has {table.frames} "
                                f"frame(s) of {table.bands} band(s) of {table.band_rows} rows")
    return (frames, height, width), dtype, size


def decode_rows(read: ReadMember, table: BandTable, row_start: int, row_stop: int, where: str
                ) -> tuple[np.ndarray, int]:
    """Rows of every frame of a banded member, whole bands: ``[N, rows, W]`` and the first row held.

    The rows held are those of the bands that ``[row_start, row_stop)`` touch (clipped to the plane), so the result
    covers at least the rows asked. Only the header frame and those bands are read (one ``read`` per frame) and
    decompressed, each after its CRC-32 is checked.

    Raises:
        SampleFormatError: corrupt zstd data, a checksum mismatch, or a header that disagrees with the table.
    """
    (frames, height, width), dtype, _ = read_header(read, table, where)
    row_start, row_stop = max(0, row_start), min(height, row_stop)
    if row_stop <= row_start:
        raise SampleFormatError(f"{where}: no rows in [{row_start}, {row_stop}) of a {height}-row plane")
    first, stop = bands_of_rows(row_start, row_stop, table.band_rows)
    held_start, held_stop = first * table.band_rows, min(height, stop * table.band_rows)
    row_bytes = width * dtype.itemsize
    out = np.empty((frames, held_stop - held_start, width), dtype=dtype)
    for frame in range(frames):
        start, end = table.band_range(frame, first, stop)
        stored = read(start, end - start)
        check_stored(stored, table, 1 + frame * table.bands + first, 1 + frame * table.bands + stop, where)
        raw = _decompress(stored, (held_stop - held_start) * row_bytes, where)
        out[frame] = np.frombuffer(raw, dtype=dtype).reshape(held_stop - held_start, width)
    return out, held_start


def decode_banded(data: bytes | memoryview, table: BandTable, where: str) -> np.ndarray:
    """A whole banded member ``[N, H, W]``: one decompression of the whole stream, every frame's CRC checked."""
    view = memoryview(data)
    if len(view) != table.member_bytes:
        raise SampleFormatError(f"{where} is damaged ({len(view)} bytes stored, its band table says "
                                f"{table.member_bytes})")
    (frames, height, width), dtype, header_size = read_header(
        lambda offset, length: view[offset:offset + length], table, where)
    row_bytes = width * dtype.itemsize
    check_stored(view[table.sizes[0]:], table, 1, len(table.sizes), where)
    raw = _decompress(view, header_size + frames * height * row_bytes, where)
    return np.frombuffer(raw, dtype=dtype, count=frames * height * width, offset=header_size).reshape(
        frames, height, width)
