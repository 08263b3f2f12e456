"""``fmstf-data build --dry-run``: what a build would do, computed offline.

Pairs per split, each pair's two sources, and for each source whether it is a local file (used in place), already in
the download cache (complete: reused), partly downloaded (resumed), or still to fetch. Nothing touches the network
and nothing is written.
"""

from __future__ import annotations

import os
from pathlib import Path

from fmstf_data.manifest.schema import SPLITS, Manifest, PairSpec, SourceSpec
from fmstf_data.sources import FetchOptions, cache_entry

_KIND_WORDS = {"youtube": "from YouTube", "url": "from URLs"}


def format_size(size_bytes: float) -> str:
    """``1.23 GB`` style (decimal units)."""
    if size_bytes < 1000:
        return f"{size_bytes:.0f} B"
    for unit in ("kB", "MB", "GB"):
        size_bytes /= 1000
        if size_bytes < 1000:
            return f"{size_bytes:.2f} {unit}"
    return f"{size_bytes / 1000:.2f} TB"


def source_state(spec: SourceSpec, cache_dir: Path, options: FetchOptions) -> tuple[str, str]:
    """(state, detail) of one source: state is ``local``, ``missing``, ``cached``, ``partial`` or ``fetch``."""
    if spec.kind == "local":
        path = Path(spec.location)
        if not path.is_file():
            return "missing", f"local file not found: {path}"
        return "local", f"local file, {format_size(path.stat().st_size)}, used in place"
    entry = cache_entry(spec, cache_dir, options=options)
    fetched = entry.read()
    if fetched is not None:
        info = fetched.info
        what = ", ".join(str(part) for part in (info.get("format_id") and f"format {info['format_id']}",
                                                 info.get("vcodec"), info.get("height") and f"{info['height']}p")
                         if part)
        return "cached", f"cached, {format_size(fetched.size_bytes)}" + (f" ({what})" if what else "")
    partial = entry.partial_files()
    if partial:
        return "partial", f"partly downloaded ({format_size(sum(p.stat().st_size for p in partial))}), would resume"
    return "fetch", "would fetch"


def _request(spec: SourceSpec, options: FetchOptions) -> str:
    if spec.kind == "local":
        return ""
    if spec.format is not None and spec.format.selector is not None:
        return f"{spec.dynamic_range}, {spec.format.describe(options.format_height)}"
    height = spec.format.height if spec.format is not None and spec.format.height is not None else \
        options.format_height
    vcodec = f" {spec.format.vcodec}" if spec.format is not None and spec.format.vcodec else ""
    return f"{spec.dynamic_range}{vcodec} video only, height<={height}"


def _segment(pair: PairSpec) -> str:
    if pair.start_seconds is None and pair.end_seconds is None:
        return ""
    start = f"{pair.start_seconds:g} s" if pair.start_seconds is not None else "start"
    end = f"{pair.end_seconds:g} s" if pair.end_seconds is not None else "end"
    return f"  segment {start} - {end}"


def format_plan(manifest: Manifest, cache_dir: str | os.PathLike, *, options: FetchOptions | None = None) -> str:
    """The dry-run plan as text (offline; reads only the manifest's local files and the cache's markers).

    Args:
        manifest: a validated manifest.
        cache_dir: the download cache the build would use.
        options: fetch options (their ``format_height`` decides the cache entries looked up).
    """
    options = options or FetchOptions()
    cache_dir = Path(cache_dir).expanduser()
    counts = manifest.split_counts()
    where = f" ({manifest.path})" if manifest.path is not None else ""
    lines = [f"manifest {manifest.name}{where}: {len(manifest.pairs)} pairs: "
             + ", ".join(f"{count} {split}" for split, count in counts.items()),
             f"cache: {cache_dir}"]
    for entry in manifest.excluded:
        lines.append(f"excluded: {entry.describe()}: {' '.join(entry.reason.split())}")
    states: dict[str, int] = {}
    to_fetch: dict[str, set[tuple[str, str]]] = {"youtube": set(), "url": set()}
    videos: set[tuple[str, str]] = set()
    for split in SPLITS:
        pairs = manifest.pairs_in(split)
        if not pairs:
            continue
        lines.append("")
        lines.append(f"{split} ({len(pairs)} pair{'s' if len(pairs) != 1 else ''})")
        for pair in pairs:
            lines.append(f"  {pair.id}{_segment(pair)}")
            for spec in pair.sources:
                state, detail = source_state(spec, cache_dir, options)
                key = (spec.kind, spec.location, spec.role)
                if key not in videos:  # a source shared by two pairs is fetched once
                    videos.add(key)
                    states[state] = states.get(state, 0) + 1
                    if state in ("fetch", "partial"):
                        to_fetch[spec.kind].add((spec.location, spec.role))
                request = _request(spec, options)
                lines.append(f"    {spec.role}  {spec.describe()}" + (f"  [{request}]" if request else "")
                             + f"  {detail}")
    lines.append("")
    summary = ", ".join(f"{states[state]} {word}" for state, word in
                        (("local", "local"), ("cached", "cached"), ("partial", "partly downloaded"),
                         ("fetch", "to fetch"), ("missing", "MISSING")) if states.get(state))
    lines.append(f"sources: {sum(states.values())} ({summary})")
    fetching = [f"{len(items)} stream{'s' if len(items) != 1 else ''} of {len({loc for loc, _ in items})} "
                f"video{'s' if len({loc for loc, _ in items}) != 1 else ''} {_KIND_WORDS[kind]}"
                for kind, items in to_fetch.items() if items]
    lines.append("would download: " + (", ".join(fetching) if fetching else "nothing")
                 + "; dry run: nothing was downloaded or written")
    return "\n".join(lines)
