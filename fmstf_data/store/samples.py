"""The sample codec (design contract 2): triplet planes <-> the bytes stored in a WebDataset shard.

A sample is one (t-1, t, t+1) triplet of one pair. Its members in a tar are:

======================  ===========================================================================
member suffix            content
======================  ===========================================================================
``json``                 metadata (UTF-8 JSON, sorted keys): key, pair, split, frames, tags, scores
``hdr_y.npy.zst``        uint16 [3, H, W]: the decoder's 10-bit luma planes of the three HDR frames
``hdr_cb.npy.zst``       uint16 [3, ceil(H/2), ceil(W/2)]
``hdr_cr.npy.zst``       uint16 [3, ceil(H/2), ceil(W/2)]
``sdr_y.npy.zst``        uint8 [3, H, W]: the SDR luma on the HDR geometry
``sdr_cb.npy.zst``       uint8 [3, ceil(H/2), ceil(W/2)]
``sdr_cr.npy.zst``       uint8 [3, ceil(H/2), ceil(W/2)]
======================  ===========================================================================

Each ``.npy.zst`` is a standard NumPy ``.npy`` file in one standard zstd frame (written through ``pyarrow``), so
``tar xf`` + ``zstd -d`` + ``numpy.load(..., allow_pickle=False)`` reads it without this package. Nothing is
pickled, in writing or reading. Keys follow contract 1: ``{pair_id}_{centre_frame:06d}``, no dots.

Integrity (format version 2): a damaged byte inside a zstd payload can decompress without any error into wrong
codes. The JSON therefore carries ``plane_crc32``: per array member, the CRC-32 (``zlib.crc32``) of its decoded
plane data (C order, little-endian), and :func:`decode_sample` compares it and checks that 10-bit planes hold codes
of at most 1023. A mismatch is a :class:`~fmstf_data.errors.SampleFormatError` naming the member. The checksums
cover decoded values, not compressed bytes, so they do not depend on the zstd library's version. Version 1 samples
(no checksums) are still read.
"""

from __future__ import annotations

import io
import json
import math
import os
import re
import zlib
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa

from fmstf_data.errors import SampleFormatError

#: version of the stored layout; readers refuse versions they do not know
SAMPLE_FORMAT_VERSION = 2
#: the versions this reader understands (1: no plane checksums)
READABLE_FORMAT_VERSIONS = (1, 2)
#: the largest code of a 10-bit plane
MAX_10BIT_CODE = 1023
PAIR_ID_PATTERN = re.compile(r"^[a-z0-9][a-z0-9_-]*$")
KEY_PATTERN = re.compile(r"^[a-z0-9][a-z0-9_-]*_[0-9]{6,}$")
PLANE_NAMES = ("y", "cb", "cr")
SIDES = ("hdr", "sdr")
SIDE_DTYPES = {"hdr": np.dtype(np.uint16), "sdr": np.dtype(np.uint8)}
FRAMES_PER_SAMPLE = 3
DEFAULT_ZSTD_LEVEL = 3


def member_suffix(side: str, plane: str) -> str:
    """The tar member suffix of one plane stack, e.g. ``hdr_y.npy.zst``."""
    return f"{side}_{plane}.npy.zst"


ARRAY_SUFFIXES = tuple(member_suffix(side, plane) for side in SIDES for plane in PLANE_NAMES)
MEMBER_SUFFIXES = ("json", *ARRAY_SUFFIXES)


def sample_key(pair_id: str, centre_frame: int) -> str:
    """``{pair_id}_{centre_frame:06d}`` (contract 1): unique within a build, no dots."""
    if not PAIR_ID_PATTERN.match(pair_id):
        raise SampleFormatError(f"pair id {pair_id!r} does not match [a-z0-9][a-z0-9_-]*")
    if centre_frame < 0:
        raise SampleFormatError(f"centre frame must be >= 0, got {centre_frame}")
    return f"{pair_id}_{centre_frame:06d}"


def encode_array(array: np.ndarray, zstd_level: int = DEFAULT_ZSTD_LEVEL) -> bytes:
    """A ``.npy`` file of ``array`` (little-endian), compressed as one standard zstd frame."""
    buffer = io.BytesIO()
    np.save(buffer, np.ascontiguousarray(array), allow_pickle=False)
    return pa.Codec("zstd", compression_level=zstd_level).compress(buffer.getbuffer(), asbytes=True)


ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"
#: bytes of a .npy preamble read to find its header (magic, version, length, header: 128 bytes for our arrays)
NPY_PREAMBLE_BYTES = 4096
#: the header ``numpy.save`` writes for a plain array: "{'descr': '<u2', 'fortran_order': False, 'shape': (3, 4), }"
NPY_HEADER = re.compile(
    rb"^\{'descr': '(?P<descr>[<>|=]?[a-z][0-9]{1,2})', 'fortran_order': (?P<fortran>True|False), "
    rb"'shape': \((?P<shape>(?:[0-9]+, ?)*[0-9]*)\), \} *\n$")


def zstd_content_size(data: bytes | memoryview) -> int | None:
    """The decompressed size a zstd frame declares in its header (RFC 8878 §3.1.1.1), None when absent."""
    view = memoryview(data)
    if len(view) < 6 or bytes(view[:4]) != ZSTD_MAGIC:
        raise SampleFormatError("stored array is not a zstd frame (bad magic number)")
    descriptor = view[4]
    size_flag, single_segment, dictionary_flag = descriptor >> 6, (descriptor >> 5) & 1, descriptor & 3
    position = 5 + (0 if single_segment else 1) + (0, 1, 2, 4)[dictionary_flag]
    field_bytes = (1 if single_segment else 0, 2, 4, 8)[size_flag]
    if field_bytes == 0:
        return None
    if len(view) < position + field_bytes:
        raise SampleFormatError("stored array's zstd frame header is cut short")
    value = int.from_bytes(view[position:position + field_bytes], "little")
    return value + 256 if field_bytes == 2 else value


def parse_npy_header(preamble: bytes) -> tuple[tuple[int, ...], bool, np.dtype, int]:
    """(shape, fortran_order, dtype, data offset) of a ``.npy`` file of a plain numeric dtype.

    Parsed with a strict pattern of what ``numpy.save`` writes, not with ``ast.literal_eval`` (as ``numpy.load``
    does): the bytes may be garbage when a shard is corrupt, and CPython 3.11's AST builder can be left in a broken
    state by odd input (cpython#106905), failing every later parse in the process. Object dtypes are refused, so
    nothing is ever unpickled.
    """
    if preamble[:6] != b"\x93NUMPY" or len(preamble) < 10:
        raise SampleFormatError("stored array is not a .npy file (bad magic string)")
    major = preamble[6]
    length_bytes = 2 if major == 1 else 4
    if major not in (1, 2, 3) or len(preamble) < 8 + length_bytes:
        raise SampleFormatError(f"unknown .npy format version {major}")
    header_length = int.from_bytes(preamble[8:8 + length_bytes], "little")
    offset = 8 + length_bytes + header_length
    match = NPY_HEADER.match(preamble[8 + length_bytes:offset])
    if match is None:
        raise SampleFormatError("stored array's .npy header is not a plain numeric array header")
    try:
        dtype = np.dtype(match["descr"].decode("ascii"))
    except TypeError as error:
        raise SampleFormatError(f"stored array has an unknown dtype {match['descr']!r}") from error
    if dtype.hasobject or dtype.kind not in "biuf":
        raise SampleFormatError(f"stored array has dtype {dtype}; the sample format stores numbers only")
    shape = tuple(int(v) for v in match["shape"].replace(b" ", b"").split(b",") if v)
    return shape, match["fortran"] == b"True", dtype, offset


def decode_array(data: bytes | memoryview) -> np.ndarray:
    """Inverse of :func:`encode_array`: a read-only view of the decompressed buffer; never unpickles.

    The zstd frame header's content size sizes one decompression call (a frame without it is streamed); the
    ``.npy`` header is matched strictly (:func:`parse_npy_header`) and gives dtype and shape for ``numpy.frombuffer``.

    Raises:
        SampleFormatError: not a zstd frame, corrupt compressed data, or not a plain numeric ``.npy``.
    """
    try:
        size = zstd_content_size(data)
        if size is None:
            raw = pa.py_buffer(pa.CompressedInputStream(pa.BufferReader(bytes(data)), "zstd").read())
        else:
            raw = pa.Codec("zstd").decompress(data, decompressed_size=size)
    except (OSError, ValueError, pa.ArrowException) as error:
        raise SampleFormatError(f"stored array does not decode as zstd-compressed .npy: {error}") from error
    shape, fortran_order, dtype, offset = parse_npy_header(raw.slice(0, min(raw.size, NPY_PREAMBLE_BYTES)).to_pybytes())
    count = math.prod(shape)
    if offset + count * dtype.itemsize != raw.size:
        raise SampleFormatError(f".npy header says {shape} {dtype} but holds {raw.size - offset} data bytes")
    array = np.frombuffer(raw, dtype=dtype, count=count, offset=offset)
    return array.reshape(shape[::-1]).T if fortran_order else array.reshape(shape)


@dataclass
class Sample:
    """One stored triplet.

    Attributes:
        key: ``{pair_id}_{centre_frame:06d}``.
        hdr: (y, cb, cr) uint16 code planes, y [3, H, W], chroma [3, ceil(H/2), ceil(W/2)] (10-bit, as decoded).
        sdr: (y, cb, cr) uint8 code planes of the same shapes (8-bit, on the HDR geometry).
        metadata: JSON-ready mapping; ``key`` and ``format_version`` are filled in by :func:`encode_sample`.
    """

    key: str
    hdr: tuple[np.ndarray, np.ndarray, np.ndarray]
    sdr: tuple[np.ndarray, np.ndarray, np.ndarray]
    metadata: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not KEY_PATTERN.match(self.key):
            raise SampleFormatError(f"sample key {self.key!r} is not {{pair_id}}_{{centre_frame:06d}}")
        for side in SIDES:
            planes = getattr(self, side)
            if len(planes) != 3:
                raise SampleFormatError(f"{self.key}: {side} needs 3 planes (y, cb, cr), got {len(planes)}")
            y = planes[0]
            if y.ndim != 3 or y.shape[0] != FRAMES_PER_SAMPLE:
                raise SampleFormatError(f"{self.key}: {side} luma must be [3, H, W], got {list(y.shape)}")
            chroma_shape = (FRAMES_PER_SAMPLE, (y.shape[1] + 1) // 2, (y.shape[2] + 1) // 2)
            for name, plane in zip(PLANE_NAMES, planes):
                if plane.dtype != SIDE_DTYPES[side]:
                    raise SampleFormatError(f"{self.key}: {side}_{name} must be {SIDE_DTYPES[side]}, got {plane.dtype}")
                if name != "y" and plane.shape != chroma_shape:
                    raise SampleFormatError(
                        f"{self.key}: {side}_{name} must be {list(chroma_shape)} for 4:2:0, got {list(plane.shape)}")
        if self.hdr[0].shape != self.sdr[0].shape:
            raise SampleFormatError(
                f"{self.key}: SDR luma {list(self.sdr[0].shape)} is not on the HDR geometry {list(self.hdr[0].shape)}")

    @property
    def height(self) -> int:
        return int(self.hdr[0].shape[1])

    @property
    def width(self) -> int:
        return int(self.hdr[0].shape[2])


def encode_metadata(metadata: Mapping[str, Any]) -> bytes:
    """Deterministic JSON bytes (sorted keys, no whitespace variations)."""
    return json.dumps(metadata, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode("utf-8")


_ENCODE_POOLS: dict[int, ThreadPoolExecutor] = {}


def _encode_threads(threads: int | None) -> ThreadPoolExecutor:
    """A pool of ``threads`` threads (None: one per array, at most one per CPU) for compressing a sample's six
    arrays at once (zstd releases the GIL); made on first use and kept."""
    count = min(len(ARRAY_SUFFIXES), os.cpu_count() or 1) if threads is None else max(1, int(threads))
    if count not in _ENCODE_POOLS:
        _ENCODE_POOLS[count] = ThreadPoolExecutor(max_workers=count, thread_name_prefix="fmstf-zstd")
    return _ENCODE_POOLS[count]


def encode_sample(sample: Sample, zstd_level: int = DEFAULT_ZSTD_LEVEL, *, threads: int | None = None
                  ) -> dict[str, bytes]:
    """Member suffix -> bytes for one sample (see the module docstring for the layout).

    The six arrays are compressed in parallel, on ``threads`` threads (None: one per array, at most one per CPU);
    each is compressed on its own, so the bytes do not depend on the number of threads.
    """
    metadata = dict(sample.metadata)
    metadata["key"] = sample.key
    metadata["format_version"] = SAMPLE_FORMAT_VERSION
    planes = [plane for side in SIDES for plane in getattr(sample, side)]
    compressed = list(_encode_threads(threads).map(lambda plane: encode_array(plane, zstd_level), planes))
    metadata["plane_crc32"] = {suffix: plane_crc32(plane) for suffix, plane in zip(ARRAY_SUFFIXES, planes)}
    return {"json": encode_metadata(metadata), **dict(zip(ARRAY_SUFFIXES, compressed))}


def plane_crc32(plane: np.ndarray) -> int:
    """CRC-32 of a plane's data as stored: C order, little-endian."""
    stored = np.ascontiguousarray(plane, dtype=plane.dtype.newbyteorder("<"))
    return zlib.crc32(memoryview(stored).cast("B"))


def decode_metadata(data: bytes) -> dict[str, Any]:
    try:
        metadata = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise SampleFormatError(f"sample metadata is not UTF-8 JSON: {error}") from error
    version = metadata.get("format_version")
    if type(version) is not int or version not in READABLE_FORMAT_VERSIONS:
        raise SampleFormatError(
            f"sample {metadata.get('key')!r} has format_version {version!r}; this fmstf-data reads "
            f"{', '.join(map(str, READABLE_FORMAT_VERSIONS))}: upgrade fmstf-data or rebuild the shards")
    return metadata


def decode_sample(members: Mapping[str, bytes | memoryview], key: str | None = None) -> Sample:
    """Inverse of :func:`encode_sample`; ``members`` maps suffixes to bytes (extra members are ignored)."""
    missing = [suffix for suffix in MEMBER_SUFFIXES if suffix not in members]
    if missing:
        raise SampleFormatError(f"sample {key or '?'} lacks members {missing}")
    metadata = decode_metadata(bytes(members["json"]))
    checksums = metadata.get("plane_crc32")
    if metadata["format_version"] >= 2 and not isinstance(checksums, dict):
        raise SampleFormatError(f"sample {key or metadata.get('key', '?')}: metadata lacks its plane checksums")
    planes = {}
    for side in SIDES:
        arrays = []
        for name in PLANE_NAMES:
            suffix = member_suffix(side, name)
            array = decode_array(members[suffix])
            if checksums is not None and plane_crc32(array) != checksums.get(suffix):
                raise SampleFormatError(f"sample {key or metadata.get('key', '?')}: {suffix} is damaged (its "
                                        f"decoded planes do not match the checksum in the sample's JSON)")
            if array.dtype.itemsize == 2 and array.size and int(array.max()) > MAX_10BIT_CODE:
                raise SampleFormatError(f"sample {key or metadata.get('key', '?')}: {suffix} holds codes above "
                                        f"{MAX_10BIT_CODE} (damaged, or not a 10-bit plane)")
            arrays.append(array)
        planes[side] = tuple(arrays)
    try:
        return Sample(key=metadata["key"], hdr=planes["hdr"], sdr=planes["sdr"], metadata=metadata)
    except KeyError as error:
        raise SampleFormatError(f"sample {key or '?'}: metadata lacks {error}") from error
