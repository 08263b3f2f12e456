"""Options of a build, validated once, JSON-serialisable so that Ray tasks and the report carry them."""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from typing import Any

from fmstf_data.errors import FmstfError
from fmstf_data.extract.options import (
    DEFAULT_MAX_OFFSET_SECONDS,
    DEFAULT_SEARCH_SECONDS,
    MAX_WINDOW_FRAMES,
    ExtractOptions,
)
from fmstf_data.store.samples import DEFAULT_ZSTD_LEVEL
from fmstf_data.store.shards import DEFAULT_MAX_SHARD_BYTES

#: the extraction's own defaults: the per-pair options that map one to one onto ExtractOptions start from them
_EXTRACT_DEFAULTS = ExtractOptions()


class OptionsError(FmstfError):
    """A build option with an unusable value."""


#: seconds of the HDR timeline per chunk task (docs/scaling.md: a chunk's fixed cost, the seek and its lead-in of
#: two seconds, stays a few per cent of its work; a 4K minute is a few minutes of one CPU)
DEFAULT_CHUNK_SECONDS = 60.0


@dataclass(frozen=True)
class PairOptions:
    """Per-pair processing options; a manifest's ``defaults`` and a pair's ``options`` override these.

    Attributes:
        stride_frames: one triplet centre is kept per window of this many HDR frames (the first usable one).
        stride_seconds: the same window in seconds of the HDR timeline (rounded to whole frames at the pair's
            rate), so that a manifest means the same at 24, 30 and 60 fps; when set it replaces ``stride_frames``.
            The more specific layer wins: a pair's ``stride_frames`` overrides the manifest's ``stride_seconds``.
        max_offset_seconds: the offset search covers [-this, +this] seconds of the HDR timeline.
        search_seconds: how much of each video (beyond the offset window) the offset search decodes.
        min_pair_score: a pair whose best offset scores below this is refused as "different videos".
        min_match_score: frame pairs below this match score are not used in triplets.
        cut_score: consecutive frames below this score start a new shot.
        zstd_level: zstd level of the stored planes (1 fastest ... 19 smallest).
        chunk_seconds: a pair's work is split into chunk tasks over this many seconds of the HDR timeline each
            (docs/scaling.md); the samples do not depend on it, only how their shards are cut and how many nodes
            share one video.
        window_frames: frames per sample: 3 (the (t-1, t, t+1) triplets of the paper) or any odd number up to 25,
            for models that train on longer clips; the cut, drop and verification rules hold for the whole window.
    """

    stride_frames: int = _EXTRACT_DEFAULTS.stride_frames
    stride_seconds: float | None = None
    max_offset_seconds: float = DEFAULT_MAX_OFFSET_SECONDS
    search_seconds: float = DEFAULT_SEARCH_SECONDS
    min_pair_score: float = _EXTRACT_DEFAULTS.min_pair_score
    min_match_score: float = _EXTRACT_DEFAULTS.min_match_score
    cut_score: float = _EXTRACT_DEFAULTS.cut_score
    zstd_level: int = DEFAULT_ZSTD_LEVEL
    chunk_seconds: float = DEFAULT_CHUNK_SECONDS
    window_frames: int = _EXTRACT_DEFAULTS.window_frames

    def __post_init__(self) -> None:
        if self.stride_frames < 1:
            raise OptionsError(f"stride_frames must be >= 1, got {self.stride_frames}")
        if self.max_offset_seconds < 0 or self.search_seconds <= 0:
            raise OptionsError(f"max_offset_seconds must be >= 0 and search_seconds > 0, got "
                               f"{self.max_offset_seconds}, {self.search_seconds}")
        for name in ("min_pair_score", "min_match_score", "cut_score"):
            if not -1.0 <= getattr(self, name) <= 1.0:
                raise OptionsError(f"{name} must be in [-1, 1], got {getattr(self, name)}")
        if self.stride_seconds is not None and not self.stride_seconds > 0:
            raise OptionsError(f"stride_seconds must be > 0, got {self.stride_seconds}")
        if not self.chunk_seconds > 0:
            raise OptionsError(f"chunk_seconds must be > 0, got {self.chunk_seconds}")
        if type(self.window_frames) is not int or not 3 <= self.window_frames <= MAX_WINDOW_FRAMES \
                or self.window_frames % 2 == 0:
            raise OptionsError(f"window_frames must be odd, 3..{MAX_WINDOW_FRAMES}, got {self.window_frames!r}")
        if not 1 <= self.zstd_level <= 22:
            raise OptionsError(f"zstd_level must be in 1..22, got {self.zstd_level}")

    def with_overrides(self, overrides: dict[str, Any] | None) -> PairOptions:
        """A copy with ``overrides`` applied; unknown names raise :class:`OptionsError` naming the valid ones."""
        if not overrides:
            return self
        values = asdict(self)
        unknown = sorted(set(overrides) - set(values))
        if unknown:
            raise OptionsError(f"unknown pair option(s) {unknown}; valid: {sorted(values)}")
        if "stride_frames" in overrides and "stride_seconds" in overrides:
            raise OptionsError("give stride_frames or stride_seconds, not both")
        values.update(overrides)
        if "stride_frames" in overrides:
            values["stride_seconds"] = None  # the more specific layer's stride wins
        try:
            return PairOptions(**{name: None if value is None else _FIELD_TYPES.get(name, type(getattr(self, name)))(value)
                                  for name, value in values.items()})
        except (TypeError, ValueError) as error:
            raise OptionsError(f"bad pair option value in {overrides}: {error}") from error

    def stride_frames_at(self, hdr_fps: float) -> int:
        """The stride window in HDR frames for a pair at ``hdr_fps``: ``stride_seconds`` rounded to whole frames
        (at least 1) when set, else ``stride_frames``."""
        if self.stride_seconds is None:
            return self.stride_frames
        return max(1, round(self.stride_seconds * hdr_fps))


#: types of the optional PairOptions fields (their default None has no type to convert a manifest value to)
_FIELD_TYPES = {"stride_seconds": float}


@dataclass(frozen=True)
class BuildOptions:
    """Options of one ``fmstf-data build``.

    Attributes:
        manifest_path: the manifest file.
        out: output location: a local directory or a ``pyarrow.fs`` URI (s3://bucket/prefix, ...).
        cache_dir: where fetched sources are kept (local).
        workers: at most this many pairs in flight; None: as many as the cluster's CPUs allow
            (CPUs // ``cpus_per_task``; a private instance gets this machine's CPUs).
        ray_address: join this Ray cluster ("auto", "ray://host:10001", ...); None starts a private local one.
        cpus_per_task: CPUs each pair's task declares to Ray and really uses: the FFmpeg threads of each decoder
            and the zstd threads are sized from it.
        memory_per_task_bytes: memory each task declares to Ray (None: none declared); a task at 2160p peaks near
            2 GB (docs/benchmarks.md).
        max_retries: how often Ray reruns a task whose worker died (a killed node, an OOM kill).
        pair_options: defaults for every pair (the manifest may override them).
        max_shard_bytes: shards are closed before they pass this size.
        only_pairs: build just these pair ids (empty: all).
        force: rebuild pairs even when a matching completed record exists.
        verify_resume: on resume, re-hash every shard of a completed pair against its record's sha256 (reads all
            of them); without it, each shard's size is checked against the record.
        previews: write preview PNGs into the report.
        fetch: options for fetching (see fmstf_data.sources), as a plain mapping.
    """

    manifest_path: str
    out: str
    cache_dir: str
    workers: int | None = None
    ray_address: str | None = None
    cpus_per_task: int = 1
    memory_per_task_bytes: int | None = None
    max_retries: int = 1
    pair_options: PairOptions = field(default_factory=PairOptions)
    max_shard_bytes: int = DEFAULT_MAX_SHARD_BYTES
    only_pairs: tuple[str, ...] = ()
    force: bool = False
    verify_resume: bool = False
    previews: bool = True
    fetch: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.workers is not None and self.workers < 1:
            raise OptionsError(f"workers must be >= 1, got {self.workers}")
        if self.cpus_per_task < 1:
            raise OptionsError(f"cpus_per_task must be >= 1, got {self.cpus_per_task}")
        if self.memory_per_task_bytes is not None and self.memory_per_task_bytes < 1 << 20:
            raise OptionsError(f"memory_per_task must be at least 1 MB, got {self.memory_per_task_bytes} bytes")
        if self.max_retries < 0:
            raise OptionsError(f"max_retries must be >= 0, got {self.max_retries}")
        if self.max_shard_bytes < 1 << 16:
            raise OptionsError(f"max_shard_bytes must be at least 65536, got {self.max_shard_bytes}")


def fingerprint(payload: dict[str, Any]) -> str:
    """sha256 of a JSON-ready payload (sorted keys): what a completed pair record was built from."""
    text = json.dumps(payload, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()
