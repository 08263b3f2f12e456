"""Preview pictures for the build report: SDR | HDR (tone-mapped for an SDR screen), side by side.

The HDR half is converted from the stored planes with our own colour code (BT.2020 NCL, 10-bit narrow) and mapped
for display with the BT.2390 EETF (1000 cd/m² -> 100 cd/m²), so what a person sees is what the shards hold.
PNG encoding uses PyAV's PNG encoder (no extra dependency).
"""

from __future__ import annotations

import av
import numpy as np

from fmstf_data.color import hdr_to_sdr_rgb, planes_to_rgb
from fmstf_data.loader.convert import color_params
from fmstf_data.samples import Sample

#: previews are shrunk so the long side is at most this many pixels
PREVIEW_MAX_SIDE = 960


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


def preview_png(sample: Sample) -> bytes:
    """SDR | HDR-for-display of the centre frame, as PNG bytes."""
    sdr, hdr = sample_rgb(sample)
    step = max(1, -(-max(sdr.shape[1:]) // PREVIEW_MAX_SIDE))
    hdr_display = hdr_to_sdr_rgb(hdr[:, ::step, ::step], method="bt2390", source_max_nits=1000.0)
    sdr_display = sdr[:, ::step, ::step]
    gap = np.ones((3, sdr_display.shape[1], 4), dtype=np.float32)
    return encode_png(np.concatenate([sdr_display, gap, hdr_display.astype(np.float32)], axis=2))
