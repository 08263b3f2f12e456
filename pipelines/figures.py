"""Figures of the build report: previews and alignment plots.

:func:`preview_png`: SDR | HDR (tone-mapped for an SDR screen) side by side, of one sample, captioned.
:func:`alignment_figure_png`: a pair's mean scores against the candidate offset and its per-frame scores over time
(matplotlib, the ``plot`` extra).


The HDR half is converted from the stored planes with our own colour code (BT.2020 NCL, 10-bit narrow) and mapped
for display with the BT.2390 EETF (1000 cd/m² -> 100 cd/m²), so what a person sees is what the shards hold.
PNG encoding uses PyAV's PNG encoder (no extra dependency).
"""

from __future__ import annotations

import io
import math
from typing import Any

import av
import numpy as np
import pyarrow as pa

from fmstf_data.color import hdr_to_sdr_rgb, planes_to_rgb
from fmstf_data.color.params import color_params
from fmstf_data.errors import FmstfError
from fmstf_data.extract.options import STATUS_NAMES
from fmstf_data.store.samples import Sample

#: previews are shrunk so the long side is at most this many pixels
PREVIEW_MAX_SIDE = 960
#: one colour per score across both panels of the alignment figure
SERIES_COLOURS = {"match": "tab:blue", "detail": "tab:orange"}


def sample_rgb(sample: Sample, frame: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """(SDR BT.709 R'G'B', HDR PQ BT.2020 R'G'B'), each float32 [3, H, W] in [0, 1], of one frame of a sample."""
    sdr, hdr = (
        planes_to_rgb(*(plane[frame] for plane in getattr(sample, side)),
                      **color_params(sample.metadata.get(side), side).to_dict())
        for side in ("sdr", "hdr"))
    return sdr, hdr


def encode_png(rgb: np.ndarray) -> bytes:
    """PNG bytes of an 8-bit-quantised R'G'B' picture float [3, H, W] in [0, 1]."""
    picture = np.ascontiguousarray((np.clip(rgb, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8).transpose(1, 2, 0))
    frame = av.VideoFrame.from_ndarray(picture, format="rgb24")
    codec = av.CodecContext.create("png", "w")
    codec.width, codec.height, codec.pix_fmt = frame.width, frame.height, "rgb24"
    return b"".join(bytes(packet) for packet in [*codec.encode(frame), *codec.encode(None)])


def preview_captions(sample: Sample) -> tuple[str, str, str]:
    """(title, left caption, right caption) of a sample's preview."""
    meta = sample.metadata
    title = (f"{sample.key}: HDR frames {meta.get('hdr_frames')}, SDR frames {meta.get('sdr_frames')} "
             f"(centre frame shown)")
    return (title, "SDR, as stored (BT.709 R'G'B')",
            "HDR, as stored (PQ, BT.2020), shown through the BT.2390 EETF 1000 -> 100 cd/m2")


def preview_png(sample: Sample) -> bytes:
    """SDR | HDR-for-display of the centre frame, as PNG bytes, captioned (which half is which, how the HDR half is
    mapped for an SDR screen, the key and frames) when matplotlib is installed, else the bare pictures."""
    sdr, hdr = sample_rgb(sample)
    step = max(1, -(-max(sdr.shape[1:]) // PREVIEW_MAX_SIDE))
    hdr_display = hdr_to_sdr_rgb(hdr[:, ::step, ::step], method="bt2390", source_max_nits=1000.0)
    sdr_display = sdr[:, ::step, ::step]
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError:
        gap = np.ones((3, sdr_display.shape[1], 4), dtype=np.float32)
        return encode_png(np.concatenate([sdr_display, gap, hdr_display.astype(np.float32)], axis=2))
    title, left, right = preview_captions(sample)
    height, width = sdr_display.shape[1:]
    figure = Figure(figsize=(2 * width / 100 + 0.4, height / 100 + 0.9), dpi=100)
    FigureCanvasAgg(figure)
    for axes, picture, caption in zip(figure.subplots(1, 2), (sdr_display, hdr_display), (left, right)):
        axes.imshow(np.clip(picture.transpose(1, 2, 0), 0.0, 1.0), interpolation="nearest")
        axes.set_title(caption, fontsize=8)
        axes.axis("off")
    figure.suptitle(title, fontsize=9)
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    return buffer.getvalue()


def score_series(frames: pa.Table) -> tuple[list[int], list[float], list[float]]:
    """(HDR frames, match scores, detail scores) to plot: a frame without an SDR partner has no score, so it is NaN
    (a gap in the line), never 0."""
    columns = frames.to_pydict()
    paired = [partner is not None for partner in columns["sdr_frame"]]
    return (columns["hdr_frame"],
            [score if has else math.nan for score, has in zip(columns["match_score"], paired)],
            [score if has else math.nan for score, has in zip(columns["detail_score"], paired)])


def alignment_figure_png(alignment: dict[str, Any], extraction: dict[str, Any] | None,
                         frames: pa.Table | None = None, *, title: str = "") -> bytes:
    """PNG of two panels: mean match and detail scores against the candidate offset (the chosen one marked), and
    the per-frame scores over HDR frames (``frames``: :data:`fmstf_data.extract.FRAMES_SCHEMA`; unverified frames,
    cuts, fades and re-synchronisations marked).

    Raises:
        FmstfError: matplotlib is not installed.
    """
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError as error:
        raise FmstfError("plots need matplotlib: pip install 'fmstf-data[plot]'") from error
    figure = Figure(figsize=(10, 6.5), dpi=100)
    FigureCanvasAgg(figure)
    top, bottom = figure.subplots(2, 1)
    offsets = alignment.get("candidate_offsets") or []
    for key, label, style in (("candidate_detail_scores", "mean detail score", "-"),
                              ("candidate_scores", "mean match score", "--")):
        values = [math.nan if v is None else v for v in alignment.get(key) or []]
        if values:
            top.plot(offsets, values, style, label=label, color=SERIES_COLOURS[label.split()[1]])
    if "offset_frames" in alignment:
        top.axvline(alignment["offset_frames"], color="red", linewidth=0.8,
                    label=f"offset {alignment['offset_frames']:+d}")
    top.set_xlabel("offset (HDR frame shown by SDR frame 0)")
    top.set_ylabel("score")
    top.set_title(f"{title} offset search" + (" (refused)" if alignment.get("refusal") else ""))
    top.legend(loc="lower right", fontsize=8)
    if extraction and frames is not None and frames.num_rows:
        statuses = frames.column("status").to_pylist()
        hdr_frames, scores, details = score_series(frames)
        bottom.plot(hdr_frames, scores, label="match score", linewidth=1, color=SERIES_COLOURS["match"])
        bottom.plot(hdr_frames, details, label="detail score", linewidth=1, color=SERIES_COLOURS["detail"])
        bad = [(f, s) for f, s, status in zip(hdr_frames, scores, statuses)
               if not status.startswith("verified") and math.isfinite(s)]
        if bad:
            bottom.plot([f for f, _ in bad], [s for _, s in bad], "rx", markersize=4, label="not verified")
        in_transition = [f for f, status in zip(hdr_frames, statuses) if status == STATUS_NAMES["t"]]
        for position, frame in enumerate(in_transition):
            bottom.axvspan(frame - 0.5, frame + 0.5, color="orange", alpha=0.25, linewidth=0,
                           label="fade / dissolve" if position == 0 else None)
        for position, frame in enumerate(extraction["cut_hdr_frames"]):
            bottom.axvline(frame - 0.5, color="black", linewidth=0.8, label="cut" if position == 0 else None)
        for position, (frame, _) in enumerate(extraction["offset_changes"]):
            bottom.axvline(frame, color="purple", linestyle=":", label="offset change" if position == 0 else None)
        bottom.legend(loc="lower right", fontsize=8)
    bottom.set_title("per-frame scores at the chosen pairing (gaps: no SDR partner)")
    bottom.set_xlabel("HDR frame")
    bottom.set_ylabel("score of the frame pair")
    bottom.set_ylim(-0.1, 1.05)
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    return buffer.getvalue()
