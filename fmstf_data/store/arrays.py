"""Arrays as standard files: a NumPy ``.npy`` file in zstd frames, written and read without pickling.

:func:`encode_array` writes one zstd frame (sample format 1 and 2); :mod:`fmstf_data.store.bands` writes the same
``.npy`` bytes as several concatenated frames (format 3). Either way ``zstd -d`` + ``numpy.load(...,
allow_pickle=False)`` reads the file without this package: a zstd stream may hold any number of frames (RFC 8878 §3).
"""

from __future__ import annotations

import io
import math
import re

import numpy as np
import pyarrow as pa

from fmstf_data.errors import SampleFormatError

DEFAULT_ZSTD_LEVEL = 3


def npy_header_bytes(shape: tuple[int, ...], dtype: np.dtype) -> bytes:
    """The ``.npy`` preamble and header ``numpy.save`` writes for a C-order array of ``shape`` and ``dtype``."""
    buffer = io.BytesIO()
    np.lib.format.write_array_header_1_0(buffer, {"descr": np.lib.format.dtype_to_descr(np.dtype(dtype)),
                                                  "fortran_order": False, "shape": tuple(shape)})
    return buffer.getvalue()


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


def zstd_frames(data: bytes | memoryview) -> list[tuple[int, int | None]]:
    """(compressed bytes, declared content size or None) of each zstd frame of a stream, by walking the frame and
    block headers (RFC 8878 §3.1.1: frame header, blocks of a 3-byte header each, optional 4-byte checksum).

    Raises:
        SampleFormatError: the bytes are not a series of whole zstd frames.
    """
    view = memoryview(data)
    frames = []
    position = 0
    while position < len(view):
        frame_start = position
        size = zstd_content_size(view[position:])
        descriptor = view[position + 4]
        size_flag, single_segment, checksum, dictionary_flag = (descriptor >> 6, (descriptor >> 5) & 1,
                                                                (descriptor >> 2) & 1, descriptor & 3)
        position += 5 + (0 if single_segment else 1) + (0, 1, 2, 4)[dictionary_flag]
        position += (1 if single_segment else 0, 2, 4, 8)[size_flag]
        while True:
            if position + 3 > len(view):
                raise SampleFormatError("stored array's zstd stream is cut short inside a block header")
            header = int.from_bytes(view[position:position + 3], "little")
            last, block_type, block_size = header & 1, (header >> 1) & 3, header >> 3
            if block_type == 3:
                raise SampleFormatError("stored array's zstd stream has a reserved block type (corrupt)")
            position += 3 + (1 if block_type == 1 else block_size)
            if last:
                break
        position += 4 * checksum
        if position > len(view):
            raise SampleFormatError("stored array's zstd stream is cut short")
        frames.append((position - frame_start, size))
    return frames


def decode_array(data: bytes | memoryview) -> np.ndarray:
    """Inverse of :func:`encode_array` (and of a banded member, decoded whole): a read-only view of the
    decompressed buffer; never unpickles.

    The zstd frame headers' content sizes size one decompression call (a stream lacking them is streamed); the
    ``.npy`` header is matched strictly (:func:`parse_npy_header`) and gives dtype and shape for ``numpy.frombuffer``.

    Raises:
        SampleFormatError: not a zstd stream, corrupt compressed data, or not a plain numeric ``.npy``.
    """
    try:
        size = zstd_content_size(data)
        if size is not None and len(data) > 4 and size < NPY_PREAMBLE_BYTES:  # a header frame: a banded member
            sizes = [content for _, content in zstd_frames(data)]
            size = None if None in sizes else sum(sizes)
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
