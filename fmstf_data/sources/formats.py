"""Format selection: the HDR10 and the SDR video-only stream of one video, at one height, by format fields.

One YouTube video ID serves both versions: YouTube converts an HDR upload to SDR and offers both as separate
video-only DASH streams. We select them with yt-dlp's own selector language on its format fields - never with
hard-coded format IDs::

    bv[dynamic_range=HDR10][height=H]      the HDR version
    bv[dynamic_range=SDR][height=H]        the SDR version

``H`` is the tallest height <= the requested one (2160 by default) that the video offers in *both* dynamic ranges,
so the two versions share one geometry; it depends only on the video's format list, so the HDR and the SDR fetch of
a pair agree on it without talking to each other. A ``vcodec`` request adds ``[vcodec^=...]``; a raw ``selector``
is used as given. Among the remaining candidates yt-dlp's own ranking decides (at equal height: fps, then codec).

yt-dlp derives ``dynamic_range`` from the codec string: every VP9 profile 2 stream (``vp09.02...``) and every 10-bit
AV1 stream is labelled "HDR10", HLG included. When the codec string is in its long form it carries the transfer
characteristics (16 = PQ, 18 = HLG), and streams that declare something other than PQ are dropped before
selection. Short forms say nothing, so the build still probes every downloaded file and refuses what is not PQ.
"""

from __future__ import annotations

import logging
from typing import Any, Iterable, Iterator

from fmstf_data.errors import FetchError, InvalidValueError
from fmstf_data.manifest.schema import FormatSpec

logger = logging.getLogger(__name__)

PQ_TRANSFER = 16  # ITU-T H.273 / ISO/IEC 23091-2 TransferCharacteristics: SMPTE ST 2084
HLG_TRANSFER = 18
DYNAMIC_RANGES = ("HDR10", "SDR")


def codec_transfer(vcodec: str | None) -> int | None:
    """Transfer characteristics declared by a long-form codec string, or None when it declares none.

    ``vp09.PP.LL.DD.CC.cp.tc.mc.FF`` (VP9 codec string, WebM/ISO-BMFF binding) and
    ``av01.P.LLT.DD.M.CCC.cp.tc.mc.F`` (AV1 codec string): 16 = PQ, 18 = HLG, 1 = BT.709.
    """
    if not vcodec:
        return None
    parts = vcodec.split(".")
    index = {"vp09": 6, "av01": 7}.get(parts[0])
    if index is None or len(parts) <= index:
        return None
    try:
        return int(parts[index])
    except ValueError:
        return None


def is_video_only(fmt: dict[str, Any]) -> bool:
    """yt-dlp's ``bv`` condition: has video, has no audio."""
    return fmt.get("vcodec") != "none" and fmt.get("acodec") == "none"


def describe_offer(formats: Iterable[dict[str, Any]]) -> str:
    """``HDR10 video at 2160, 1440; SDR video at 2160, 1080`` (video-only streams), for messages."""
    heights: dict[str, set[int]] = {}
    for fmt in formats:
        if is_video_only(fmt) and fmt.get("height"):
            heights.setdefault(str(fmt.get("dynamic_range") or "unknown"), set()).add(int(fmt["height"]))
    if not heights:
        return "no video-only streams"
    return "; ".join(f"{rng} video at {', '.join(str(h) for h in sorted(hs, reverse=True))}"
                     for rng, hs in sorted(heights.items()))


def field_selector(dynamic_range: str, height: int, vcodec: str | None = None) -> str:
    """The yt-dlp selector of one video-only stream, e.g. ``bv[dynamic_range=HDR10][height=2160][vcodec^=vp09]``."""
    return f"bv[dynamic_range={dynamic_range}][height={height}]" + (f"[vcodec^={vcodec}]" if vcodec else "")


class RoleFormatSelector:
    """A yt-dlp ``format`` callable choosing the stream of one dynamic range (see the module docstring).

    Give it to ``YoutubeDL({"format": selector, ...})`` and then call :meth:`attach` with that YoutubeDL, whose
    ``build_format_selector`` parses the selector strings. After a failed selection :attr:`problem` says why;
    after a successful one :attr:`height` and :attr:`selector_used` say what was chosen.
    """

    def __init__(self, *, dynamic_range: str, request: FormatSpec | None, default_height: int):
        if dynamic_range not in DYNAMIC_RANGES:
            raise InvalidValueError(f"dynamic_range must be one of {DYNAMIC_RANGES}, got {dynamic_range!r}")
        self.dynamic_range = dynamic_range
        self.request = request or FormatSpec()
        self.default_height = default_height
        self.ydl: Any = None
        self.problem: str | None = None
        self.height: int | None = None
        self.selector_used: str | None = None

    def attach(self, ydl: Any) -> RoleFormatSelector:
        self.ydl = ydl
        return self

    def _select(self, selector: str, ctx: dict[str, Any], formats: list[dict[str, Any]]) -> list[dict[str, Any]]:
        try:
            chooser = self.ydl.build_format_selector(selector)
        except SyntaxError as error:
            raise FetchError(f"invalid yt-dlp format selector {selector!r}: {error}") from None
        return list(chooser({**ctx, "formats": formats}))

    def __call__(self, ctx: dict[str, Any]) -> Iterator[dict[str, Any]]:
        if self.ydl is None:
            raise FetchError("RoleFormatSelector.attach(ydl) was not called")
        self.problem, self.height, self.selector_used = None, None, None
        formats = list(ctx["formats"])
        if self.request.selector is not None:
            self.selector_used = self.request.selector
            chosen = self._select(self.request.selector, ctx, formats)
            if not chosen:
                self.problem = f"the selector {self.request.selector!r} matched nothing; offered: " \
                               f"{describe_offer(formats)}"
            return iter(chosen)
        labelled = [f for f in formats if is_video_only(f) and f.get("vcodec") and f.get("height")]
        if not labelled:  # a direct link to one file: nothing to choose by
            self.selector_used = "bv*/b"
            chosen = self._select(self.selector_used, ctx, formats)
            if not chosen:
                self.problem = "no downloadable video format"
            return iter(chosen)
        return iter(self._by_fields(ctx, formats))

    def _by_fields(self, ctx: dict[str, Any], formats: list[dict[str, Any]]) -> list[dict[str, Any]]:
        usable = []
        for fmt in formats:
            transfer = codec_transfer(fmt.get("vcodec"))
            if fmt.get("dynamic_range") == "HDR10" and transfer is not None and transfer != PQ_TRANSFER:
                logger.info("format %s (%s) is labelled HDR10 but its codec string declares transfer %d (%s): "
                            "skipped", fmt.get("format_id"), fmt.get("vcodec"), transfer,
                            "HLG" if transfer == HLG_TRANSFER else "not PQ")
                continue
            usable.append(fmt)
        wanted = self.request.height if self.request.height is not None else self.default_height
        heights = sorted({int(f["height"]) for f in usable if is_video_only(f) and f.get("height")}, reverse=True)
        offered = {rng: [h for h in heights if self._select(field_selector(rng, h), ctx, usable)]
                   for rng in DYNAMIC_RANGES}
        common = [h for h in offered["HDR10"] if h in offered["SDR"]]
        candidates = common if common else offered[self.dynamic_range]
        fitting = [h for h in candidates if h <= wanted]
        skipped = len(usable) != len(formats)
        if not fitting:
            if not offered[self.dynamic_range]:
                self.problem = (f"the video offers no {self.dynamic_range} video-only stream"
                                + (" whose codec string declares PQ" if skipped and self.dynamic_range == "HDR10"
                                   else "") + f"; offered: {describe_offer(formats)}")
            else:
                self.problem = (f"no {'common HDR10/SDR' if common else self.dynamic_range} height <= {wanted}; "
                                f"offered: {describe_offer(formats)}; ask for a larger format height")
            return []
        self.height = fitting[0]
        self.selector_used = field_selector(self.dynamic_range, self.height, self.request.vcodec)
        chosen = self._select(self.selector_used, ctx, usable)
        if not chosen:
            codecs = sorted({str(f.get("vcodec")) for f in usable if is_video_only(f)
                             and f.get("dynamic_range") == self.dynamic_range and f.get("height") == self.height})
            self.problem = (f"no {self.dynamic_range} stream at height {self.height} with vcodec "
                            f"{self.request.vcodec}*; offered codecs there: {', '.join(codecs)}")
        return chosen


def select_format(info: dict[str, Any], *, dynamic_range: str, request: FormatSpec | None = None,
                  default_height: int = 2160) -> dict[str, Any]:
    """Run the selection on an info dict (as an extractor returns it, with ``formats``) without downloading.

    Returns the chosen format's fields merged into the info dict, as yt-dlp does (``format_id``, ``vcodec``,
    ``height``, ...). Raises :class:`FetchError` with the reason when nothing fits.
    """
    import yt_dlp

    selector = RoleFormatSelector(dynamic_range=dynamic_range, request=request, default_height=default_height)
    with yt_dlp.YoutubeDL({"format": selector, "quiet": True, "no_warnings": True, "simulate": True,
                           "logger": _SilentLogger()}) as ydl:
        selector.attach(ydl)
        try:
            return ydl.process_ie_result(dict(info), download=False)
        except yt_dlp.utils.YoutubeDLError as error:  # ExtractorError here; DownloadError through extract_info
            raise FetchError(selector.problem or str(error)) from None


class _SilentLogger:
    def debug(self, message: str) -> None:
        logger.debug("yt-dlp: %s", message)

    info = debug

    def warning(self, message: str) -> None:
        logger.debug("yt-dlp warning: %s", message)

    def error(self, message: str) -> None:
        logger.debug("yt-dlp error: %s", message)
