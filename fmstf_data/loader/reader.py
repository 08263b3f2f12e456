"""Reading one sample by random access: one ranged read of its span, then the sample codec.

A :class:`SampleReader` keeps a few shard files open (least recently used closed first) and reads a sample's
``[start, end)`` span with one ``read_at`` (on object stores, one ranged GET), splits it into members by their tar
headers and decodes them like :func:`fmstf_data.store.samples.decode_sample` (zstd ``.npy`` planes, JSON metadata, shape
and dtype checks), with the sample codec's reader (:func:`fmstf_data.store.samples.decode_sample`). Open files are per process:
a reader copied into a DataLoader worker (fork) opens its own.
"""

from __future__ import annotations

import logging
import os
from collections import OrderedDict

import pyarrow as pa
import pyarrow.fs as pafs

from fmstf_data.errors import DamagedShardError, SampleFormatError
from fmstf_data.loader.catalog import SampleCatalog
from fmstf_data.loader.tarindex import parse_members
from fmstf_data.store.samples import Sample, decode_sample

logger = logging.getLogger(__name__)

#: errors that mean "this sample's bytes are bad", handled by the damage policy (anything else is a bug and raises)
READ_ERRORS = (DamagedShardError, SampleFormatError, OSError, pa.ArrowException)


class SampleReader:
    """Reads catalog rows as :class:`fmstf_data.store.samples.Sample` objects.

    Args:
        catalog: where the samples are.
        max_open_files: shard files kept open at once.
    """

    def __init__(self, catalog: SampleCatalog, max_open_files: int = 8) -> None:
        self.catalog = catalog
        self.max_open_files = max_open_files
        self._files: OrderedDict[int, pafs.NativeFile] = OrderedDict()
        self._pid = os.getpid()

    def __getstate__(self) -> dict:
        state = dict(self.__dict__)
        state["_files"] = OrderedDict()  # open files do not travel to other processes
        return state

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

    def read(self, row: int) -> Sample:
        """The sample of catalog row ``row``.

        Raises:
            DamagedShardError: the span is cut short or its headers are not this sample's.
            SampleFormatError: a member does not decode (corrupt zstd, .npy, JSON; wrong shapes or dtypes).
            OSError: the store failed to deliver the bytes.
        """
        shard = int(self.catalog.shard_index[row])
        start, end = (int(v) for v in self.catalog.spans[row])
        key = self.catalog.keys[row]
        data = self._file(shard).read_at(end - start, start)
        if len(data) != end - start:
            raise DamagedShardError(f"sample {key}: read {len(data)} of {end - start} bytes at byte {start} of "
                                    f"{self.catalog.shards[shard].name} (the shard shrank since it was scanned)")
        sample = decode_sample(parse_members(data, key), key)
        if sample.key != key:
            raise SampleFormatError(f"sample stored under {key!r} says its key is {sample.key!r}")
        return sample

    def close(self) -> None:
        for handle in self._files.values():
            handle.close()
        self._files.clear()
