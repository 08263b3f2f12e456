"""Alignment of an SDR version to its HDR original, from content alone (numpy; no torch).

- :mod:`~fmstf_data.align.signatures`: tone-curve-proof frame signatures (rank thumbnails) and their scores.
- :mod:`~fmstf_data.align.offset`: frame-rate mapping and the search for the temporal offset.
- :mod:`~fmstf_data.align.verify`: per-frame verification against neighbours, following drops and duplicates.
- :mod:`~fmstf_data.align.geometry`: picture areas (black bars), registration of crops and zooms, and the
  resampling of SDR planes onto the HDR grid.
- :mod:`~fmstf_data.align.shots`: shot cuts, fades and dissolves.
- :mod:`~fmstf_data.align.triplets`: which frame triplets inside a shot may become samples.

The per-pair driver that runs all of these over two files is :class:`fmstf_data.extract.PairExtractor`.
"""

from fmstf_data.align.geometry import (
    Geometry,
    PictureAreaDetector,
    Registration,
    plan_geometry,
    register_rects,
    resample_planes,
)
from fmstf_data.align.offset import FrameMapping, OffsetEstimate, estimate_offset, plan_frame_mapping, video_fps
from fmstf_data.align.shots import DEFAULT_CUT_SCORE, ShotTracker, TransitionDetector
from fmstf_data.align.signatures import (
    FrameSignature,
    SignatureMatrix,
    area_average,
    detail_score,
    frame_signature,
    luma_thumbnail,
    match_score,
    thumbnail_size,
)
from fmstf_data.align.triplets import TripletSelector, triplet_problem
from fmstf_data.align.verify import FrameMatch, FrameMatcher, VerifyOptions

__all__ = [
    "DEFAULT_CUT_SCORE", "FrameMapping", "FrameMatch", "FrameMatcher", "FrameSignature", "Geometry",
    "OffsetEstimate", "PictureAreaDetector", "Registration", "ShotTracker", "SignatureMatrix", "TransitionDetector",
    "TripletSelector", "VerifyOptions", "area_average", "detail_score", "estimate_offset", "frame_signature",
    "luma_thumbnail", "match_score", "plan_frame_mapping", "plan_geometry", "register_rects", "resample_planes",
    "thumbnail_size", "triplet_problem", "video_fps",
]
