"""Reading one sample by random access, whole or only the row bands a crop needs.

A :class:`SampleReader` keeps a few shard files open (least recently used closed first). Two ways to read:

- **ranged** (local files, when the index gave the sample's offsets and only some rows are wanted): one read of the
  ``json`` member (checked against the index's CRC-32), then per array member its header frame and, per frame,
  the bands the rows touch. The members are found from the offsets and the sizes in the JSON, without reading tar
  headers (:func:`fmstf_data.store.shards.member_data_offsets`). A 256-row crop of a 1080p sample reads about a
  quarter of its bytes.
- **whole span** (object stores, or whole frames): one ``read_at`` of the sample's ``[start, end)`` span (on object
  stores, one ranged GET), split into members by their tar headers; only the bands the rows touch are
  decompressed.

Either way the planes go through the sample codec (:func:`fmstf_data.store.samples.decode_sample`): checksums,
shapes, dtypes, 10-bit range. Open files are per process: a reader copied into a DataLoader worker (fork) opens its
own.
"""

from __future__ import annotations

import logging
import os
import zlib
from collections import OrderedDict
from concurrent.futures import ThreadPoolExecutor

import pyarrow as pa
import pyarrow.fs as pafs

from fmstf_data.errors import DamagedShardError, SampleFormatError
from fmstf_data.loader.catalog import SampleCatalog
from fmstf_data.loader.tarindex import parse_members
from fmstf_data.store.samples import (
    ARRAY_SUFFIXES,
    Sample,
    band_tables,
    decode_banded_sample,
    decode_metadata,
    decode_sample,
)
from fmstf_data.store.shards import header_bytes, member_data_offsets

logger = logging.getLogger(__name__)

#: errors that mean "this sample's bytes are bad", handled by the damage policy (anything else is a bug and raises)
READ_ERRORS = (DamagedShardError, SampleFormatError, OSError, pa.ArrowException)


class SampleReader:
    """Reads catalog rows as :class:`fmstf_data.store.samples.Sample` objects.

    Args:
        catalog: where the samples are.
        max_open_files: shard files kept open at once.
    """

    def __init__(self, catalog: SampleCatalog, max_open_files: int = 8, decode_threads: int = 1) -> None:
        self.catalog = catalog
        self.max_open_files = max_open_files
        self.decode_threads = decode_threads
        self._files: OrderedDict[int, pafs.NativeFile] = OrderedDict()
        self._pool: ThreadPoolExecutor | None = None
        self._pid = os.getpid()

    def __getstate__(self) -> dict:
        state = dict(self.__dict__)
        state["_files"] = OrderedDict()  # open files and threads do not travel to other processes
        state["_pool"] = None
        return state

    def _decode_pool(self) -> ThreadPoolExecutor | None:
        """The threads that decode a sample's members (None: decode in the calling thread)."""
        if self.decode_threads <= 1:
            return None
        if self._pool is None or self._pid != os.getpid():
            self._pool = ThreadPoolExecutor(max_workers=self.decode_threads, thread_name_prefix="fmstf-decode")
        return self._pool

    def _file(self, shard: int) -> pafs.NativeFile:
        if self._pid != os.getpid():  # forked: the parent's handles are not ours
            self._files = OrderedDict()
            self._pid = os.getpid()
        handle = self._files.get(shard)
        if handle is not None:
            self._files.move_to_end(shard)
            return handle
        ref = self.catalog.shards[shard]
        try:
            handle = ref.filesystem.open_input_file(ref.path)
        except FileNotFoundError as error:
            raise DamagedShardError(f"shard {ref.name} does not exist (any more)") from error
        self._files[shard] = handle
        while len(self._files) > self.max_open_files:
            _, oldest = self._files.popitem(last=False)
            oldest.close()
        return handle

    def ranged(self, row: int) -> bool:
        """Whether :meth:`read` of ``row`` with ``rows`` reads only the bands it needs (local file, offsets known)."""
        ref = self.catalog.shards[int(self.catalog.shard_index[row])]
        return isinstance(ref.filesystem, pafs.LocalFileSystem) and int(self.catalog.json_bytes[row]) > 0

    def read(self, row: int, rows: tuple[int, int] | None = None) -> Sample:
        """The sample of catalog row ``row``; with ``rows`` = (start, stop) luma rows, at least those rows of every
        frame (the bands they touch: see :attr:`fmstf_data.store.samples.Sample.first_row`), else whole frames.

        Raises:
            DamagedShardError: the span is cut short or its headers are not this sample's.
            SampleFormatError: a member does not decode (corrupt zstd, .npy, JSON; a checksum, shape or dtype that
                does not match).
            OSError: the store failed to deliver the bytes.
        """
        if rows is not None and self.ranged(row):
            return self._read_ranged(row, rows)
        shard = int(self.catalog.shard_index[row])
        start, end = (int(v) for v in self.catalog.spans[row])
        key = self.catalog.keys[row]
        data = self._file(shard).read_at(end - start, start)
        if len(data) != end - start:
            raise DamagedShardError(f"sample {key}: read {len(data)} of {end - start} bytes at byte {start} of "
                                    f"{self.catalog.shards[shard].name} (the shard shrank since it was scanned)")
        members = parse_members(data, key)
        expected_crc = int(self.catalog.json_crc32[row])
        if expected_crc >= 0 and "json" in members and zlib.crc32(members["json"]) != expected_crc:
            raise SampleFormatError(f"sample {key}: its JSON does not match the checksum in the index (damaged)")
        sample = decode_sample(members, key, rows=rows, pool=self._decode_pool())
        if sample.key != key:
            raise SampleFormatError(f"sample stored under {key!r} says its key is {sample.key!r}")
        return sample

    def _read_ranged(self, row: int, rows: tuple[int, int]) -> Sample:
        shard = int(self.catalog.shard_index[row])
        start, end = (int(v) for v in self.catalog.spans[row])
        key = self.catalog.keys[row]
        handle = self._file(shard)
        name = self.catalog.shards[shard].name

        def read_at(offset: int, length: int) -> bytes:
            if offset < start or offset + length > end:
                raise SampleFormatError(f"sample {key}: its JSON places a member outside the sample's bytes "
                                        f"[{start}, {end}) in {name} (damaged JSON or index)")
            data = handle.read_at(length, offset)
            if len(data) != length:
                raise DamagedShardError(f"sample {key}: read {len(data)} of {length} bytes at byte {offset} of "
                                        f"{name} (the shard shrank?)")
            return data

        json_bytes = int(self.catalog.json_bytes[row])
        json_data = read_at(start + header_bytes(f"{key}.json"), json_bytes)
        if zlib.crc32(json_data) != int(self.catalog.json_crc32[row]):
            raise SampleFormatError(f"sample {key}: its JSON in {name} does not match the checksum in the index "
                                    "(damaged shard, or an index of another build)")
        metadata = decode_metadata(json_data)
        if metadata.get("key") != key:
            raise SampleFormatError(f"sample stored under {key!r} says its key is {metadata.get('key')!r}")
        if metadata["format_version"] < 3:  # no bands: read the whole span
            return self.read(row)
        tables = band_tables(metadata, key)
        sizes = [("json", json_bytes), *((suffix, tables[suffix].member_bytes) for suffix in ARRAY_SUFFIXES)]
        offsets = member_data_offsets(key, sizes, start)

        def member_reader(suffix: str):
            base, size = offsets[suffix], tables[suffix].member_bytes

            def read_member(offset: int, length: int) -> bytes:
                if offset < 0 or offset + length > size:
                    raise SampleFormatError(f"sample {key}: {suffix}: a band outside the member's {size} bytes")
                return read_at(base + offset, length)
            return read_member

        return decode_banded_sample(metadata, {suffix: member_reader(suffix) for suffix in ARRAY_SUFFIXES}, key,
                                    rows=rows, pool=self._decode_pool())

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=False)
            self._pool = None
        for handle in self._files.values():
            handle.close()
        self._files.clear()
