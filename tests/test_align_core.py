"""Alignment building blocks on arrays, without video files (fast, exact truth): signatures, offset search, frame-rate
mapping, per-frame verification with re-synchronisation, shots and transitions, selection, geometry."""

from __future__ import annotations

import random
from fractions import Fraction

import numpy as np
import pytest

from fmstf_data.align.geometry import PictureAreaDetector, plan_geometry, resample_planes
from fmstf_data.align.offset import estimate_offset, plan_frame_mapping
from fmstf_data.align.shots import ShotTracker, TransitionDetector
from fmstf_data.align.signatures import (
    SignatureMatrix,
    luma_thumbnail,
    match_score,
    rank_signature,
    signature_from_thumbnail,
    thumbnail_size,
)
from fmstf_data.align.triplets import SPANS_CUT, TripletSelector, triplet_problem
from fmstf_data.align.verify import FrameMatcher, VerifyOptions
from fmstf_data.errors import AlignmentError


def moving_scene(frames: int, height: int = 90, width: int = 160, seed: int = 0, speed: int = 3) -> np.ndarray:
    """A smooth random texture panning ``speed`` px per frame, luma in [0, 1], shape [frames, height, width]."""
    rng = np.random.default_rng(seed)
    coarse = rng.random((height // 10 + 2, (width + speed * frames) // 10 + 2))
    big = np.kron(coarse, np.ones((10, 10)))
    return np.stack([big[:height, speed * t:speed * t + width] for t in range(frames)])


def signatures(luma: np.ndarray, curve=lambda x: x, bit_depth: int = 10) -> list:
    scale = (1 << bit_depth) - 1
    size = thumbnail_size(luma.shape[2], luma.shape[1])
    return [signature_from_thumbnail(luma_thumbnail(np.round(curve(f) * scale).astype(np.uint16), bit_depth, size))
            for f in luma]


def tone_curve(x):
    return x ** 0.45 / (0.2 + x ** 0.45)


@pytest.mark.parametrize("offset", [-7, -1, 0, 3, 12])
def test_offset_found_through_an_unknown_tone_curve(offset):
    scene = moving_scene(80)
    hdr = signatures(scene)
    sdr_luma = scene[offset:] if offset >= 0 else np.concatenate([moving_scene(-offset, seed=9), scene])
    sdr = signatures(sdr_luma[:60], curve=tone_curve, bit_depth=8)
    estimate = estimate_offset(SignatureMatrix.stack(hdr), SignatureMatrix.stack(sdr), max_offset_frames=15)
    assert estimate.offset_frames == offset
    assert estimate.score > 0.95 and estimate.detail_score > 0.5
    assert estimate.confidence > 0.1  # the detail score's peak is sharp: its neighbours score far lower
    curve = dict(zip(estimate.candidate_offsets, estimate.candidate_detail_scores))
    assert curve[offset] - max(curve[offset - 1], curve[offset + 1]) > 0.1


@pytest.mark.parametrize("offset", [-15, 15])
def test_offset_at_either_edge_of_the_window_is_found(offset):
    scene = moving_scene(80)
    sdr_luma = scene[offset:] if offset >= 0 else np.concatenate([moving_scene(-offset, seed=9), scene])
    estimate = estimate_offset(SignatureMatrix.stack(signatures(scene)),
                               SignatureMatrix.stack(signatures(sdr_luma[:60], curve=tone_curve, bit_depth=8)),
                               max_offset_frames=15)
    assert estimate.offset_frames == offset
    assert estimate.candidate_offsets[0] == -15 and estimate.candidate_offsets[-1] == 15


def test_offset_with_an_hdr_version_at_twice_the_rate():
    scene = moving_scene(120, speed=2)
    sdr = signatures(scene[5::2][:40], curve=tone_curve, bit_depth=8)  # SDR frame j shows HDR frame 2 j + 5
    estimate = estimate_offset(SignatureMatrix.stack(signatures(scene)), SignatureMatrix.stack(sdr),
                               max_offset_frames=20, hdr_step=2)
    assert (estimate.offset_frames, estimate.hdr_step) == (5, 2)


def test_unrelated_videos_score_low_and_flat_frames_have_no_signature():
    estimate = estimate_offset(SignatureMatrix.stack(signatures(moving_scene(40, seed=1))),
                               SignatureMatrix.stack(signatures(moving_scene(40, seed=2))), max_offset_frames=10)
    assert estimate.score < 0.4 and estimate.detail_score < 0.2
    flat = signature_from_thumbnail(np.full((54, 96), 16.0, np.float32))
    assert flat.flat and match_score(flat, flat) == 0.0
    assert not rank_signature(np.full((27, 48), 16.0)).any()


def test_too_short_overlap_is_an_alignment_error():
    empty = SignatureMatrix(np.zeros((0, 10), np.float32), np.zeros((0, 8), np.float32))
    with pytest.raises(AlignmentError, match="no frames"):
        estimate_offset(empty, SignatureMatrix.stack(signatures(moving_scene(5))), max_offset_frames=2)


def test_frame_rate_mapping_accepts_1000_1001_and_integer_ratios_and_refuses_others():
    assert plan_frame_mapping(24, Fraction(24000, 1001)).hdr_step == 1
    assert plan_frame_mapping(Fraction(24000, 1001), 24).hdr_step == 1
    assert plan_frame_mapping(50, 25).hdr_step == 2
    assert plan_frame_mapping(Fraction(60000, 1001), 30).hdr_step == 2
    with pytest.raises(AlignmentError, match="higher frame rate"):
        plan_frame_mapping(25, 50)
    with pytest.raises(AlignmentError, match="ratio of 1.2500"):
        plan_frame_mapping(30, 24)


def run_matcher(hdr: list, sdr: list, shift: int, **options) -> list:
    matcher = FrameMatcher(shift, VerifyOptions(**options), hdr=lambda t: hdr[t] if 0 <= t < len(hdr) else None,
                           sdr=lambda j: sdr[j] if 0 <= j < len(sdr) else None)
    return [matcher.decide(t) for t in range(len(hdr))]


def test_matcher_follows_a_dropped_and_a_duplicated_sdr_frame():
    scene = moving_scene(60, speed=4)
    hdr = signatures(scene)
    shows = [k for k in range(2, 60) if k != 20]  # SDR frame j shows HDR frame shows[j]: 20 dropped
    shows.insert(shows.index(40), 39)  # HDR frame 39 shown twice
    sdr = signatures(scene[shows], curve=tone_curve, bit_depth=8)
    matches = run_matcher(hdr, sdr, shift=2)
    for match in matches:
        if match.verified:  # every verified pair is a true pair
            assert shows[match.sdr_index] == match.tick
    assert not matches[20].verified  # the dropped frame has no partner
    shifts = [(m.tick, m.tick - m.sdr_index) for m in matches if m.resynced]
    assert shifts == [(21, 3), (40, 2)]
    assert sum(m.verified for m in matches) >= 52


def test_matcher_follows_a_duplicated_and_a_dropped_hdr_frame():
    scene = moving_scene(60, speed=4)
    hdr_shows = [k for k in range(60) if k != 45]  # HDR tick t shows scene frame hdr_shows[t]: 45 dropped
    hdr_shows.insert(hdr_shows.index(20), 19)  # 19 shown twice
    hdr = signatures(scene[hdr_shows])
    sdr = signatures(scene[2:], curve=tone_curve, bit_depth=8)  # SDR frame j shows scene frame j + 2
    matches = run_matcher(hdr, sdr, shift=2)
    for match in matches:
        if match.verified:
            assert hdr_shows[match.tick] == match.sdr_index + 2
    assert [m.tick for m in matches if m.resynced] == [20, 46]
    assert sum(m.verified for m in matches) >= 50


def test_matcher_verifies_identical_frames_and_never_an_off_by_one_partner():
    still = signatures(np.repeat(moving_scene(1), 12, axis=0))
    matches = run_matcher(still, still, shift=0)
    assert all(m.verified and m.sdr_index == m.tick for m in matches[1:-1])
    moving = signatures(moving_scene(12, speed=3))
    wrong = run_matcher(moving, moving, shift=0, window_frames=1)
    assert all(m.verified for m in wrong[1:-1])
    off_by_one = run_matcher(moving[1:], moving, shift=0, resync_margin=2.0)  # forced to keep a wrong partner
    assert not any(m.verified for m in off_by_one[1:-1])


def test_shot_tracker_counts_cuts_and_ignores_flat_frames():
    a, b = signatures(moving_scene(10, seed=1)), signatures(moving_scene(10, seed=2))
    flat = [signature_from_thumbnail(np.full(a[0].thumbnail.shape, 16.0, np.float32))] * 2
    tracker = ShotTracker()
    shots = [tracker.update(s) for s in a + flat + b]
    assert shots[:10] == [0] * 10 and shots[12:] == [1] * 10
    assert tracker.cut_frames == [12]


def wave_scene(frames: int, height: int = 90, width: int = 160) -> np.ndarray:
    """Drifting sinusoids, luma in [0, 1], [frames, height, width]."""
    yy, xx = np.mgrid[0:height, 0:width].astype(float)
    return np.stack([0.5 + 0.2 * np.sin(xx / 7 + 0.3 * t) * np.cos(yy / 5 - 0.2 * t) + 0.15 * np.sin((xx + yy) / 11)
                     for t in range(frames)])


def test_transition_detector_flags_a_fade_but_not_a_moving_shot():
    scene = wave_scene(40)
    fade = scene.copy()
    fade[24:] *= np.linspace(1.0, 0.05, 16)[:, None, None]  # a fade to black over the last 16 frames
    for luma, flagged in ((scene, set()), (fade, set(range(24, 40)))):
        detector = TransitionDetector()
        found = set()
        sigs = signatures(0.1 + 0.8 * luma)
        for index, signature in enumerate(sigs):
            detector.add(signature)
            ready = index - detector.lookahead
            if ready >= 0 and detector.flag(ready):
                found.add(ready)
        for rest in range(max(0, len(sigs) - detector.lookahead), len(sigs)):
            if detector.flag(rest):
                found.add(rest)
        assert flagged <= found | {39} and not found - set(range(22, 40))


def test_selector_keeps_the_first_usable_centre_of_each_stride_window():
    # windows of 3 frames from frame 0: [0,3) [3,6) [6,9) [9,12); 3 refused -> 4 is its window's first usable
    selector = TripletSelector(stride_frames=3)
    kept = [c for c in range(1, 12) if selector.offer(c, SPANS_CUT if c == 3 else None)]
    assert kept == [1, 4, 6, 9]
    assert selector.rejected_reasons == {SPANS_CUT: 1}


def test_selector_choice_does_not_depend_on_where_offering_starts():
    """What a chunk of the video keeps is what the pass from frame 0 keeps, for chunks cut at multiples of the
    stride (the history of earlier windows plays no part)."""
    rng = random.Random(7)
    problems = {c: (SPANS_CUT if rng.random() < 0.4 else None) for c in range(200)}
    whole = TripletSelector(stride_frames=8)
    expected = [c for c in range(200) if whole.offer(c, problems[c])]
    for boundary in (8, 16, 96, 192):
        first, second = TripletSelector(stride_frames=8), TripletSelector(stride_frames=8)
        kept = [c for c in range(boundary) if first.offer(c, problems[c])] + \
            [c for c in range(boundary, 200) if second.offer(c, problems[c])]
        assert kept == expected
    # one per window, the window's first usable centre, computed here without the selector
    windows = {}
    for centre in sorted(c for c, problem in problems.items() if problem is None):
        windows.setdefault(centre // 8, centre)
    assert expected == sorted(windows.values())
    fine = dict(shots=[0, 0, 0], frame_problems=[None] * 3, transitions=[None] * 3)
    assert triplet_problem([4, 5, 6], [1, 2, 3], **fine) is None
    assert triplet_problem([4, 5, 6], [1, 3, 4], **fine) == "dropped or duplicated frame"
    assert triplet_problem([4, 5, 6], [1, 2, None], **fine) == "no SDR partner"
    assert triplet_problem([4, 5, 6], [1, 2, 3], **{**fine, "shots": [0, 1, 1]}) == SPANS_CUT
    assert triplet_problem([4, 5, 6], [1, 2, 3], **{**fine, "shots": [0, 0, 1]}) == SPANS_CUT  # cut between t, t+1
    assert triplet_problem([4, 5, 6], [1, 2, 3], **{**fine, "transitions": [None, "fade", None]}) == \
        "in a fade or dissolve"
    assert triplet_problem([4, 5, 6], [1, 2, 3], start_frame=5, **fine) == "outside segment"


def test_picture_area_detector_finds_bars():
    detector = PictureAreaDetector()
    for seed in range(3):
        frame = np.full((144, 256), 16, np.uint8)
        frame[20:124, 8:248] = np.random.default_rng(seed).integers(30, 200, (104, 240))
        detector.update(frame, 8)
    assert detector.picture() == (8, 20, 240, 104)
    assert PictureAreaDetector().picture() is None


def test_geometry_refuses_unmappable_pictures():
    with pytest.raises(AlignmentError, match="aspect"):
        plan_geometry((1920, 1080), (1440, 1080))
    with pytest.raises(AlignmentError, match="quarter"):
        plan_geometry((320, 180), (320, 180), sdr_picture=(0, 60, 100, 60))
    with pytest.raises(AlignmentError, match="upscaled"):
        plan_geometry((1920, 1080), (320, 180))
    same = plan_geometry((320, 180), (320, 180), hdr_picture=(0, 20, 320, 140), sdr_picture=(0, 20, 320, 140))
    assert not same.needs_resampling and same.full_frame  # the same bars on both sides: no resampling


def smooth_field(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    return 110 + 60 * np.sin(x / 9.0) * np.cos(y / 6.0)


def test_letterboxed_sdr_lands_on_the_hdr_grid_exactly():
    """A smooth picture sampled on a letterboxed 256x192 SDR frame (picture 256x144 at y = 24), mapped onto a
    320x180 HDR frame, equals the same picture sampled on the HDR grid (to the filter's ~1 code), chroma included."""
    def sample(rect, width, height, centre_x, centre_y, pitch, fill):
        x0, y0, w, h = rect
        xs, ys = centre_x + pitch * np.arange(width), centre_y + pitch * np.arange(height)
        inside = ((xs >= x0) & (xs < x0 + w))[None, :] & ((ys >= y0) & (ys < y0 + h))[:, None]
        values = smooth_field((xs[None, :] - x0) / w * 160, (ys[:, None] - y0) / h * 90)
        return np.where(inside, values, fill)

    sdr_rect = (0, 24, 256, 144)
    geometry = plan_geometry((320, 180), (256, 192), sdr_picture=sdr_rect)
    assert geometry.sdr_rect == sdr_rect and geometry.hdr_rect == (0, 0, 320, 180)
    y = np.round(sample(sdr_rect, 256, 192, 0.5, 0.5, 1, 16)).astype(np.uint8)
    chroma = np.round(sample(sdr_rect, 128, 96, 0.5, 1.0, 2, 128)).astype(np.uint8)
    mapped_y, mapped_cb, _ = geometry.map_sdr_planes(y, chroma, chroma)
    assert mapped_y.shape == (180, 320) and mapped_cb.shape == (90, 160)
    expected_y = sample((0, 0, 320, 180), 320, 180, 0.5, 0.5, 1, 16)
    expected_c = sample((0, 0, 320, 180), 160, 90, 0.5, 1.0, 2, 128)
    assert np.abs(mapped_y - expected_y)[3:-3, 3:-3].max() <= 1.5
    assert np.abs(mapped_cb - expected_c)[2:-2, 2:-2].max() <= 1.5
    back = plan_geometry((256, 192), (320, 180), hdr_picture=sdr_rect)  # and the other way: black bars filled
    bars_y, bars_cb, _ = back.map_sdr_planes(mapped_y, mapped_cb, mapped_cb)
    assert (bars_y[:24] == 16).all() and (bars_y[168:] == 16).all() and (bars_cb[:12] == 128).all()


def test_resampling_keeps_constant_planes_exact():
    y = np.full((144, 256), 100, np.uint8)
    c = np.full((72, 128), 128, np.uint8)
    ry, rcb, rcr = resample_planes(y, c, c, 180, 320)
    assert ry.shape == (180, 320) and rcb.shape == (90, 160) and ry.dtype == np.uint8
    assert (ry == 100).all() and (rcb == 128).all()
    y10 = np.full((180, 320), 940, np.uint16)
    assert (resample_planes(y10, y10[::2, ::2], y10[::2, ::2], 90, 160)[0] == 940).all()


def test_area_average_is_torch_area_interpolation_bit_for_bit():
    """The data path's numpy box filter equals ``F.interpolate(mode="area")`` exactly (what the signatures used
    before torch left the data path): integer code planes and float planes, down- and upscaling, odd ratios."""
    import torch
    import torch.nn.functional as F

    from fmstf_data.align.signatures import area_average

    rng = np.random.default_rng(7)
    for trial in range(60):
        in_height, in_width = (int(v) for v in rng.integers(5, 300, 2))
        out_height, out_width = (int(v) for v in rng.integers(3, 110, 2))
        if trial % 2:
            plane = rng.integers(0, 1024, (in_height, in_width)).astype(np.uint16)
        else:
            plane = (rng.random((in_height, in_width)) * 255).astype(np.float32)
        expected = F.interpolate(torch.from_numpy(plane.astype(np.float32))[None, None],
                                 size=(out_height, out_width), mode="area")[0, 0].numpy()
        got = area_average(plane, out_height, out_width)
        assert got.dtype == np.float32 and got.shape == (out_height, out_width)
        assert np.array_equal(got, expected), (in_height, in_width, out_height, out_width)


def test_area_average_of_a_known_plane():
    """Independent values: a 4x6 plane to 2x3 averages 2x2 blocks; to 3x4 the windows overlap by one pixel."""
    from fmstf_data.align.signatures import area_average

    plane = np.arange(24, dtype=np.float32).reshape(4, 6)
    assert area_average(plane, 2, 3).tolist() == [[3.5, 5.5, 7.5], [15.5, 17.5, 19.5]]
    # rows [0,2), [1,3), [2,4); columns [0,2), [1,3), [3,5), [4,6)
    assert area_average(plane, 3, 4)[0].tolist() == [3.5, 4.5, 6.5, 7.5]
    assert area_average(plane, 3, 4)[:, 0].tolist() == [3.5, 9.5, 15.5]
