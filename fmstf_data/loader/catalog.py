"""The samples a loader can serve, and where their bytes are: from a build's index or from a list of shard URLs.

A :class:`SampleCatalog` is the loader's fixed, ordered table of samples (one row per triplet): its key, pair id,
centre frame, frame size when the index says it, and the byte span of its members in its shard. The row order is
the evaluation order: a build's index sorted by (pair_id, centre_frame), or the shards in the order given with
their samples in tar order. Every rank builds the same catalog from the same files, so plans made from it agree
across ranks without communication.

Where a build's index gives each sample's byte offsets (``offset_bytes``, ``size_bytes``, ``json_bytes``,
``json_crc32``: builds since sample format 3), the catalog is the index: only the split's rows and the columns needed
are read (a parquet filter on ``split``, so row groups of other splits are skipped), and each shard costs one
metadata request (its size, checked against the spans of its samples). Start-up then costs a few requests per
shard, whatever the number of samples. Otherwise (older builds, lists of shard URLs) shards are located by their tar
headers (:func:`fmstf_data.loader.tarindex.scan_shard`), scanned in a small thread pool. Damage met while scanning (missing shard, truncated tar, bad header, a sample of the
index not found in its shard, a sample lacking members) follows ``on_damage``: ``"raise"`` raises
:class:`fmstf_data.errors.DamagedShardError`; ``"skip"`` leaves the sample out of the catalog, logs a warning and
lists it in :attr:`SampleCatalog.damaged`. Since every rank scans the same files, every rank leaves out the same
samples and the per-rank batch counts stay equal.
"""

from __future__ import annotations

import logging
import os
import posixpath
import re
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from urllib.parse import urlsplit

import numpy as np
import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from fmstf_data.errors import DamagedShardError, LoaderError
from fmstf_data.loader.tarindex import ShardContents, scan_shard
from fmstf_data.store.samples import MEMBER_SUFFIXES
from fmstf_data.store.storage import Storage, open_storage, redact_uri

logger = logging.getLogger(__name__)

INDEX_PATH = "index/samples.parquet"
_KEY_CENTRE = re.compile(r"^(?P<pair>.+)_(?P<centre>[0-9]{6,})$")
DAMAGE_POLICIES = ("raise", "skip")


@dataclass(frozen=True)
class ShardRef:
    """One shard file: the ``pyarrow.fs`` file system holding it, its path there, and a name for messages."""

    filesystem: pafs.FileSystem
    path: str
    name: str


@dataclass(frozen=True)
class DamagedSample:
    """A sample left out of the catalog (``on_damage="skip"``), or a whole shard when ``key`` is None."""

    shard: str
    key: str | None
    reason: str


@dataclass
class SampleCatalog:
    """The ordered samples of one split (or of a list of shards), with the byte span of each in its shard.

    Attributes:
        shards: the shard files, referenced by ``shard_index``.
        keys: sample keys, [N], in evaluation order.
        pair_ids: [N].
        centre_frames: int64 [N]: the HDR frame index of the centre frame.
        heights, widths: int64 [N]: frame size from the index, -1 when unknown (shard-URL sources).
        shard_index: int64 [N]: index into ``shards``.
        spans: int64 [N, 2]: ``[start, end)`` bytes of the sample's members in its shard.
        json_bytes: int64 [N]: size of the sample's ``json`` member, -1 when unknown (scanned catalogs).
        json_crc32: int64 [N]: CRC-32 of that member, -1 when unknown.
        damaged: samples or shards left out under ``on_damage="skip"``.
        source: the location given by the user (for messages).
    """

    shards: list[ShardRef]
    keys: list[str]
    pair_ids: list[str]
    centre_frames: np.ndarray
    heights: np.ndarray
    widths: np.ndarray
    shard_index: np.ndarray
    spans: np.ndarray
    damaged: list[DamagedSample] = field(default_factory=list)
    source: str = ""
    json_bytes: np.ndarray | None = None
    json_crc32: np.ndarray | None = None

    def __post_init__(self) -> None:
        n = len(self.keys)
        if self.json_bytes is None:
            self.json_bytes = np.full(n, -1, dtype=np.int64)
        if self.json_crc32 is None:
            self.json_crc32 = np.full(n, -1, dtype=np.int64)
        for name in ("pair_ids", "centre_frames", "heights", "widths", "shard_index", "spans", "json_bytes",
                     "json_crc32"):
            if len(getattr(self, name)) != n:
                raise LoaderError(f"catalog column {name} has {len(getattr(self, name))} rows, keys have {n}")

    def __len__(self) -> int:
        return len(self.keys)


def _filesystem_cache_key(uri: str) -> str:
    parts = urlsplit(uri)
    return f"{parts.scheme}://{parts.netloc}?{parts.query}"


def _shard_refs_from_urls(urls: Sequence[str | os.PathLike[str]]) -> list[ShardRef]:
    refs = []
    filesystems: dict[str, pafs.FileSystem] = {}  # one file system (one connection pool) per store
    for url in urls:
        text = os.fspath(url)
        if "://" not in text:
            refs.append(ShardRef(pafs.LocalFileSystem(), os.path.abspath(text).replace(os.sep, "/"), text))
            continue
        try:
            filesystem, path = pafs.FileSystem.from_uri(text)
        except (ValueError, OSError) as error:  # pyarrow's ArrowInvalid is a ValueError
            raise LoaderError(f"cannot open shard location {redact_uri(text)!r}: {error}") from error
        filesystem = filesystems.setdefault(_filesystem_cache_key(text), filesystem)
        refs.append(ShardRef(filesystem, path, redact_uri(text)))
    return refs


def _scan(shard: ShardRef) -> ShardContents:
    try:
        size = shard.filesystem.get_file_info(shard.path).size
        if size is None:
            return ShardContents([], "does not exist", 0)
        with shard.filesystem.open_input_file(shard.path) as handle:
            return scan_shard(lambda offset, length: handle.read_at(length, offset), size)
    except FileNotFoundError:
        return ShardContents([], "does not exist", 0)
    except OSError as error:
        return ShardContents([], f"cannot be read: {error}", 0)


def scan_shards(shards: Sequence[ShardRef], threads: int) -> list[ShardContents]:
    """Tables of contents of ``shards`` (same order), ``threads`` at a time."""
    if threads <= 1 or len(shards) <= 1:
        return [_scan(shard) for shard in shards]
    with ThreadPoolExecutor(max_workers=min(threads, len(shards)), thread_name_prefix="fmstf-scan") as pool:
        return list(pool.map(_scan, shards))


class _DamageLog:
    """Applies the damage policy while a catalog is built."""

    def __init__(self, on_damage: str) -> None:
        if on_damage not in DAMAGE_POLICIES:
            raise LoaderError(f"on_damage must be one of {DAMAGE_POLICIES}, got {on_damage!r}")
        self.on_damage = on_damage
        self.damaged: list[DamagedSample] = []

    def report(self, shard: str, key: str | None, reason: str) -> None:
        what = f"sample {key} in shard {shard}" if key else f"shard {shard}"
        if self.on_damage == "raise":
            raise DamagedShardError(f"{what}: {reason}. Rebuild the shard, or pass on_damage='skip' to train "
                                    "without it")
        logger.warning("leaving out %s: %s", what, reason)
        self.damaged.append(DamagedSample(shard, key, reason))


def _complete(suffixes: list[str]) -> list[str]:
    return [suffix for suffix in MEMBER_SUFFIXES if suffix not in suffixes]


def catalog_from_shards(urls: Sequence[str | os.PathLike[str]], *, on_damage: str = "raise",
                        scan_threads: int = 4) -> SampleCatalog:
    """A catalog of every sample in ``urls`` (local paths or pyarrow.fs URIs), in the given order, tar order within."""
    if not urls:
        raise LoaderError("no shard URLs given")
    log = _DamageLog(on_damage)
    refs = _shard_refs_from_urls(urls)
    rows = []
    for shard_number, (ref, contents) in enumerate(zip(refs, scan_shards(refs, scan_threads))):
        if contents.problem is not None:
            log.report(ref.name, None, contents.problem)
        for span in contents.samples:
            missing = _complete(span.suffixes)
            if missing:
                log.report(ref.name, span.key, f"lacks members {missing}")
                continue
            match = _KEY_CENTRE.match(span.key)
            rows.append((span.key, match["pair"] if match else span.key, int(match["centre"]) if match else -1,
                         shard_number, span.start, span.end))
    return _catalog(refs, rows, None, log.damaged, ", ".join(ref.name for ref in refs[:3]))


def _catalog(refs: list[ShardRef], rows: list[tuple], sizes: list[tuple[int, int]] | None,
             damaged: list[DamagedSample], source: str, json_members: list[tuple[int, int]] | None = None
             ) -> SampleCatalog:
    sizes = sizes if sizes is not None else [(-1, -1)] * len(rows)
    json_members = json_members if json_members is not None else [(-1, -1)] * len(rows)
    return SampleCatalog(
        shards=refs,
        keys=[row[0] for row in rows],
        pair_ids=[row[1] for row in rows],
        centre_frames=np.array([row[2] for row in rows], dtype=np.int64),
        heights=np.array([size[0] for size in sizes], dtype=np.int64),
        widths=np.array([size[1] for size in sizes], dtype=np.int64),
        shard_index=np.array([row[3] for row in rows], dtype=np.int64),
        spans=np.array([[row[4], row[5]] for row in rows], dtype=np.int64).reshape(-1, 2),
        damaged=damaged,
        source=source,
        json_bytes=np.array([member[0] for member in json_members], dtype=np.int64),
        json_crc32=np.array([member[1] for member in json_members], dtype=np.int64),
    )


#: the index columns a catalog reads (the offsets only where the index has them)
CATALOG_COLUMNS = ("key", "pair_id", "split", "shard", "centre_frame", "height", "width")
OFFSET_COLUMNS = ("offset_bytes", "size_bytes", "json_bytes", "json_crc32")


def read_index(location: str | os.PathLike[str], split: str | None) -> tuple[pa.Table, Storage]:
    """The rows of ``index/samples.parquet`` of a build for ``split`` (all splits when None), with the storage.

    Only the columns a catalog needs are read, and with a split only its rows: a parquet filter, which skips the
    row groups (one per pair) of other splits by their statistics.
    """
    storage = open_storage(location)
    where = redact_uri(storage.uri)
    if not storage.exists(INDEX_PATH):
        raise LoaderError(f"{where} has no {INDEX_PATH}: is it a build directory (fmstf-data build --out)? To read "
                          "shards without an index, pass a list of shard paths or URLs")
    try:
        parquet = pq.ParquetFile(storage.path(INDEX_PATH), filesystem=storage.filesystem)
        present = set(parquet.schema_arrow.names)
        missing = sorted({"key", "pair_id", "split", "shard", "centre_frame"} - present)
        if missing:
            raise LoaderError(f"{where}/{INDEX_PATH} lacks columns {missing}")
        columns = [name for name in (*CATALOG_COLUMNS, *OFFSET_COLUMNS) if name in present]
        table = pq.read_table(storage.path(INDEX_PATH), filesystem=storage.filesystem, columns=columns,
                              filters=None if split is None else [("split", "=", split)])
        if split is not None and table.num_rows == 0:
            splits = sorted(set(pq.read_table(storage.path(INDEX_PATH), filesystem=storage.filesystem,
                                              columns=["split"]).column("split").to_pylist()))
            if split not in splits:
                raise LoaderError(f"split {split!r} is not in {where} (splits there: {splits})")
    except (OSError, pa.ArrowException) as error:
        raise LoaderError(f"cannot read {where}/{INDEX_PATH}: {error}") from error
    table = table.sort_by([("pair_id", "ascending"), ("centre_frame", "ascending"), ("key", "ascending")])
    return table, storage


def _has_offsets(table: pa.Table) -> bool:
    return all(name in table.column_names and table.column(name).null_count == 0 for name in OFFSET_COLUMNS)


def _catalog_from_offsets(table: pa.Table, storage: Storage, log: _DamageLog) -> SampleCatalog:
    """A catalog from an index that gives every sample's byte offsets: one size request per shard, no scan."""
    where = redact_uri(storage.uri)
    shard_names = sorted(set(table.column("shard").to_pylist()))
    refs = [ShardRef(storage.filesystem, storage.path(name), posixpath.join(where, name)) for name in shard_names]
    try:
        infos = storage.filesystem.get_file_info([ref.path for ref in refs])
    except OSError as error:
        raise LoaderError(f"cannot list the shards of {where}: {error}") from error
    shard_sizes = {name: (info.size if info.type == pafs.FileType.File else None)
                   for name, info in zip(shard_names, infos)}
    for name, size in shard_sizes.items():
        if size is None:
            log.report(posixpath.join(where, name), None, "does not exist")
    number = {name: i for i, name in enumerate(shard_names)}
    columns = {name: table.column(name).to_pylist() for name in (*CATALOG_COLUMNS, *OFFSET_COLUMNS)
               if name in table.column_names}
    count = table.num_rows
    heights, widths = columns.get("height", [-1] * count), columns.get("width", [-1] * count)
    rows, sizes, json_members = [], [], []
    for i in range(count):
        key, shard = columns["key"][i], columns["shard"][i]
        start, length = int(columns["offset_bytes"][i]), int(columns["size_bytes"][i])
        shard_size = shard_sizes[shard]
        shard_uri = posixpath.join(where, shard)
        if shard_size is None:
            log.damaged.append(DamagedSample(shard_uri, key, "lost with its missing shard"))
            continue
        if start < 0 or length <= 0 or start + length > shard_size:
            log.report(shard_uri, key, f"the index places it at bytes [{start}, {start + length}) of a "
                                       f"{shard_size}-byte shard (truncated shard, or a stale index)")
            continue
        rows.append((key, columns["pair_id"][i], int(columns["centre_frame"][i]), number[shard], start,
                     start + length))
        sizes.append((-1 if heights[i] is None else int(heights[i]), -1 if widths[i] is None else int(widths[i])))
        json_members.append((int(columns["json_bytes"][i]), int(columns["json_crc32"][i])))
    if not rows:
        raise LoaderError(f"no readable sample left in {where} ({len(log.damaged)} damaged)")
    return _catalog(refs, rows, sizes, log.damaged, where, json_members)


def catalog_from_build(location: str | os.PathLike[str], split: str | None, *, on_damage: str = "raise",
                       scan_threads: int = 4) -> SampleCatalog:
    """A catalog of one split of a build directory (local path or pyarrow.fs URI), in (pair_id, centre) order."""
    log = _DamageLog(on_damage)
    table, storage = read_index(location, split)
    where = redact_uri(storage.uri)
    if table.num_rows == 0:
        raise LoaderError(f"split {split!r} of {where} has no samples")
    if _has_offsets(table):
        return _catalog_from_offsets(table, storage, log)
    shard_names = sorted(set(table.column("shard").to_pylist()))
    refs = [ShardRef(storage.filesystem, storage.path(name), posixpath.join(where, name)) for name in shard_names]
    contents = dict(zip(shard_names, scan_shards(refs, scan_threads)))
    spans: dict[str, dict[str, tuple[int, int, list[str]]]] = {}
    for name, found in contents.items():
        if found.problem is not None:
            log.report(posixpath.join(where, name), None, found.problem)
        spans[name] = {span.key: (span.start, span.end, span.suffixes) for span in found.samples}
    number = {name: i for i, name in enumerate(shard_names)}
    has_size = "height" in table.column_names and "width" in table.column_names
    columns = {name: table.column(name).to_pylist() for name in ("key", "pair_id", "shard", "centre_frame")}
    heights = table.column("height").to_pylist() if has_size else [-1] * table.num_rows
    widths = table.column("width").to_pylist() if has_size else [-1] * table.num_rows
    rows, sizes = [], []
    for key, pair_id, shard, centre, height, width in zip(columns["key"], columns["pair_id"], columns["shard"],
                                                          columns["centre_frame"], heights, widths):
        found = spans[shard].get(key)
        shard_uri = posixpath.join(where, shard)
        if found is None:
            if contents[shard].problem is None:  # a damaged shard was reported once already
                log.report(shard_uri, key, "listed in the index but not found in the shard")
            else:
                log.damaged.append(DamagedSample(shard_uri, key, "lost with its damaged shard"))
            continue
        missing = _complete(found[2])
        if missing:
            log.report(shard_uri, key, f"lacks members {missing} (truncated shard?)")
            continue
        rows.append((key, pair_id, int(centre), number[shard], found[0], found[1]))
        sizes.append((-1 if height is None else int(height), -1 if width is None else int(width)))
    if not rows:
        raise LoaderError(f"no readable sample left in split {split!r} of {where} ({len(log.damaged)} damaged)")
    return _catalog(refs, rows, sizes, log.damaged, where)
