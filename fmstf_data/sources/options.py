"""Options of fetching: retries, cookies, rate limits, JavaScript runtimes (all passed to yt-dlp's Python API)."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from fmstf_data.errors import FetchError

# yt-dlp's runtimes for YouTube's JavaScript challenges, in its order of priority (its --js-runtimes option).
JS_RUNTIMES = ("deno", "node", "quickjs", "bun")
REMOTE_COMPONENTS = ("ejs:npm", "ejs:github")
_BROWSER_SPEC = re.compile(r"(?P<name>[^+:]+)(?:\+(?P<keyring>[^:]+))?(?::(?!:)(?P<profile>.+?))?(?:::(?P<container>.+))?")
_UNIT_BYTES = {"": 1, "k": 1024, "m": 1024 ** 2, "g": 1024 ** 3, "t": 1024 ** 4}
_RATE = re.compile(r"(?P<number>\d+(?:\.\d+)?)\s*(?P<unit>[kmgt]?)(?:i?b)?(?:/s)?", re.IGNORECASE)


@dataclass(frozen=True)
class FetchOptions:
    """How sources are fetched. Every field has a default; values may come from JSON (strings for paths, lists
    for tuples), as the build passes them through Ray.

    Attributes:
        cookies_file: a Netscape-format cookies.txt of a logged-in browser session (YouTube's "Sign in to confirm
            you're not a bot"); passed to yt-dlp as ``cookiefile``.
        cookies_from_browser: read cookies from a local browser instead: ``BROWSER[+KEYRING][:PROFILE][::CONTAINER]``
            (``firefox``, ``chrome:Profile 1``), as yt-dlp's ``--cookies-from-browser``.
        retries: yt-dlp's retries per download request and fragment (resuming where the transfer broke), with
            backoff.
        extractor_retries: yt-dlp's retries of extraction requests (the video page, the player API), with backoff.
        fetch_attempts: whole-fetch attempts for transient failures yt-dlp does not retry itself (a 5xx or timeout
            while extracting, a download that ran out of retries); each new attempt resumes the partial file.
        retry_sleep_seconds: backoff base: the n-th retry (0-based) sleeps ``retry_sleep_seconds * 2**n`` seconds,
            capped at ``max_retry_sleep_seconds``.
        max_retry_sleep_seconds: the backoff cap.
        rate_limit_bytes: download at most this many bytes per second (None: unlimited); yt-dlp's ``ratelimit``.
        sleep_requests_seconds: pause between the requests of an extraction (``sleep_interval_requests``); a few
            seconds keeps YouTube's bot checks away on long runs.
        sleep_before_download_seconds: pause before each download (``sleep_interval``).
        format_height: target height of YouTube/URL formats when the manifest sets none (the paper used 2160).
        socket_timeout_seconds: give up on an unresponsive connection after this long (then retry).
        js_runtimes: JavaScript runtimes yt-dlp may use for YouTube (``deno``, ``node``, ``quickjs``, ``bun``,
            optionally ``name:/path/to/binary``); empty: yt-dlp's default (deno).
        remote_components: let yt-dlp fetch its JavaScript solver when the yt-dlp-ejs package is missing
            (``ejs:github`` or ``ejs:npm``).
        proxy: proxy URL for all requests.
        extractor_args: yt-dlp extractor arguments, e.g. ``{"youtube": {"player_client": ["default"]}}``.
        verify_cached_sha256: re-hash cached files on every use instead of trusting the completion marker's hash.
    """

    cookies_file: str | Path | None = None
    cookies_from_browser: str | None = None
    retries: int = 10
    extractor_retries: int = 3
    fetch_attempts: int = 3
    retry_sleep_seconds: float = 1.0
    max_retry_sleep_seconds: float = 30.0
    rate_limit_bytes: int | None = None
    sleep_requests_seconds: float = 0.0
    sleep_before_download_seconds: float = 0.0
    format_height: int = 2160
    socket_timeout_seconds: float = 30.0
    js_runtimes: tuple[str, ...] = ()
    remote_components: tuple[str, ...] = ()
    proxy: str | None = None
    extractor_args: dict[str, dict[str, list[str]]] = field(default_factory=dict)
    verify_cached_sha256: bool = False

    def __post_init__(self) -> None:
        if self.cookies_file is not None:
            object.__setattr__(self, "cookies_file", Path(os.path.expanduser(str(self.cookies_file))))
        object.__setattr__(self, "js_runtimes", tuple(self.js_runtimes))
        object.__setattr__(self, "remote_components", tuple(self.remote_components))
        for name, minimum in (("retries", 0), ("extractor_retries", 0), ("fetch_attempts", 1), ("format_height", 1)):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
                raise FetchError(f"FetchOptions.{name} must be an integer >= {minimum}, got {value!r}")
        for name in ("retry_sleep_seconds", "max_retry_sleep_seconds", "sleep_requests_seconds",
                     "sleep_before_download_seconds", "socket_timeout_seconds"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
                raise FetchError(f"FetchOptions.{name} must be a number of seconds >= 0, got {value!r}")
        if self.socket_timeout_seconds == 0:
            raise FetchError("FetchOptions.socket_timeout_seconds must be > 0")
        if self.rate_limit_bytes is not None and (isinstance(self.rate_limit_bytes, bool)
                                                  or not isinstance(self.rate_limit_bytes, int)
                                                  or self.rate_limit_bytes < 1):
            raise FetchError(f"FetchOptions.rate_limit_bytes must be a positive integer (bytes/s) or None, got "
                             f"{self.rate_limit_bytes!r}; parse '4M' with parse_byte_rate")
        if self.cookies_file is not None and self.cookies_from_browser is not None:
            raise FetchError("give cookies_file or cookies_from_browser, not both")
        if self.cookies_from_browser is not None:
            browser_spec(self.cookies_from_browser)
        for runtime in self.js_runtimes:
            if runtime.split(":", 1)[0] not in JS_RUNTIMES:
                raise FetchError(f"unknown JavaScript runtime {runtime!r}; yt-dlp supports {', '.join(JS_RUNTIMES)} "
                                 f"(optionally NAME:PATH)")
        for component in self.remote_components:
            if component not in REMOTE_COMPONENTS:
                raise FetchError(f"unknown remote component {component!r}; valid: {', '.join(REMOTE_COMPONENTS)}")

    @classmethod
    def from_mapping(cls, values: dict[str, Any] | None) -> FetchOptions:
        """Build from a plain mapping (CLI, JSON), naming unknown keys."""
        values = dict(values or {})
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise FetchError(f"unknown fetch option(s) {unknown}; valid: {sorted(known)}")
        return cls(**values)

    def check_cookies(self) -> None:
        """Fail early, before any network use, when the cookies file is missing."""
        if self.cookies_file is not None and not Path(self.cookies_file).is_file():
            raise FetchError(f"cookies file not found: {self.cookies_file} (export a Netscape-format cookies.txt "
                             f"from a logged-in browser, see docs/youtube.md)")


def browser_spec(text: str) -> tuple[str, str | None, str | None, str | None]:
    """Parse ``BROWSER[+KEYRING][:PROFILE][::CONTAINER]`` into yt-dlp's ``cookiesfrombrowser`` tuple
    ``(browser, profile, keyring, container)``."""
    from yt_dlp.cookies import SUPPORTED_BROWSERS, SUPPORTED_KEYRINGS

    match = _BROWSER_SPEC.fullmatch(text.strip())
    if match is None:
        raise FetchError(f"cannot read cookies-from-browser {text!r}; expected BROWSER[+KEYRING][:PROFILE][::CONTAINER]")
    browser = match["name"].strip().lower()
    keyring = match["keyring"].strip().upper() if match["keyring"] else None
    if browser not in SUPPORTED_BROWSERS:
        raise FetchError(f"unsupported browser {browser!r} for cookies; yt-dlp supports "
                         f"{', '.join(sorted(SUPPORTED_BROWSERS))}")
    if keyring is not None and keyring not in SUPPORTED_KEYRINGS:
        raise FetchError(f"unsupported keyring {keyring!r}; yt-dlp supports {', '.join(sorted(SUPPORTED_KEYRINGS))}")
    profile = match["profile"].strip() if match["profile"] else None
    container = match["container"].strip() if match["container"] else None
    return browser, profile, keyring, container


def parse_byte_rate(text: str | int) -> int:
    """``"4M"``, ``"500K"``, ``"1.5MiB/s"`` or a number -> bytes per second (binary units, as yt-dlp's --limit-rate)."""
    if isinstance(text, int) and not isinstance(text, bool):
        if text < 1:
            raise FetchError(f"rate must be positive, got {text}")
        return text
    match = _RATE.fullmatch(str(text).strip())
    if match is None:
        raise FetchError(f"cannot read rate {text!r}; write e.g. 4M, 500K or 1000000 (bytes per second)")
    rate = int(float(match["number"]) * _UNIT_BYTES[match["unit"].lower()])
    if rate < 1:
        raise FetchError(f"rate must be positive, got {text!r}")
    return rate


def backoff_seconds(n: int, *, base_seconds: float, max_seconds: float) -> float:
    """Sleep before the n-th retry (0-based): ``base * 2**n``, capped at ``max_seconds``."""
    return min(max_seconds, base_seconds * 2.0 ** max(0, n))
