"""Video files: exact decoding of code planes, probing, and what a file's colour tags mean.

- :mod:`~fmstf_data.video.decode`: PyAV decoding to the decoder's own uint8/uint16 Y, Cb, Cr planes
  (:class:`DecodedFrame`, :func:`iter_planes`); no swscale, no float conversion (design contract 1).
- :mod:`~fmstf_data.video.probe`: :func:`probe_video`, declared tags vs what the first frame says, HDR10 side data.
- :mod:`~fmstf_data.video.record`: :class:`VideoProbe` and its verdict (HDR10 / HLG / SDR / unknown, with reasons).
- :mod:`~fmstf_data.video.tags`: FFmpeg's colour code points (ITU-T H.273) and their names.
"""

from fmstf_data.video.decode import SUPPORTED_PIXEL_FORMATS, DecodedFrame, frame_planes, iter_planes, plane_array
from fmstf_data.video.probe import count_frames, probe_video
from fmstf_data.video.record import ContentLightLevel, MasteringDisplay, VideoProbe

__all__ = [
    "SUPPORTED_PIXEL_FORMATS", "ContentLightLevel", "DecodedFrame", "MasteringDisplay", "VideoProbe",
    "count_frames", "frame_planes", "iter_planes", "plane_array", "probe_video",
]
