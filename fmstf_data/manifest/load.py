"""Manifests: which HDR10/SDR video pairs make a dataset, and which split each pair belongs to.

A manifest is a YAML file (schema in ``manifests/README.md``)::

    version: 1
    name: demo
    defaults: {stride_frames: 4, format: {height: 2160}}
    pairs:
      - id: city
        split: train
        hdr: demo/city.hdr.mp4          # a path relative to the manifest, a URL, or youtube:ID
        sdr: demo/city.sdr.mp4
      - id: sunset
        split: test
        youtube: bpfu7biLT5c            # one video ID serves both versions (HDR10 and SDR formats)

It is read with ``yaml.compose`` and the safe loader only (never ``yaml.load``), and every error is a
:class:`~fmstf_data.errors.ManifestError` naming the file, the 1-based line and the field (``pairs[2].split``).
Splits are by video (contract 4): the same source in two splits is refused as a leak.

The records and option rules live in :mod:`fmstf_data.manifest.schema`, the line-aware YAML reading in
:mod:`fmstf_data.manifest.yaml_lines`; the records and constants are re-exported here, so
``from fmstf_data.manifest.load import PairSpec, SPLITS`` keeps working.
"""

from __future__ import annotations

import difflib
import math
import os
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

from fmstf_data.errors import InvalidValueError, ManifestError
from fmstf_data.manifest.schema import (
    DEFAULTS_KEYS,
    EXCLUDED_KEYS,
    FORMAT_SPEC_KEYS,
    MANIFEST_VERSION,
    PAIR_ID_PATTERN,
    PAIR_KEYS,
    PAIR_OPTION_RULES,
    ROLES,
    SPLITS,
    TOP_KEYS,
    URL_SCHEMES,
    YOUTUBE_HOSTS,
    YOUTUBE_ID_PATTERN,
    ExcludedSource,
    FormatSpec,
    Kind,
    Manifest,
    PairSpec,
    SourceSpec,
)
from fmstf_data.manifest.schema import type_name as _type_name
from fmstf_data.manifest.yaml_lines import ManifestDocument


def load_manifest(path: str | os.PathLike) -> Manifest:
    """Read and validate a manifest file.

    Relative local paths are resolved against the manifest's folder, and local files must exist.

    Raises:
        ManifestError: naming the file, line and field of the first problem found.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ManifestError(f"manifest file not found: {path.resolve()}", path=str(path)) from None
    except (OSError, UnicodeDecodeError) as error:
        raise ManifestError(f"cannot read the manifest: {error}", path=str(path)) from None
    return parse_manifest(text, path=path)


def parse_manifest(text: str, *, path: str | os.PathLike | None = None, base_dir: str | os.PathLike | None = None
                   ) -> Manifest:
    """Validate manifest ``text``. Relative paths resolve against ``base_dir`` (default: the folder of ``path``,
    else the current directory); ``path`` is only used in messages when the text was not read from it."""
    path = Path(path) if path is not None else None
    base = Path(base_dir) if base_dir is not None else (path.parent if path is not None else Path.cwd())
    document = ManifestDocument(text, path)
    return _ManifestParser(document, base.resolve()).parse()


def parse_source(text: str, *, base_dir: str | os.PathLike) -> tuple[Kind, str]:
    """Classify a manifest source string: ``(kind, location)``.

    ``youtube:ID`` and YouTube URLs (watch?v=, youtu.be/, /shorts/, /embed/, /live/) give ``("youtube", ID)``;
    other http/https/file URLs give ``("url", URL)``; anything else is a path, resolved against ``base_dir``
    (``~`` expanded) and returned absolute as ``("local", path)``. Existence is not checked here.

    Raises:
        ValueError: the text names no usable source (message says why).
    """
    text = text.strip()
    if not text:
        raise InvalidValueError("empty source")
    if text.lower().startswith("youtube:"):
        video_id = text.split(":", 1)[1].strip()
        if not YOUTUBE_ID_PATTERN.match(video_id):
            raise InvalidValueError(f"{text!r}: a YouTube video ID has 11 characters [A-Za-z0-9_-]")
        return "youtube", video_id
    parts = urllib.parse.urlsplit(text)
    scheme = parts.scheme.lower()
    if scheme and len(scheme) > 1:  # one letter: a Windows drive, i.e. a path
        if scheme not in URL_SCHEMES:
            raise InvalidValueError(f"{text!r}: unsupported URL scheme {scheme!r}; use a path, an http/https/file URL "
                             f"or youtube:ID")
        host = (parts.hostname or "").lower()
        if scheme in ("http", "https") and host in YOUTUBE_HOSTS:
            return "youtube", _youtube_id_from_url(text, parts, host)
        if scheme in ("http", "https") and not host:
            raise InvalidValueError(f"{text!r}: URL without a host")
        return "url", text
    return "local", str(Path(base_dir, os.path.expanduser(text)).resolve())


def _youtube_id_from_url(text: str, parts: urllib.parse.SplitResult, host: str) -> str:
    segments = [segment for segment in parts.path.split("/") if segment]
    candidate = None
    if host.endswith("youtu.be"):
        candidate = segments[0] if segments else None
    elif segments[:1] == ["watch"]:
        candidate = (urllib.parse.parse_qs(parts.query).get("v") or [None])[0]
    elif len(segments) >= 2 and segments[0] in ("shorts", "embed", "live", "v"):
        candidate = segments[1]
    if candidate is None or not YOUTUBE_ID_PATTERN.match(candidate):
        raise InvalidValueError(f"{text!r}: no YouTube video ID found (expected watch?v=ID, youtu.be/ID, /shorts/ID, "
                         f"/embed/ID or /live/ID; playlists are not supported: list each video)")
    return candidate


class _ManifestParser:
    def __init__(self, document: ManifestDocument, base_dir: Path):
        self.doc = document
        self.base_dir = base_dir

    # -- helpers -------------------------------------------------------------------------------------------------

    def _mapping(self, value: Any, where: str, allowed: tuple[str, ...], what: str) -> dict[str, Any]:
        if not isinstance(value, dict):
            raise self.doc.error(f"{what} must be a mapping (key: value lines), got {_type_name(value)}", where)
        for key in value:
            if key not in allowed:
                child = f"{where}.{key}" if where else key
                close = difflib.get_close_matches(key, allowed, n=1, cutoff=0.6)
                hint = f"did you mean {close[0]!r}?" if close else f"valid keys: {', '.join(allowed)}"
                raise self.doc.error(f"unknown key {key!r} in {what}; {hint}", child)
        return value

    def _string(self, mapping: dict[str, Any], key: str, where: str, *, required: bool = False) -> str | None:
        child = f"{where}.{key}" if where else key
        if key not in mapping or mapping[key] is None:
            if required:
                raise self.doc.error(f"missing required key {key!r}", child)
            return None
        value = mapping[key]
        if not isinstance(value, str):
            if isinstance(value, (dict, list)) or child not in self.doc.raw:
                raise self.doc.error(f"expected a string, got {_type_name(value)} {value!r}", child)
            value = self.doc.raw[child]  # a plain scalar such as 2019 or no: taken as written
        if required and not value.strip():
            raise self.doc.error("must not be empty", child)
        return value

    def _seconds(self, mapping: dict[str, Any], key: str, where: str) -> float | None:
        value = mapping.get(key)
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
            raise self.doc.error(f"expected a number of seconds >= 0, got {_type_name(value)} {value!r}",
                                 f"{where}.{key}")
        return float(value)

    def _options(self, value: Any, where: str, keys: tuple[str, ...]) -> dict[str, Any]:
        result = {}
        for name, item in value.items():
            if name in PAIR_OPTION_RULES and name in keys:
                problem = PAIR_OPTION_RULES[name].problem(item)
                if problem:
                    raise self.doc.error(problem, f"{where}.{name}")
                result[name] = item
        return result

    def _format(self, value: Any, where: str, *, allow_string: bool) -> FormatSpec:
        if isinstance(value, str) and allow_string:
            spec = {"selector": value}
        elif isinstance(value, dict):
            spec = self._mapping(value, where, FORMAT_SPEC_KEYS, "a format")
        else:
            expected = "a yt-dlp selector string or a mapping" if allow_string else "a mapping such as {height: 2160}"
            raise self.doc.error(f"expected {expected}, got {_type_name(value)} {value!r}", where)
        try:
            result = FormatSpec(**spec)
        except ManifestError as error:
            raise self.doc.error(error.message, where) from None
        if result.selector is not None:
            problem = selector_syntax_problem(result.selector)
            if problem:
                raise self.doc.error(problem, where)
        return result

    # -- sections ------------------------------------------------------------------------------------------------

    def parse(self) -> Manifest:
        root = self.doc.root
        if root is None:
            raise self.doc.error("the manifest is empty; it needs version, name and pairs", "")
        top = self._mapping(root, "", TOP_KEYS, "the manifest")
        version = top.get("version")
        if "version" not in top:
            raise self.doc.error("missing required key 'version' (write version: 1)", "version")
        if isinstance(version, bool) or version != MANIFEST_VERSION:
            raise self.doc.error(f"unsupported manifest version {version!r}; this fmstf-data reads version "
                                 f"{MANIFEST_VERSION}", "version")
        name = self._string(top, "name", "", required=True)
        description = self._string(top, "description", "")
        defaults, format_defaults = self._defaults(top.get("defaults"))
        excluded = self._excluded(top.get("excluded"))
        pairs_value = top.get("pairs")
        if "pairs" not in top:
            raise self.doc.error("missing required key 'pairs'", "pairs")
        if not isinstance(pairs_value, list):
            raise self.doc.error(f"pairs must be a list (lines starting with '- '), got {_type_name(pairs_value)}",
                                 "pairs")
        if not pairs_value:
            raise self.doc.error("pairs is empty; a manifest needs at least one pair", "pairs")
        pairs = [self._pair(item, f"pairs[{index}]", format_defaults) for index, item in enumerate(pairs_value)]
        self._check_unique_ids(pairs)
        self._check_leaks(pairs)
        self._check_excluded(pairs, excluded)
        try:
            return Manifest(version=MANIFEST_VERSION, name=name, pairs=tuple(pairs), description=description,
                            defaults=defaults, format_defaults=format_defaults, excluded=tuple(excluded),
                            path=self.doc.path)
        except ManifestError as error:
            raise self.doc.error(error.message, "") from None

    def _defaults(self, value: Any) -> tuple[dict[str, Any], dict[str, FormatSpec]]:
        formats = {role: FormatSpec() for role in ROLES}
        if value is None:
            return {}, formats
        value = self._mapping(value, "defaults", DEFAULTS_KEYS, "defaults")
        options = self._options(value, "defaults", tuple(PAIR_OPTION_RULES))
        if "format" in value:
            both = self._format(value["format"], "defaults.format", allow_string=False)
            formats = {role: both for role in ROLES}
        for role in ROLES:
            key = f"{role}_format"
            if key in value:
                formats[role] = self._format(value[key], f"defaults.{key}", allow_string=True).merged_over(
                    formats[role])
        return options, formats

    def _excluded(self, value: Any) -> list[ExcludedSource]:
        if value is None:
            return []
        if not isinstance(value, list):
            raise self.doc.error(f"excluded must be a list of {{source, reason}} entries, got {_type_name(value)}",
                                 "excluded")
        result = []
        for index, item in enumerate(value):
            where = f"excluded[{index}]"
            item = self._mapping(item, where, EXCLUDED_KEYS, "an excluded entry")
            text = self._string(item, "source", where, required=True)
            reason = self._string(item, "reason", where, required=True)
            try:
                kind, location = parse_source(text, base_dir=self.base_dir)
            except ValueError as error:
                raise self.doc.error(str(error), f"{where}.source") from None
            result.append(ExcludedSource(kind, location, reason, self._string(item, "notes", where),
                                         self.doc.line_of(where)))
        return result

    def _pair(self, value: Any, where: str, format_defaults: dict[str, FormatSpec]) -> PairSpec:
        if not isinstance(value, dict):
            raise self.doc.error(f"each pair must be a mapping with id, split, hdr and sdr; got {_type_name(value)}",
                                 where)
        value = self._mapping(value, where, PAIR_KEYS, "a pair")
        pair_id = self._string(value, "id", where, required=True)
        if not PAIR_ID_PATTERN.match(pair_id):
            raise self.doc.error(f"pair id {pair_id!r} must match [a-z0-9][a-z0-9_-]* (lower-case letters, digits, "
                                 f"'_' and '-'; no dots: it starts every sample key)", f"{where}.id")
        split = self._string(value, "split", where, required=True)
        if split not in SPLITS:
            close = difflib.get_close_matches(split, SPLITS, n=1, cutoff=0.5)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise self.doc.error(f"split {split!r} is not one of {', '.join(SPLITS)}{hint}", f"{where}.split")
        formats = self._pair_formats(value, where, format_defaults)
        hdr, sdr = self._pair_sources(value, where, pair_id, formats)
        start = self._seconds(value, "start_seconds", where)
        end = self._seconds(value, "end_seconds", where)
        if start is not None and end is not None and start >= end:
            raise self.doc.error(f"end_seconds ({end:g}) must be greater than start_seconds ({start:g})",
                                 f"{where}.end_seconds")
        options: dict[str, Any] = {}
        if value.get("options") is not None:
            raw = self._mapping(value["options"], f"{where}.options", tuple(PAIR_OPTION_RULES), "pair options")
            options = self._options(raw, f"{where}.options", tuple(PAIR_OPTION_RULES))
        notes, licence = self._string(value, "notes", where), self._string(value, "licence", where)  # own lines
        try:
            return PairSpec(id=pair_id, split=split, hdr=hdr, sdr=sdr, start_seconds=start, end_seconds=end,
                            notes=notes, licence=licence, options=options, line=self.doc.line_of(where))
        except ManifestError as error:
            raise self.doc.error(error.message, where) from None

    def _pair_formats(self, value: dict[str, Any], where: str, defaults: dict[str, FormatSpec]
                      ) -> dict[str, FormatSpec]:
        formats = dict(defaults)
        if value.get("format") is not None:
            both = self._format(value["format"], f"{where}.format", allow_string=False)
            formats = {role: both.merged_over(formats[role]) for role in ROLES}
        for role in ROLES:
            key = f"{role}_format"
            if value.get(key) is not None:
                formats[role] = self._format(value[key], f"{where}.{key}", allow_string=True).merged_over(
                    formats[role])
        return formats

    def _pair_sources(self, value: dict[str, Any], where: str, pair_id: str, formats: dict[str, FormatSpec]
                      ) -> tuple[SourceSpec, SourceSpec]:
        if value.get("youtube") is not None:
            extra = [role for role in ROLES if value.get(role) is not None]
            if extra:
                raise self.doc.error(f"give either 'youtube' (one video ID for both versions) or 'hdr' and 'sdr', "
                                     f"not both; remove {' and '.join(extra)} or youtube", f"{where}.{extra[0]}")
            text = self._string(value, "youtube", where, required=True)
            if not text.lower().startswith("youtube:") and "/" not in text:
                text = f"youtube:{text}"
            kind, location = self._classify(text, f"{where}.youtube")
            if kind != "youtube":
                raise self.doc.error(f"'youtube' takes a YouTube video ID or URL, got {text!r}; use hdr/sdr for "
                                     f"other sources", f"{where}.youtube")
            sides = {role: (kind, location, text, f"{where}.youtube") for role in ROLES}
        else:
            sides = {}
            for role in ROLES:
                if value.get(role) is None:
                    raise self.doc.error(f"missing required key {role!r} (or give 'youtube: ID' for both versions)",
                                         f"{where}.{role}")
                text = self._string(value, role, where, required=True)
                kind, location = self._classify(text, f"{where}.{role}")
                self._check_file(kind, location, text, f"{where}.{role}")
                sides[role] = (kind, location, text, f"{where}.{role}")
            if sides["hdr"][:2] == sides["sdr"][:2] and sides["hdr"][0] != "youtube":
                raise self.doc.error(f"hdr and sdr name the same file {sides['hdr'][1]!r}; a pair needs two versions",
                                     f"{where}.sdr")
        specs = []
        for role in ROLES:
            kind, location, text, field_name = sides[role]
            format_spec = None
            if kind == "local":
                for key in ("format", f"{role}_format"):
                    if value.get(key) is not None:
                        raise self.doc.error(f"format selection applies to YouTube and URL sources; {role} is the "
                                             f"local file {location}", f"{where}.{key}")
            else:
                format_spec = formats[role]
            specs.append(SourceSpec(kind=kind, location=location, role=role, format=format_spec, pair_id=pair_id,
                                    text=text, line=self.doc.line_of(field_name), field=field_name))
        return specs[0], specs[1]

    def _classify(self, text: str, where: str) -> tuple[Kind, str]:
        try:
            return parse_source(text, base_dir=self.base_dir)
        except ValueError as error:
            raise self.doc.error(str(error), where) from None

    def _check_file(self, kind: Kind, location: str, text: str, where: str) -> None:
        if kind == "local":
            path = Path(location)
        elif kind == "url" and urllib.parse.urlsplit(location).scheme.lower() == "file":
            path = Path(urllib.request.url2pathname(urllib.parse.urlsplit(location).path))
        else:
            return
        try:
            is_dir, is_file = path.is_dir(), path.is_file()
        except (OSError, ValueError) as error:  # a name too long for the file system, a NUL, ...
            raise self.doc.error(f"cannot use {text!r} as a file name: {error}", where) from None
        if is_dir:
            raise self.doc.error(f"{path} is a directory, not a video file", where)
        if not is_file:
            relative = "" if os.path.isabs(os.path.expanduser(text)) or kind == "url" else \
                f" (written {text!r}, relative to the manifest's folder {self.base_dir})"
            raise self.doc.error(f"file not found: {path}{relative}", where)

    # -- whole-manifest checks -----------------------------------------------------------------------------------

    def _check_unique_ids(self, pairs: list[PairSpec]) -> None:
        first: dict[str, int] = {}
        for index, pair in enumerate(pairs):
            if pair.id in first:
                raise self.doc.error(f"duplicate pair id {pair.id!r} (first used at line {pairs[first[pair.id]].line})",
                                     f"pairs[{index}].id")
            first[pair.id] = index

    def _check_leaks(self, pairs: list[PairSpec]) -> None:
        seen: dict[tuple[str, str], tuple[PairSpec, SourceSpec]] = {}
        for pair in pairs:
            for source in pair.sources:
                other = seen.get(source.identity)
                if other is not None and other[0].split != pair.split:
                    raise self.doc.error(
                        f"{source.describe()} is also used by pair {other[0].id!r} in split {other[0].split!r} "
                        f"(line {other[1].line}); a video must belong to one split only (splits are by video), so "
                        f"put both pairs in one split or drop one", source.field)
                seen.setdefault(source.identity, (pair, source))

    def _check_excluded(self, pairs: list[PairSpec], excluded: list[ExcludedSource]) -> None:
        for entry in excluded:
            identity = SourceSpec(kind=entry.kind, location=entry.location, role="hdr").identity
            for pair in pairs:
                for source in pair.sources:
                    if source.identity == identity:
                        raise self.doc.error(f"{source.describe()} is listed under 'excluded' (line {entry.line}: "
                                             f"{entry.reason}); remove it there or drop this pair", source.field)


def selector_syntax_problem(selector: str) -> str | None:
    """Why yt-dlp's format-selector parser rejects ``selector``, or None (no network use)."""
    import yt_dlp

    with yt_dlp.YoutubeDL({"quiet": True, "no_warnings": True}) as ydl:
        try:
            ydl.build_format_selector(selector)
        except (SyntaxError, ValueError) as error:
            return " ".join(str(error).split())
    return None
