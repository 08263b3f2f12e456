"""Manifest schema: the validated records (:class:`Manifest`, :class:`PairSpec`, :class:`SourceSpec`,
:class:`FormatSpec`, :class:`ExcludedSource`), the keys a manifest may use and the per-pair option rules.

Every record checks itself in ``__post_init__`` and raises :class:`~fmstf_data.errors.ManifestError`;
:mod:`fmstf_data.manifest.load` builds them from YAML and adds file, line and field to the messages. Schema reference:
``manifests/README.md``. Import these names from :mod:`fmstf_data.manifest.load`, which re-exports them.
"""

from __future__ import annotations

import math
import os
import re
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from fmstf_data.errors import InvalidValueError, ManifestError, UnknownKeyError

MANIFEST_VERSION = 1
PAIR_ID_PATTERN = re.compile(r"[a-z0-9][a-z0-9_-]*\Z")  # contract 1
YOUTUBE_ID_PATTERN = re.compile(r"[A-Za-z0-9_-]{11}\Z")
VCODEC_PATTERN = re.compile(r"[a-z0-9][a-z0-9.]*\Z")
SPLITS = ("train", "val", "test")
ROLES = ("hdr", "sdr")
SOURCE_KINDS = ("local", "url", "youtube")
DYNAMIC_RANGE_OF_ROLE = {"hdr": "HDR10", "sdr": "SDR"}
URL_SCHEMES = ("http", "https", "file")
YOUTUBE_HOSTS = frozenset({"youtube.com", "www.youtube.com", "m.youtube.com", "music.youtube.com",
                           "youtube-nocookie.com", "www.youtube-nocookie.com", "youtu.be", "www.youtu.be"})

Kind = Literal["local", "url", "youtube"]
Role = Literal["hdr", "sdr"]


@dataclass(frozen=True)
class OptionRule:
    """Type and range of one per-pair processing option (mirrors ``pipelines.options.PairOptions``)."""

    kind: type  # int or float
    minimum: float | None = None
    maximum: float | None = None
    exclusive_minimum: bool = False
    odd: bool = False

    def problem(self, value: Any) -> str | None:
        """Why ``value`` is not acceptable, or None."""
        numeric = (int, float) if self.kind is float else (int,)
        if isinstance(value, bool) or not isinstance(value, numeric):
            return f"expected {'a number' if self.kind is float else 'an integer'}, got {type_name(value)} {value!r}"
        if not math.isfinite(value):
            return f"expected a finite number, got {value!r}"
        if self.minimum is not None and (value <= self.minimum if self.exclusive_minimum else value < self.minimum):
            return f"must be {'>' if self.exclusive_minimum else '>='} {self.minimum}, got {value!r}"
        if self.maximum is not None and value > self.maximum:
            return f"must be <= {self.maximum}, got {value!r}"
        if self.odd and value % 2 == 0:
            return f"must be odd (a window has a centre frame), got {value!r}"
        return None


# Per-pair processing options that ``defaults`` and a pair's ``options`` may set (the build's PairOptions fields).
PAIR_OPTION_RULES: dict[str, OptionRule] = {
    "stride_frames": OptionRule(int, minimum=1),
    "stride_seconds": OptionRule(float, minimum=0, exclusive_minimum=True),
    "max_offset_seconds": OptionRule(float, minimum=0),
    "search_seconds": OptionRule(float, minimum=0, exclusive_minimum=True),
    "min_pair_score": OptionRule(float, minimum=-1, maximum=1),
    "min_match_score": OptionRule(float, minimum=-1, maximum=1),
    "cut_score": OptionRule(float, minimum=-1, maximum=1),
    "zstd_level": OptionRule(int, minimum=1, maximum=22),
    "chunk_seconds": OptionRule(float, minimum=0, exclusive_minimum=True),
    "window_frames": OptionRule(int, minimum=3, maximum=25, odd=True),
}
FORMAT_KEYS = ("format", "hdr_format", "sdr_format")
TOP_KEYS = ("version", "name", "description", "defaults", "pairs", "excluded")
PAIR_KEYS = ("id", "split", "hdr", "sdr", "youtube", "start_seconds", "end_seconds", "notes", "licence", "options",
             *FORMAT_KEYS)
DEFAULTS_KEYS = (*PAIR_OPTION_RULES, *FORMAT_KEYS)
FORMAT_SPEC_KEYS = ("height", "vcodec", "selector")
EXCLUDED_KEYS = ("source", "reason", "notes")


@dataclass(frozen=True)
class FormatSpec:
    """Which YouTube/URL format to download for one side of a pair (yt-dlp format selection by fields).

    Attributes:
        height: target height in pixels: the tallest height <= this offered as both an HDR10 and an SDR video-only
            stream is used, so both versions share one height. None: the fetch option ``format_height`` (2160).
        vcodec: codec prefix to require (``vp09``, ``av01``, ``avc1``); None lets yt-dlp's ranking choose.
        selector: a complete yt-dlp format selector (``bv[dynamic_range=HDR10][height=1440]``), used as given
            instead of ``height``/``vcodec``.
    """

    height: int | None = None
    vcodec: str | None = None
    selector: str | None = None

    def __post_init__(self) -> None:
        if self.height is not None and (isinstance(self.height, bool) or not isinstance(self.height, int)
                                        or self.height < 1):
            raise ManifestError(f"height must be a positive integer (pixels), got {self.height!r}")
        if self.vcodec is not None and not (isinstance(self.vcodec, str) and VCODEC_PATTERN.match(self.vcodec)):
            raise ManifestError(f"vcodec must be a lower-case codec prefix such as 'vp09', 'av01' or 'avc1', "
                                f"got {self.vcodec!r}")
        if self.selector is not None and not (isinstance(self.selector, str) and self.selector.strip()):
            raise ManifestError(f"selector must be a non-empty yt-dlp format selector, got {self.selector!r}")
        if self.selector is not None and (self.height is not None or self.vcodec is not None):
            raise ManifestError("give either a selector or height/vcodec, not both (a selector is used as given)")

    @property
    def is_empty(self) -> bool:
        return self.height is None and self.vcodec is None and self.selector is None

    def merged_over(self, base: FormatSpec) -> FormatSpec:
        """This (more specific) spec applied over ``base``: a selector replaces everything; height/vcodec replace
        a base selector and override the base's height/vcodec one by one."""
        if self.selector is not None:
            return self
        if self.is_empty:
            return base
        return FormatSpec(height=self.height if self.height is not None else base.height,
                          vcodec=self.vcodec if self.vcodec is not None else base.vcodec)

    def describe(self, default_height: int) -> str:
        """Human-readable request, e.g. ``height<=2160, vcodec vp09``."""
        if self.selector is not None:
            return f"selector {self.selector!r}"
        text = f"height<={self.height if self.height is not None else default_height}"
        return text + (f", vcodec {self.vcodec}" if self.vcodec else "")


@dataclass(frozen=True)
class SourceSpec:
    """One side (HDR or SDR version) of a pair.

    Attributes:
        kind: ``local`` (a file, used in place), ``url`` (http/https/file URL, fetched with yt-dlp) or ``youtube``.
        location: local: the absolute path; url: the URL; youtube: the 11-character video ID.
        role: ``hdr`` (wanted: HDR10, PQ, BT.2020) or ``sdr`` (wanted: SDR, BT.709).
        format: format selection for url/youtube sides (None for local files).
        pair_id: the pair this side belongs to (for messages).
        text: the source as written in the manifest.
        line: 1-based manifest line (for messages).
        field: manifest field, e.g. ``pairs[3].hdr`` or ``pairs[3].youtube``.
    """

    kind: Kind
    location: str
    role: Role
    format: FormatSpec | None = None
    pair_id: str | None = None
    text: str | None = None
    line: int | None = None
    field: str | None = None

    def __post_init__(self) -> None:
        if self.kind not in SOURCE_KINDS:
            raise ManifestError(f"source kind must be one of {SOURCE_KINDS}, got {self.kind!r}")
        if self.role not in ROLES:
            raise ManifestError(f"role must be one of {ROLES}, got {self.role!r}")
        if not isinstance(self.location, str) or not self.location:
            raise ManifestError(f"location must be a non-empty string, got {self.location!r}")
        if self.kind == "youtube" and not YOUTUBE_ID_PATTERN.match(self.location):
            raise ManifestError(f"a YouTube video ID has 11 characters [A-Za-z0-9_-], got {self.location!r}")
        if self.kind == "local" and not os.path.isabs(self.location):
            raise ManifestError(f"a local source location must be an absolute path, got {self.location!r}")
        if self.kind == "url" and urllib.parse.urlsplit(self.location).scheme not in URL_SCHEMES:
            raise ManifestError(f"a URL source must use one of {URL_SCHEMES}, got {self.location!r}")
        if self.kind == "local" and self.format is not None:
            raise ManifestError("format selection applies to URL and YouTube sources, not local files")

    @property
    def dynamic_range(self) -> str:
        """The dynamic range this side must have: ``HDR10`` (hdr) or ``SDR`` (sdr), in yt-dlp's vocabulary."""
        return DYNAMIC_RANGE_OF_ROLE[self.role]

    @property
    def path(self) -> Path:
        """The file of a local source."""
        if self.kind != "local":
            raise InvalidValueError(f"{self.describe()} is a {self.kind} source, not a local file")
        return Path(self.location)

    @property
    def url(self) -> str:
        """What yt-dlp is given: the URL, or the canonical watch URL of a YouTube ID."""
        if self.kind == "youtube":
            return f"https://www.youtube.com/watch?v={self.location}"
        if self.kind == "url":
            return self.location
        return Path(self.location).as_uri()

    def describe(self) -> str:
        """Short text for messages: ``youtube:ID``, the URL, or the path."""
        return f"youtube:{self.location}" if self.kind == "youtube" else self.location

    @property
    def identity(self) -> tuple[str, str]:
        """What makes two sources the same video (for the split-leak check): files by real path."""
        if self.kind == "local":
            return ("file", os.path.realpath(self.location))
        if self.kind == "url":
            parts = urllib.parse.urlsplit(self.location)
            if parts.scheme == "file":
                return ("file", os.path.realpath(urllib.request.url2pathname(parts.path)))
            return ("url", urllib.parse.urlunsplit((parts.scheme.lower(), parts.netloc.lower(), parts.path,
                                                    parts.query, "")))
        return ("youtube", self.location)


@dataclass(frozen=True)
class PairSpec:
    """One HDR10/SDR pair of a manifest.

    Attributes:
        id: pair id, ``[a-z0-9][a-z0-9_-]*`` (contract 1).
        split: ``train``, ``val`` or ``test`` (contract 4: a video belongs to one split).
        hdr, sdr: the two versions.
        start_seconds, end_seconds: optional segment on the HDR timeline (seconds); None: from the start / to
            the end. Whole files are fetched; the segment is applied when frames are extracted.
        notes, licence: free text.
        options: per-pair processing options set by the pair itself (``options:``); the manifest's ``defaults``
            are kept apart in :attr:`Manifest.defaults`.
        line: 1-based line where the pair starts.
    """

    id: str
    split: str
    hdr: SourceSpec
    sdr: SourceSpec
    start_seconds: float | None = None
    end_seconds: float | None = None
    notes: str | None = None
    licence: str | None = None
    options: dict[str, Any] = field(default_factory=dict)
    line: int | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.id, str) or not PAIR_ID_PATTERN.match(self.id):
            raise ManifestError(f"pair id must match [a-z0-9][a-z0-9_-]* (lower case, no dots), got {self.id!r}")
        if self.split not in SPLITS:
            raise ManifestError(f"split must be one of {', '.join(SPLITS)}, got {self.split!r}")
        if self.hdr.role != "hdr" or self.sdr.role != "sdr":
            raise ManifestError(f"pair {self.id}: hdr/sdr sources carry roles {self.hdr.role}/{self.sdr.role}")
        for name in ("start_seconds", "end_seconds"):
            value = getattr(self, name)
            if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float))
                                      or not math.isfinite(value) or value < 0):
                raise ManifestError(f"{name} must be a finite number of seconds >= 0, got {value!r}")
        if self.start_seconds is not None and self.end_seconds is not None \
                and self.start_seconds >= self.end_seconds:
            raise ManifestError(f"end_seconds ({self.end_seconds}) must be greater than start_seconds "
                                f"({self.start_seconds})")
        for name, value in self.options.items():
            rule = PAIR_OPTION_RULES.get(name)
            if rule is None:
                raise ManifestError(f"unknown pair option {name!r}; valid: {', '.join(PAIR_OPTION_RULES)}")
            problem = rule.problem(value)
            if problem:
                raise ManifestError(f"option {name}: {problem}")

    @property
    def sources(self) -> tuple[SourceSpec, SourceSpec]:
        return (self.hdr, self.sdr)


@dataclass(frozen=True)
class ExcludedSource:
    """A video deliberately left out of the dataset, with the reason (kept in the manifest for the record)."""

    kind: Kind
    location: str
    reason: str
    notes: str | None = None
    line: int | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.reason, str) or not self.reason.strip():
            raise ManifestError("an excluded source needs a reason")

    def describe(self) -> str:
        return f"youtube:{self.location}" if self.kind == "youtube" else self.location


@dataclass(frozen=True)
class Manifest:
    """A validated manifest.

    Attributes:
        version: schema version (1).
        name: dataset name.
        pairs: the pairs, in file order.
        description: free text.
        defaults: per-pair processing options for every pair (a pair's ``options`` override them).
        format_defaults: format selection defaults per role (``{"hdr": FormatSpec, "sdr": FormatSpec}``),
            already merged into each source's ``format``.
        excluded: sources deliberately left out, with reasons.
        path: the manifest file (None when parsed from text).
    """

    version: int
    name: str
    pairs: tuple[PairSpec, ...]
    description: str | None = None
    defaults: dict[str, Any] = field(default_factory=dict)
    format_defaults: dict[str, FormatSpec] = field(default_factory=dict)
    excluded: tuple[ExcludedSource, ...] = ()
    path: Path | None = None

    def __post_init__(self) -> None:
        if self.version != MANIFEST_VERSION:
            raise ManifestError(f"unsupported manifest version {self.version!r}; this fmstf-data reads version "
                                f"{MANIFEST_VERSION}")
        if not self.pairs:
            raise ManifestError("a manifest needs at least one pair")
        ids = [pair.id for pair in self.pairs]
        if len(set(ids)) != len(ids):
            raise ManifestError(f"duplicate pair ids: {sorted({i for i in ids if ids.count(i) > 1})}")

    def pairs_in(self, split: str) -> tuple[PairSpec, ...]:
        """The pairs of one split, in file order."""
        return tuple(pair for pair in self.pairs if pair.split == split)

    def split_counts(self) -> dict[str, int]:
        """Pairs per split, for the splits that have any, in the order train, val, test."""
        return {split: len(self.pairs_in(split)) for split in SPLITS if self.pairs_in(split)}

    def pair(self, pair_id: str) -> PairSpec:
        for pair in self.pairs:
            if pair.id == pair_id:
                return pair
        raise UnknownKeyError(f"no pair {pair_id!r} in manifest {self.name!r}")


def type_name(value: Any) -> str:
    """How a parsed YAML value is named in messages: ``"an integer"``, ``"a mapping"``, ``"nothing"``."""
    if value is None:
        return "nothing"
    return {bool: "a boolean", int: "an integer", float: "a number", str: "a string", list: "a list",
            dict: "a mapping"}.get(type(value), type(value).__name__)
