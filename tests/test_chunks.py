"""A pair cut into chunks: seeking is frame-exact, a chunk decodes its span (not the video from frame 0), and the
samples do not depend on the chunking, across cuts and a dropped SDR frame (the chunks re-find the pairing)."""

from __future__ import annotations

import hashlib
import json
from fractions import Fraction
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from fmstf_data.synth.cases import SdrSpec, render_master, write_hdr_file, write_sdr_file
from fmstf_data.synth.scene import ClipSpec
from fmstf_data.video.decode import iter_planes
from fmstf_data.video.probe import probe_video
from fmstf_data.video.seek import FrameTimeline, SeekingDecoder, timeline_problem
from pipelines.build import run_build
from pipelines.options import BuildOptions, PairOptions

FRAMES = 240  # 10 s at 24 fps
GOP = 24
SHOT_LENGTHS = (100, 70, 70)  # cuts at HDR frames 100 and 170
DROPPED = 130  # the SDR version skips this master frame
SDR_START = 5  # and starts at master frame 5


@pytest.fixture(scope="module")
def long_pair(tmp_path_factory) -> tuple[Path, Path]:
    """10 s of 160x90 HDR10 (keyframe every second) and its SDR version: trimmed, one frame dropped."""
    workdir = tmp_path_factory.mktemp("chunks")
    master = render_master(ClipSpec(width=160, height=90, fps=Fraction(24), frame_count=FRAMES, seed=11,
                                    shot_lengths=SHOT_LENGTHS))
    hdr = write_hdr_file(master, workdir / "long.hdr.mp4", gop_frames=GOP)
    shows = tuple(frame for frame in range(SDR_START, FRAMES) if frame != DROPPED)
    sdr = write_sdr_file(master, SdrSpec(shows=shows, gop_frames=GOP), workdir / "long.sdr")
    return hdr, sdr


def timeline_of(path: Path) -> FrameTimeline:
    pts: list[int] = []
    probe = probe_video(path, timestamps=pts)
    assert timeline_problem(pts, probe.frame_count_from_content) is None
    return FrameTimeline.from_pts(pts)


def test_seeking_gives_the_frames_of_a_decode_from_the_start(long_pair):
    for path in long_pair:
        full = list(iter_planes(path))
        timeline = timeline_of(path)
        assert timeline.end_index == len(full)
        for start in (0, 1, GOP - 1, GOP, 101, len(full) - 1):
            decoder = SeekingDecoder(path, timeline.window(max(0, start - 3), len(full)), start)
            frames = list(decoder)
            assert [frame.index for frame in frames] == list(range(start, len(full)))
            for got, expected in zip(frames, full[start:]):
                assert np.array_equal(got.y, expected.y) and np.array_equal(got.cb, expected.cb) \
                    and np.array_equal(got.cr, expected.cr)
                assert got.pts_seconds == pytest.approx(expected.pts_seconds)
            # from the keyframe at or before ``start``: never more than one GOP beyond what is yielded
            assert decoder.frames_decoded <= len(frames) + GOP


def test_the_last_fifth_decodes_a_fifth_and_a_gop_at_most(long_pair):
    hdr, _ = long_pair
    start = FRAMES * 4 // 5
    decoder = SeekingDecoder(hdr, timeline_of(hdr), start)
    assert sum(1 for _ in decoder) == FRAMES - start
    assert decoder.frames_decoded <= 0.35 * FRAMES


def build(tmp_path: Path, pair: tuple[Path, Path], name: str, chunk_seconds: float, *, segment: str = "",
          window_frames: int = 3) -> Path:
    manifest = tmp_path / f"{name}.yaml"
    manifest.write_text(f"version: 1\nname: {name}\npairs:\n  - id: long\n    split: train\n    hdr: {pair[0]}\n"
                        f"    sdr: {pair[1]}\n{segment}")
    out = tmp_path / name
    result = run_build(BuildOptions(manifest_path=str(manifest), out=str(out), cache_dir=str(tmp_path / "cache"),
                                    workers=2, previews=False, pair_options=PairOptions(
                                        stride_frames=4, chunk_seconds=chunk_seconds, window_frames=window_frames)))
    assert result.exit_code == 0, result.report["summary"]
    return out


def samples_of(out: Path) -> tuple[dict[str, str], list[dict], list[dict]]:
    """(member name -> sha256 of its bytes, index rows without shard names and offsets, per-frame rows)."""
    import tarfile

    members = {}
    for shard in sorted((out / "shards").rglob("*.tar")):
        with tarfile.open(shard) as tar:
            for member in tar.getmembers():
                members[member.name] = hashlib.sha256(tar.extractfile(member).read()).hexdigest()
    rows = [{k: v for k, v in row.items() if k not in ("shard", "offset_bytes")}
            for row in pq.read_table(out / "index" / "samples.parquet").to_pylist()]
    return members, rows, pq.read_table(out / "pairs" / "long.frames.parquet").to_pylist()


def test_samples_do_not_depend_on_the_chunking(long_pair, tmp_path):
    whole = build(tmp_path, long_pair, "whole", 60.0)
    chunked = build(tmp_path, long_pair, "chunked", 1.5)  # 36 frames a chunk: 7 chunks, lead-ins re-anchored
    record = json.loads((chunked / "pairs" / "long.json").read_text())
    assert len(record["chunks"]) == 7 and all(chunk["status"] == "ok" for chunk in record["chunks"])
    assert [chunk["span"] for chunk in record["chunks"]][:2] == [[0, 36], [36, 72]]
    assert samples_of(chunked) == samples_of(whole)
    # the truth, computed from how the files were made: the drop is followed, triplets stay inside shots
    extraction = record["extraction"]
    assert extraction["cut_hdr_frames"] == [100, 170]
    assert extraction["offset_changes"] == [[DROPPED + 1, SDR_START + 1]]  # HDR 130 has no partner; 131 pairs anew
    _, rows, frames = samples_of(chunked)
    assert len(rows) >= 40
    for row in rows:
        assert DROPPED not in row["hdr_frames"]
        expected = [frame - SDR_START if frame < DROPPED else frame - SDR_START - 1 for frame in row["hdr_frames"]]
        assert row["sdr_frames"] == expected
        assert row["shot"] == sum(row["centre_frame"] >= cut for cut in (100, 170))
        assert not any(row["hdr_frames"][0] < cut <= row["hdr_frames"][2] for cut in (100, 170))
    assert [row["hdr_frame"] for row in frames] == list(range(FRAMES))
    # each chunk decoded about its span: never the video from the start
    for chunk in record["chunks"][1:]:
        assert chunk["hdr_frames_decoded"] <= 36 + 24 + GOP + 16


def test_windows_of_seven_frames_hold_the_rules_for_the_whole_window_whatever_the_chunking(long_pair, tmp_path):
    """``window_frames: 7``: every sample holds 7 consecutive HDR frames with consecutive SDR partners, none spans a
    cut or the dropped frame (truth from how the files were made), the loader yields [B, 7, 3, h, w], and 7 chunks
    give the same samples as one."""
    from fmstf_data.loader import make_loader

    whole = build(tmp_path, long_pair, "whole7", 60.0, window_frames=7)
    chunked = build(tmp_path, long_pair, "chunked7", 1.5, window_frames=7)
    assert samples_of(chunked) == samples_of(whole)
    _, rows, frame_rows = samples_of(whole)
    verified = {row["hdr_frame"] for row in frame_rows if row["status"] == "verified"}
    assert len(rows) >= 25
    for row in rows:
        centre, frames = row["centre_frame"], row["hdr_frames"]
        assert frames == list(range(centre - 3, centre + 4))
        assert not any(frames[0] < cut <= frames[-1] for cut in (100, 170))  # inside one shot
        assert DROPPED not in frames and not (frames[0] < DROPPED + 1 <= frames[-1])  # no SDR jump inside
        assert row["sdr_frames"] == [frame - SDR_START - (frame > DROPPED) for frame in frames]
    def usable(centre: int) -> bool:
        """The window rule, from the truth of how the files were made (inside the video, one shot, every frame with
        its SDR partner) and the per-frame verification's verdicts (which refuses ambiguous slow-motion frames)."""
        frames = range(centre - 3, centre + 4)
        return frames[0] >= SDR_START and frames[-1] < FRAMES and DROPPED not in frames \
            and not any(frames[0] < cut <= frames[-1] for cut in (100, 170)) and set(frames) <= verified

    expected = [next(c for c in range(k, k + 4) if usable(c)) for k in range(0, FRAMES, 4)
                if any(usable(c) for c in range(k, k + 4))]
    assert [row["centre_frame"] for row in rows] == expected  # the first usable centre of each stride window
    batch = next(iter(make_loader(str(whole), "train", batch_size=2, crop_size=32, num_workers=0, seed=1)))
    assert batch["sdr"].shape == (2, 7, 3, 32, 32) and batch["hdr_frames"].shape == (2, 7)


def test_segments_decode_their_span_and_share_one_alignment(long_pair, tmp_path):
    hdr, sdr = long_pair
    manifest = tmp_path / "segments.yaml"
    manifest.write_text("version: 1\nname: segments\npairs:\n" + "".join(
        f"  - id: {name}\n    split: {split}\n    hdr: {hdr}\n    sdr: {sdr}\n    {bounds}\n"
        for name, split, bounds in (("tail", "train", "start_seconds: 8.0"), ("head", "train", "end_seconds: 3.0"))))
    out = tmp_path / "segments"
    result = run_build(BuildOptions(manifest_path=str(manifest), out=str(out), cache_dir=str(tmp_path / "cache"),
                                    workers=2, previews=False, pair_options=PairOptions(stride_frames=4)))
    assert result.exit_code == 0, result.report["summary"]
    tail, head = (json.loads((out / "pairs" / f"{name}.json").read_text()) for name in ("tail", "head"))
    # one alignment task for the source pair: the other segment reused its offset, probes and hashes
    assert [record["alignment_pass"].get("shared_from") for record in (tail, head)] == [None, "tail"]
    assert head["alignment"]["offset_frames"] == tail["alignment"]["offset_frames"] == SDR_START
    rows = pq.read_table(out / "index" / "samples.parquet").to_pylist()
    assert {row["pair_id"] for row in rows} == {"tail", "head"}
    assert all(row["centre_frame"] >= 192 for row in rows if row["pair_id"] == "tail")
    assert all(row["hdr_frames"][2] < 72 for row in rows if row["pair_id"] == "head")
    # the last fifth decodes its span and the GOP before its lead-in, not the video from frame 0
    decoded = sum(chunk["hdr_frames_decoded"] for chunk in tail["chunks"])
    assert decoded <= 0.35 * FRAMES, tail["chunks"]


def test_stride_seconds_means_the_same_at_any_frame_rate_and_the_specific_layer_wins():
    from pipelines.options import OptionsError

    options = PairOptions().with_overrides({"stride_seconds": 0.5})
    assert [options.stride_frames_at(fps) for fps in (24, 30, 60, 23.976)] == [12, 15, 30, 12]
    assert PairOptions().stride_frames_at(60) == 8  # without stride_seconds: frames
    pair = options.with_overrides({"stride_frames": 5})  # a pair's frames override the manifest's seconds
    assert pair.stride_seconds is None and pair.stride_frames_at(60) == 5
    with pytest.raises(OptionsError, match="not both"):
        PairOptions().with_overrides({"stride_frames": 4, "stride_seconds": 1.0})
    with pytest.raises(OptionsError, match="stride_seconds"):
        PairOptions(stride_seconds=0.0)


def test_a_build_with_stride_seconds_keeps_one_centre_per_window(long_pair, tmp_path):
    manifest = tmp_path / "seconds.yaml"
    manifest.write_text(f"version: 1\nname: seconds\ndefaults: {{stride_seconds: 0.5}}\npairs:\n  - id: long\n"
                        f"    split: train\n    hdr: {long_pair[0]}\n    sdr: {long_pair[1]}\n    end_seconds: 4.0\n")
    out = tmp_path / "seconds"
    result = run_build(BuildOptions(manifest_path=str(manifest), out=str(out), cache_dir=str(tmp_path / "cache"),
                                    workers=1, previews=False))
    assert result.exit_code == 0, result.report["summary"]
    centres = [row["centre_frame"] for row in pq.read_table(out / "index" / "samples.parquet").to_pylist()]
    assert len(centres) >= 6 and len({centre // 12 for centre in centres}) == len(centres)  # 0.5 s at 24 fps


def test_the_in_task_pipeline_keeps_order_bounds_its_queue_and_raises_either_sides_error():
    from pipelines.chunk_task import run_pipelined

    produced, consumed = [], []

    def items():
        for number in range(50):
            produced.append(number)
            # never more than the queue's depth, the one being consumed and this one ahead of the consumer
            assert number - len(consumed) <= 2 + 2
            yield number

    waits = run_pipelined(items(), consumed.append, depth=2)
    assert consumed == list(range(50)) and set(waits) == {"producer_wait_seconds", "consumer_wait_seconds"}

    def failing_consumer(number):
        if number == 7:
            raise ValueError("disk full at 7")
        consumed.append(number)

    consumed.clear()
    with pytest.raises(ValueError, match="disk full at 7"):
        run_pipelined(iter(range(100)), failing_consumer, depth=2)
    assert consumed == list(range(7))  # nothing after the failure is written

    def failing_producer():
        yield 1
        raise RuntimeError("decoder broke")

    consumed.clear()
    with pytest.raises(RuntimeError, match="decoder broke"):
        run_pipelined(failing_producer(), consumed.append, depth=2)
    assert consumed == [1]  # what came before the failure was still written, in order
