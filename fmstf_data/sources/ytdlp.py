"""Downloads through yt-dlp's Python API (``YoutubeDL(params).extract_info(url, download=True)``; never a shell
command line), with retries, backoff, resume of partial files, cookies, rate limits, and failures turned into
:class:`~fmstf_data.errors.FetchError` messages that say what to do.

Retries happen at two levels. yt-dlp retries each request itself (``retries``, ``fragment_retries``,
``extractor_retries``, sleeping ``retry_sleep_seconds * 2**n`` between tries) and resumes a broken transfer with an
HTTP Range request. Failures it does not retry - a 5xx or a timeout while extracting, a download that ran out of
retries - are retried here as whole new attempts (``fetch_attempts``), which again resume the ``.part`` file.
Refusals (403, bot checks, unavailable videos, no matching format) are never retried: retrying cannot fix them.
"""

from __future__ import annotations

import functools
import http.client
import io
import logging
import socket
import time
import urllib.parse
from pathlib import Path
from typing import Any, Iterator

from fmstf_data.errors import FetchError
from fmstf_data.manifest.schema import SourceSpec
from fmstf_data.sources.cache import CacheEntry, write_json_atomic
from fmstf_data.sources.fetched import FetchedSource, sha256_file
from fmstf_data.sources.formats import RoleFormatSelector
from fmstf_data.sources.options import FetchOptions, backoff_seconds, browser_spec

logger = logging.getLogger(__name__)

# Fields of yt-dlp's info dict pinned in FetchedSource.info and the completion marker.
PINNED_FIELDS = ("id", "extractor", "webpage_url", "title", "upload_date", "duration", "format_id", "format_note",
                 "vcodec", "acodec", "dynamic_range", "width", "height", "fps", "tbr", "filesize", "filesize_approx",
                 "ext", "protocol")
COOKIE_ADVICE = ("pass the cookies of a logged-in browser session with --cookies FILE (a Netscape cookies.txt) or "
                 "--cookies-from-browser BROWSER[:PROFILE] (e.g. firefox), make sure a JavaScript runtime (deno) and "
                 "yt-dlp-ejs are installed (docs/youtube.md), then rerun: completed downloads are kept")
RERUN_ADVICE = "rerun the same command: completed sources are kept and partial downloads resume"
_JS_HINT_WORDS = ("javascript runtime", "js runtime", "challenge", "signature", "po token", "ejs")


class _YtdlpLog:
    """yt-dlp ``logger``: routes its messages to ``logging`` and keeps warnings and errors for our messages."""

    def __init__(self, prefix: str):
        self.prefix = prefix
        self.warnings: list[str] = []
        self.errors: list[str] = []

    def debug(self, message: str) -> None:
        logger.debug("%s: %s", self.prefix, message)

    def info(self, message: str) -> None:
        logger.info("%s: %s", self.prefix, message)

    def warning(self, message: str) -> None:
        self.warnings.append(message)
        benign = "falling back on generic information extractor" in message.lower()
        logger.log(logging.DEBUG if benign else logging.WARNING, "%s: yt-dlp: %s", self.prefix, message)

    def error(self, message: str) -> None:
        self.errors.append(message)
        logger.debug("%s: yt-dlp: %s", self.prefix, message)

    def hints(self) -> list[str]:
        """Warnings worth repeating in an error message (JavaScript runtime, signature, PO token problems)."""
        return [w for w in self.warnings if any(word in w.lower() for word in _JS_HINT_WORDS)][-3:]


class _Failure(Exception):
    def __init__(self, message: str, *, transient: bool):
        super().__init__(message)
        self.message = message
        self.transient = transient


def ytdlp_params(spec: SourceSpec, entry: CacheEntry, options: FetchOptions, selector: RoleFormatSelector,
                 log: _YtdlpLog) -> dict[str, Any]:
    """The YoutubeDL parameters of one fetch (see yt-dlp's YoutubeDL docstring for each name)."""
    sleep = functools.partial(backoff_seconds, base_seconds=options.retry_sleep_seconds,
                              max_seconds=options.max_retry_sleep_seconds)
    params: dict[str, Any] = {
        "format": selector,
        "paths": {"home": str(entry.directory), "temp": str(entry.directory)},
        "outtmpl": {"default": entry.output_template},
        "logger": log,
        "quiet": True,
        "noprogress": True,
        "color": {"stdout": "no_color", "stderr": "no_color"},
        "noplaylist": True,
        "fixup": "never",  # no ffmpeg post-processing: we keep the stream as served
        "continuedl": True,  # resume .part files
        "nopart": False,
        "updatetime": False,
        "retries": options.retries,
        "fragment_retries": options.retries,
        "extractor_retries": options.extractor_retries,
        "file_access_retries": min(options.retries, 3),
        "retry_sleep_functions": {"http": sleep, "fragment": sleep, "extractor": sleep, "file_access": sleep},
        "socket_timeout": options.socket_timeout_seconds,
    }
    if options.rate_limit_bytes is not None:
        params["ratelimit"] = options.rate_limit_bytes
    if options.sleep_requests_seconds:
        params["sleep_interval_requests"] = options.sleep_requests_seconds
    if options.sleep_before_download_seconds:
        params["sleep_interval"] = options.sleep_before_download_seconds
    if options.cookies_file is not None:
        # A private in-memory copy: yt-dlp writes cookies back on exit, and parallel fetches must not race on the
        # user's file.
        params["cookiefile"] = io.StringIO(Path(options.cookies_file).read_text(encoding="utf-8"))
    if options.cookies_from_browser is not None:
        params["cookiesfrombrowser"] = browser_spec(options.cookies_from_browser)
    if options.js_runtimes:
        runtimes: dict[str, dict[str, str]] = {}
        for runtime in options.js_runtimes:
            name, _, path = runtime.partition(":")
            runtimes[name] = {"path": path} if path else {}
        params["js_runtimes"] = runtimes
    if options.remote_components:
        params["remote_components"] = list(options.remote_components)
    if options.proxy:
        params["proxy"] = options.proxy
    if options.extractor_args:
        params["extractor_args"] = {key: dict(value) for key, value in options.extractor_args.items()}
    if spec.kind == "url" and urllib.parse.urlsplit(spec.location).scheme.lower() == "file":
        params["enable_file_urls"] = True
    return params


def fetch_with_ytdlp(spec: SourceSpec, entry: CacheEntry, options: FetchOptions) -> FetchedSource:
    """Download ``spec`` into ``entry`` (resuming a partial file), write its info JSON and completion marker.

    Raises:
        FetchError: with what happened and what to do (cookies, rerun, another format ...).
    """
    options.check_cookies()
    where = _where(spec)
    for attempt in range(options.fetch_attempts):
        try:
            return _attempt(spec, entry, options)
        except _Failure as failure:
            last = attempt + 1 == options.fetch_attempts
            if not failure.transient:
                raise FetchError(f"{where}: {failure.message}") from None
            if last:
                partial = entry.partial_files()
                kept = f"; the partial download ({partial[0].stat().st_size} bytes) is kept in {entry.directory}" \
                    if partial else ""
                attempts = f"{options.fetch_attempts} attempt" + ("s" if options.fetch_attempts > 1 else "")
                raise FetchError(f"{where}: {failure.message} (after {attempts}){kept}; {RERUN_ADVICE}") from None
            delay = backoff_seconds(attempt, base_seconds=options.retry_sleep_seconds,
                                    max_seconds=options.max_retry_sleep_seconds)
            logger.warning("%s: attempt %d/%d failed: %s; retrying in %.1f s", where, attempt + 1,
                           options.fetch_attempts, failure.message, delay)
            time.sleep(delay)
    raise FetchError(f"{where}: no attempt was made (fetch_attempts is {options.fetch_attempts})")


def _where(spec: SourceSpec) -> str:
    who = f"{spec.pair_id}.{spec.role}" if spec.pair_id else spec.role
    return f"{who} {spec.describe()} ({spec.dynamic_range})"


def _attempt(spec: SourceSpec, entry: CacheEntry, options: FetchOptions) -> FetchedSource:
    import yt_dlp

    selector = RoleFormatSelector(dynamic_range=spec.dynamic_range, request=spec.format,
                                  default_height=options.format_height)
    log = _YtdlpLog(_where(spec))
    entry.directory.mkdir(parents=True, exist_ok=True)
    try:
        with yt_dlp.YoutubeDL(ytdlp_params(spec, entry, options, selector, log)) as ydl:
            selector.attach(ydl)
            info = ydl.extract_info(spec.url, download=True)
            info = ydl.sanitize_info(info)
    except yt_dlp.utils.DownloadError as error:
        raise classify_failure(error, spec, selector, log) from None
    except OSError as error:
        raise _Failure(f"cannot write into the cache {entry.directory}: {error} (disk full? permissions?)",
                       transient=False) from None
    if info is None or info.get("_type") in ("playlist", "multi_video"):
        raise _Failure("the URL leads to several videos (a playlist or a page); name one video per side",
                       transient=False)
    downloads = info.get("requested_downloads") or []
    paths = [Path(d["filepath"]) for d in downloads if d.get("filepath")]
    if len(paths) != 1 or not paths[0].is_file():
        raise _Failure(f"yt-dlp finished without one downloaded file (got {[str(p) for p in paths]}); "
                       f"{' '.join(log.errors[-1:])}", transient=True)
    path = paths[0]
    write_json_atomic(entry.info_json_path, info)
    sha256, size_bytes = sha256_file(path)
    pinned = {name: info[name] for name in PINNED_FIELDS if info.get(name) is not None}
    if not info.get("vcodec"):  # a direct link: yt-dlp's "SDR" is a default, not a measurement
        pinned.pop("dynamic_range", None)
    pinned.update(kind=spec.kind, location=spec.location, dynamic_range_wanted=spec.dynamic_range,
                  format_key=entry.format_key, selector=selector.selector_used, selected_height=selector.height,
                  info_json=str(entry.info_json_path), ytdlp_version=yt_dlp.version.__version__)
    fetched = FetchedSource(path=path, sha256=sha256, size_bytes=size_bytes, info=pinned, from_cache=False)
    entry.write_marker(fetched)
    logger.info("%s: fetched %s (%d bytes, format %s)", _where(spec), path, size_bytes, pinned.get("format_id"))
    return fetched


def _causes(error: BaseException) -> Iterator[BaseException]:
    """The error and everything it wraps (yt-dlp's exc_info and cause, Python's __cause__/__context__)."""
    seen: set[int] = set()
    stack = [error]
    while stack:
        item = stack.pop()
        if item is None or id(item) in seen:
            continue
        seen.add(id(item))
        yield item
        exc_info = getattr(item, "exc_info", None)
        if isinstance(exc_info, tuple) and len(exc_info) > 1 and isinstance(exc_info[1], BaseException):
            stack.append(exc_info[1])
        for name in ("cause", "__cause__", "__context__"):
            value = getattr(item, name, None)
            if isinstance(value, BaseException):
                stack.append(value)


def classify_failure(error: BaseException, spec: SourceSpec, selector: RoleFormatSelector | None = None,
                     log: _YtdlpLog | None = None) -> _Failure:
    """Turn a yt-dlp error into a message a person can act on, and whether retrying may help."""
    from yt_dlp.networking.exceptions import HTTPError, TransportError
    from yt_dlp.utils import ContentTooShortError

    chain = list(_causes(error))
    text = " ".join(str(item) for item in chain)
    lowered = text.lower()
    http_error = next((item for item in chain if isinstance(item, HTTPError)), None)
    status = getattr(http_error, "status", None)
    server = "YouTube" if spec.kind == "youtube" else "the server"
    hints = log.hints() if log is not None else []
    hint = f" (yt-dlp warned: {' | '.join(hints)})" if hints else ""
    detail = _short(str(error))

    if selector is not None and selector.problem:
        return _Failure(f"no suitable {spec.dynamic_range} format: {selector.problem}; set hdr_format/sdr_format "
                        f"in the manifest to choose another", transient=False)
    if "confirm your age" in lowered or "age-restricted" in lowered:
        return _Failure(f"{server} shows this video only to signed-in adults ({detail}): pass the cookies of such an "
                        f"account with --cookies FILE or --cookies-from-browser BROWSER[:PROFILE]", transient=False)
    if "not a bot" in lowered or "sign in to confirm" in lowered:
        return _Failure(f"{server} asks to confirm you're not a bot ({detail}): {COOKIE_ADVICE}; and slow down with "
                        f"--sleep-requests SECONDS{hint}", transient=False)
    if status == 403:
        return _Failure(f"{server} refused the download (HTTP 403 Forbidden): {COOKIE_ADVICE}{hint}", transient=False)
    if status == 429:
        return _Failure(f"{server} is rate-limiting us (HTTP 429 Too Many Requests); wait, then rerun with "
                        f"--sleep-requests SECONDS and --limit-rate RATE (cookies help too){hint}", transient=True)
    if status in (404, 410):
        return _Failure(f"{server} says the file does not exist (HTTP {status}): check {spec.describe()} in the "
                        f"manifest", transient=False)
    if status is not None and (status >= 500 or status in (408, 425)):
        return _Failure(f"{server} had a temporary failure (HTTP {status}): {detail}", transient=True)
    if status is not None:
        return _Failure(f"{server} answered HTTP {status}: {detail}", transient=False)
    if any(word in lowered for word in ("video unavailable", "private video", "has been removed", "not available in "
                                        "your country", "account associated with this video", "members-only")):
        return _Failure(f"YouTube says the video cannot be played ({detail}); replace or drop this pair in the "
                        f"manifest (or, for region/age limits, pass cookies of an account that can see it)",
                        transient=False)
    if any(isinstance(item, socket.gaierror) for item in chain) or any(
            words in lowered for words in ("failed to resolve", "name or service not known",
                                           "temporary failure in name resolution", "nodename nor servname")):
        host = urllib.parse.urlsplit(spec.url).hostname
        return _Failure(f"cannot resolve {host} (no network or no DNS?): {detail}; check the connection (or pass "
                        f"--proxy), then {RERUN_ADVICE}", transient=False)
    if "unsupported url" in lowered:
        return _Failure(f"yt-dlp cannot download from this URL ({detail})", transient=False)
    if any(isinstance(item, (TransportError, ContentTooShortError, socket.timeout, ConnectionError, TimeoutError,
                             http.client.IncompleteRead)) for item in chain):
        return _Failure(f"network error: {detail}", transient=True)
    if "[download] got error" in lowered:  # yt-dlp's downloader gave up after its retries; it keeps no cause
        return _Failure(f"network error while downloading: {detail.replace('[download] Got error: ', '')}",
                        transient=True)
    if "requested format is not available" in lowered:
        return _Failure(f"no suitable {spec.dynamic_range} format ({detail}); set hdr_format/sdr_format in the "
                        f"manifest{hint}", transient=False)
    return _Failure(f"yt-dlp failed: {detail}{hint}", transient=False)


def _short(text: str, limit: int = 300) -> str:
    text = " ".join(text.replace("ERROR: ", "").split())
    return text if len(text) <= limit else text[:limit - 3] + "..."
