"""Offset search and shot tracking on signatures, without video files (fast, exact truth)."""

from __future__ import annotations

import numpy as np
import pytest

from fmstf_data.align import estimate_offset, luma_thumbnail, match_score, rank_signature
from fmstf_data.errors import AlignmentError
from fmstf_data.geometry import plan_geometry, resample_planes
from fmstf_data.select import TripletSelector
from fmstf_data.shots import ShotTracker


def moving_scene(frames: int, height: int = 90, width: int = 160, seed: int = 0) -> np.ndarray:
    """A smooth random texture panning 3 px per frame, luma in [0, 1], shape [frames, height, width]."""
    rng = np.random.default_rng(seed)
    coarse = rng.random((height // 10 + 2, (width + 3 * frames) // 10 + 2))
    big = np.kron(coarse, np.ones((10, 10)))
    return np.stack([big[:height, 3 * t:3 * t + width] for t in range(frames)])


def signatures(luma: np.ndarray, curve=lambda x: x, bit_depth: int = 10) -> np.ndarray:
    scale = (1 << bit_depth) - 1
    return np.stack([rank_signature(luma_thumbnail(np.round(curve(f) * scale).astype(np.uint16), bit_depth))
                     for f in luma])


@pytest.mark.parametrize("offset", [-7, -1, 0, 3, 12])
def test_offset_found_through_an_unknown_tone_curve(offset):
    scene = moving_scene(80)
    hdr = signatures(scene)
    sdr_luma = scene[offset:] if offset >= 0 else np.concatenate([moving_scene(-offset, seed=9), scene])
    sdr = signatures(sdr_luma[:60], curve=lambda x: x ** 0.45 / (0.2 + x ** 0.45), bit_depth=8)
    estimate = estimate_offset(hdr, sdr, max_offset_frames=15)
    assert estimate.offset_frames == offset
    assert estimate.score > 0.95 and estimate.confidence > 0.02


def test_unrelated_videos_score_low():
    estimate = estimate_offset(signatures(moving_scene(40, seed=1)), signatures(moving_scene(40, seed=2)),
                               max_offset_frames=10)
    assert estimate.score < 0.4


def test_flat_frames_have_no_signature():
    flat = rank_signature(np.full((27, 48), 16.0))
    assert not flat.any() and match_score(flat, flat) == 0.0


def test_too_short_overlap_is_an_alignment_error():
    with pytest.raises(AlignmentError):
        estimate_offset(np.zeros((0, 1296), np.float32), signatures(moving_scene(5)), max_offset_frames=2)


def test_shot_tracker_counts_cuts_and_ignores_flat_frames():
    a, b = signatures(moving_scene(10, seed=1)), signatures(moving_scene(10, seed=2))
    flat = np.zeros_like(a[:2])
    tracker = ShotTracker()
    shots = [tracker.update(s) for s in np.concatenate([a, flat, b])]
    assert shots[:10] == [0] * 10 and shots[12:] == [1] * 10
    assert tracker.cut_frames == [12]


def test_selector_keeps_stride_and_counts_refusals():
    selector = TripletSelector(stride_frames=3)
    kept = [c for c in range(1, 12) if selector.offer(c, "spans a shot cut" if c == 4 else None)]
    assert kept == [1, 5, 8, 11]
    assert selector.rejected_reasons == {"spans a shot cut": 1}


def test_geometry_refuses_other_aspect_and_resamples_planes():
    with pytest.raises(AlignmentError, match="aspect"):
        plan_geometry((1920, 1080), (1440, 1080))
    geometry = plan_geometry((320, 180), (256, 144))
    assert geometry.needs_resampling and geometry.scale == (1.25, 1.25)
    y = np.full((144, 256), 100, np.uint8)
    c = np.full((72, 128), 128, np.uint8)
    ry, rcb, rcr = resample_planes(y, c, c, 180, 320)
    assert ry.shape == (180, 320) and rcb.shape == (90, 160) and ry.dtype == np.uint8
    assert (ry == 100).all() and (rcb == 128).all()  # constant planes stay exact
