"""The sample codec (design contract 2): window planes <-> the bytes stored in a WebDataset shard.

A sample is one window of N consecutive frames of one pair (N = 3, the (t-1, t, t+1) triplets of the paper, by
default; any odd N >= 3 with the build option ``window_frames``). Its members in a tar are:

======================  ===========================================================================
member suffix            content
======================  ===========================================================================
``json``                 metadata (UTF-8 JSON, sorted keys): key, pair, split, frames, tags, scores, bands
``hdr_y.npy.zst``        uint16 [N, H, W]: the decoder's 10-bit luma planes of the N HDR frames
``hdr_cb.npy.zst``       uint16 [N, ceil(H/2), ceil(W/2)]
``hdr_cr.npy.zst``       uint16 [N, ceil(H/2), ceil(W/2)]
``sdr_y.npy.zst``        uint8 [N, H, W]: the SDR luma on the HDR geometry
``sdr_cb.npy.zst``       uint8 [N, ceil(H/2), ceil(W/2)]
``sdr_cr.npy.zst``       uint8 [N, ceil(H/2), ceil(W/2)]
======================  ===========================================================================

Each ``.npy.zst`` is a standard NumPy ``.npy`` file in a standard zstd stream (written through ``pyarrow``), so
``tar xf`` + ``zstd -d`` + ``numpy.load(..., allow_pickle=False)`` reads it without this package. Nothing is
pickled, in writing or reading. Keys follow contract 1: ``{pair_id}_{centre_frame:06d}``, no dots.

Format versions (readers refuse versions they do not know; this one reads all three):

- **3** (written): each plane stack is banded (:mod:`fmstf_data.store.bands`): one zstd frame per row band per
  frame, so a crop decompresses only the bands it touches. The JSON's ``bands`` maps each array member to its band
  table: the compressed size and the CRC-32 of the decoded bytes of every zstd frame. Any byte damaged inside a
  payload is caught by the CRC of its band even when zstd decodes it without error. N may exceed 3.
- **2**: one zstd frame per member; ``plane_crc32`` holds the CRC-32 of each member's decoded planes.
- **1**: one zstd frame per member, no checksums.

Every version's 10-bit planes are also range-checked (codes at most 1023).
"""

from __future__ import annotations

import json
import os
import re
import zlib
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from fmstf_data.errors import SampleFormatError
from fmstf_data.store.arrays import DEFAULT_ZSTD_LEVEL, decode_array, encode_array
from fmstf_data.store.bands import DEFAULT_BAND_ROWS, BandTable, ReadMember, decode_banded, decode_rows, encode_banded

#: version of the stored layout; readers refuse versions they do not know
SAMPLE_FORMAT_VERSION = 3
#: the versions this reader understands (1: no checksums; 2: whole-member checksums; 3: banded, band checksums)
READABLE_FORMAT_VERSIONS = (1, 2, 3)
#: the largest code of a 10-bit plane
MAX_10BIT_CODE = 1023
PAIR_ID_PATTERN = re.compile(r"^[a-z0-9][a-z0-9_-]*$")
KEY_PATTERN = re.compile(r"^[a-z0-9][a-z0-9_-]*_[0-9]{6,}$")
PLANE_NAMES = ("y", "cb", "cr")
SIDES = ("hdr", "sdr")
SIDE_DTYPES = {"hdr": np.dtype(np.uint16), "sdr": np.dtype(np.uint8)}
#: frames per sample by default: the (t-1, t, t+1) triplet
DEFAULT_WINDOW_FRAMES = 3

__all__ = ["DEFAULT_ZSTD_LEVEL", "decode_array", "encode_array"]  # re-exported for readers of formats 1 and 2


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


def check_window_frames(window_frames: int) -> int:
    """``window_frames`` if it is an odd integer >= 3 (a window has a centre frame), else SampleFormatError."""
    if type(window_frames) is not int or window_frames < 3 or window_frames % 2 == 0:
        raise SampleFormatError(f"window_frames must be an odd integer >= 3, got {window_frames!r}")
    return window_frames


@dataclass
class Sample:
    """One stored window of N frames (N odd, >= 3; a triplet by default).

    Attributes:
        key: ``{pair_id}_{centre_frame:06d}``.
        hdr: (y, cb, cr) uint16 code planes, y [N, H, W], chroma [N, ceil(H/2), ceil(W/2)] (10-bit, as decoded).
        sdr: (y, cb, cr) uint8 code planes of the same shapes (8-bit, on the HDR geometry).
        metadata: JSON-ready mapping; ``key``, ``format_version``, ``window_frames`` and ``bands`` are filled in
            by :func:`encode_sample` (decoding consumes ``bands``: the decoded sample's metadata lacks it).
        first_row: the planes hold luma rows ``[first_row, first_row + H)`` of the frame (chroma from
            ``first_row / 2``): 0 for whole frames; a row band's first row when only some rows were decoded
            (:func:`decode_sample` with ``rows``).
    """

    key: str
    hdr: tuple[np.ndarray, np.ndarray, np.ndarray]
    sdr: tuple[np.ndarray, np.ndarray, np.ndarray]
    metadata: dict[str, Any] = field(default_factory=dict)
    first_row: int = 0

    def __post_init__(self) -> None:
        if not KEY_PATTERN.match(self.key):
            raise SampleFormatError(f"sample key {self.key!r} is not {{pair_id}}_{{centre_frame:06d}}")
        if self.first_row < 0 or self.first_row % 2:
            raise SampleFormatError(f"{self.key}: first_row must be even and >= 0, got {self.first_row}")
        for side in SIDES:
            planes = getattr(self, side)
            if len(planes) != 3:
                raise SampleFormatError(f"{self.key}: {side} needs 3 planes (y, cb, cr), got {len(planes)}")
            y = planes[0]
            if y.ndim != 3 or y.shape[0] < 3 or y.shape[0] % 2 == 0:
                raise SampleFormatError(f"{self.key}: {side} luma must be [N, H, W] with N odd and >= 3, got "
                                        f"{list(y.shape)}")
            chroma_shape = (y.shape[0], (y.shape[1] + 1) // 2, (y.shape[2] + 1) // 2)
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
    def window_frames(self) -> int:
        """N, the frames of the window."""
        return int(self.hdr[0].shape[0])

    @property
    def height(self) -> int:
        """Rows held (the frame height unless only some rows were decoded: see ``first_row``)."""
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


def encode_sample(sample: Sample, zstd_level: int = DEFAULT_ZSTD_LEVEL, *, threads: int | None = None,
                  band_rows: int = DEFAULT_BAND_ROWS) -> dict[str, bytes]:
    """Member suffix -> bytes for one sample (format 3: see the module docstring for the layout).

    The six arrays are compressed in parallel, on ``threads`` threads (None: one per array, at most one per CPU);
    each is compressed on its own, so the bytes do not depend on the number of threads. Luma bands hold
    ``band_rows`` rows (even), chroma bands half as many.
    """
    if band_rows < 2 or band_rows % 2:
        raise SampleFormatError(f"band_rows must be an even number >= 2, got {band_rows}")
    if sample.first_row != 0:
        raise SampleFormatError(f"{sample.key}: only whole frames are stored (first_row is {sample.first_row})")
    metadata = dict(sample.metadata)
    metadata["key"] = sample.key
    metadata["format_version"] = SAMPLE_FORMAT_VERSION
    metadata["window_frames"] = sample.window_frames
    planes = [plane for side in SIDES for plane in getattr(sample, side)]
    rows = [band_rows if name == "y" else band_rows // 2 for _ in SIDES for name in PLANE_NAMES]
    encoded = list(_encode_threads(threads).map(lambda job: encode_banded(job[0], job[1], zstd_level),
                                                zip(planes, rows)))
    metadata["bands"] = {suffix: table.to_dict() for suffix, (_, table) in zip(ARRAY_SUFFIXES, encoded)}
    return {"json": encode_metadata(metadata), **{suffix: data for suffix, (data, _) in zip(ARRAY_SUFFIXES, encoded)}}


def plane_crc32(plane: np.ndarray) -> int:
    """CRC-32 of a plane's data as stored: C order, little-endian (format 2's ``plane_crc32``)."""
    stored = np.ascontiguousarray(plane, dtype=plane.dtype.newbyteorder("<"))
    return zlib.crc32(memoryview(stored).cast("B"))


def decode_metadata(data: bytes) -> dict[str, Any]:
    try:
        metadata = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise SampleFormatError(f"sample metadata is not UTF-8 JSON: {error}") from error
    if not isinstance(metadata, dict):
        raise SampleFormatError("sample metadata is not a JSON object")
    version = metadata.get("format_version")
    if type(version) is not int or version not in READABLE_FORMAT_VERSIONS:
        raise SampleFormatError(
            f"sample {metadata.get('key')!r} has format_version {version!r}; this fmstf-data reads "
            f"{', '.join(map(str, READABLE_FORMAT_VERSIONS))}: upgrade fmstf-data or rebuild the shards")
    return metadata


def band_tables(metadata: Mapping[str, Any], key: str) -> dict[str, BandTable]:
    """The band table of each array member of a format-3 sample's metadata."""
    tables = metadata.get("bands")
    if not isinstance(tables, Mapping):
        raise SampleFormatError(f"sample {key}: format 3 metadata lacks its band tables")
    return {suffix: BandTable.from_dict(tables.get(suffix), f"sample {key}: {suffix}") for suffix in ARRAY_SUFFIXES}


def _bytes_reader(data: bytes | memoryview) -> ReadMember:
    view = memoryview(data)
    return lambda offset, length: view[offset:offset + length]


def _check_range(array: np.ndarray, where: str) -> None:
    if array.dtype.itemsize == 2 and array.size and int(array.max()) > MAX_10BIT_CODE:
        raise SampleFormatError(f"{where} holds codes above {MAX_10BIT_CODE} (damaged, or not a 10-bit plane)")


def decode_sample(members: Mapping[str, bytes | memoryview], key: str | None = None, *,
                  rows: tuple[int, int] | None = None, pool: ThreadPoolExecutor | None = None) -> Sample:
    """Inverse of :func:`encode_sample`; ``members`` maps suffixes to bytes (extra members are ignored).

    With ``rows`` = (start, stop) luma rows, a format-3 sample decodes only the row bands those rows touch, and the
    result's ``first_row`` says where its planes start (older formats decode whole frames). Every band or member
    decoded is checked against its checksum and 10-bit planes are range-checked.
    """
    missing = [suffix for suffix in MEMBER_SUFFIXES if suffix not in members]
    if missing:
        raise SampleFormatError(f"sample {key or '?'} lacks members {missing}")
    metadata = decode_metadata(bytes(members["json"]))
    if metadata["format_version"] >= 3:
        readers = {suffix: _bytes_reader(members[suffix]) for suffix in ARRAY_SUFFIXES}
        whole = {suffix: members[suffix] for suffix in ARRAY_SUFFIXES} if rows is None else None
        return decode_banded_sample(metadata, readers, key, rows=rows, whole=whole, pool=pool)
    where = f"sample {key or metadata.get('key', '?')}"
    checksums = metadata.get("plane_crc32")
    if metadata["format_version"] >= 2 and not isinstance(checksums, dict):
        raise SampleFormatError(f"{where}: metadata lacks its plane checksums")
    planes = {}
    for side in SIDES:
        arrays = []
        for name in PLANE_NAMES:
            suffix = member_suffix(side, name)
            array = decode_array(members[suffix])
            if checksums is not None and plane_crc32(array) != checksums.get(suffix):
                raise SampleFormatError(f"{where}: {suffix} is damaged (its decoded planes do not match the "
                                        "checksum in the sample's JSON)")
            _check_range(array, f"{where}: {suffix}")
            arrays.append(array)
        planes[side] = tuple(arrays)
    return _sample(metadata, planes, key, 0)


def _sample(metadata: dict[str, Any], planes: dict[str, tuple], key: str | None, first_row: int) -> Sample:
    try:
        return Sample(key=metadata["key"], hdr=planes["hdr"], sdr=planes["sdr"], metadata=metadata,
                      first_row=first_row)
    except KeyError as error:
        raise SampleFormatError(f"sample {key or '?'}: metadata lacks {error}") from error


def decode_banded_sample(metadata: dict[str, Any], readers: Mapping[str, ReadMember], key: str | None, *,
                         rows: tuple[int, int] | None = None,
                         whole: Mapping[str, bytes | memoryview] | None = None,
                         pool: ThreadPoolExecutor | None = None) -> Sample:
    """A format-3 sample from its decoded metadata and a reader per array member (see :func:`decode_sample`).

    ``readers`` read bytes of a member by (offset, length): slices of bytes in memory, or ranged reads of a
    shard, so a crop reads only its bands. ``whole`` (every member's bytes) decodes each member in one call.
    ``pool`` decodes the six members on its threads (zstd releases the GIL); the result does not depend on it.
    """
    where = f"sample {key or metadata.get('key', '?')}"
    tables = band_tables(metadata, key or str(metadata.get("key", "?")))

    def decode(suffix: str) -> tuple[np.ndarray, int]:
        if whole is not None:
            array, first = decode_banded(whole[suffix], tables[suffix], f"{where}: {suffix}"), 0
        else:
            start, stop = (0, 1 << 62) if rows is None else rows
            chroma = not suffix.endswith("_y.npy.zst")
            if chroma:
                start, stop = start // 2, -(-stop // 2)
            array, first = decode_rows(readers[suffix], tables[suffix], start, stop, f"{where}: {suffix}")
            first = 2 * first if chroma else first
        _check_range(array, f"{where}: {suffix}")
        return array, first

    decoded = dict(zip(ARRAY_SUFFIXES, map(decode, ARRAY_SUFFIXES) if pool is None
                       else pool.map(decode, ARRAY_SUFFIXES)))
    planes = {side: tuple(decoded[member_suffix(side, name)][0] for name in PLANE_NAMES) for side in SIDES}
    first_rows = {first for _, first in decoded.values()}
    if len(first_rows) != 1:
        raise SampleFormatError(f"{where}: its members' bands do not cover the same rows ({sorted(first_rows)})")
    metadata = {name: value for name, value in metadata.items() if name != "bands"}  # the layout, consumed here
    return _sample(metadata, planes, key, first_rows.pop())
