"""The report's figures: a captioned preview of a sample, and the alignment plot with gaps where there is no score."""

from __future__ import annotations

import io

import av
import numpy as np
import pyarrow as pa

from fmstf_data.extract.options import FRAMES_SCHEMA
from pipelines.figures import alignment_figure_png, preview_captions, preview_png, score_series
from tests.test_samples_shards import make_sample


def png_size(data: bytes) -> tuple[int, int]:
    with av.open(io.BytesIO(data)) as container:
        frame = next(container.decode(video=0))
        return frame.width, frame.height


def test_the_preview_says_which_half_is_which_and_what_it_shows():
    sample = make_sample("city", 17, height=90, width=160)
    sample.metadata.update(hdr_frames=[16, 17, 18], sdr_frames=[11, 12, 13])
    title, left, right = preview_captions(sample)
    assert "city_000017" in title and "[16, 17, 18]" in title and "[11, 12, 13]" in title
    assert left.startswith("SDR") and right.startswith("HDR") and "BT.2390" in right and "PQ" in right
    width, height = png_size(preview_png(sample))
    assert width >= 2 * 160 and height > 90  # both halves, and room for the captions


def test_the_alignment_plot_draws_frames_without_a_partner_as_gaps():
    frames = pa.Table.from_pydict({
        "hdr_frame": list(range(10)), "sdr_frame": [None, None, 0, 1, 2, 3, 4, 5, 6, 7],
        "offset_frames": [None, None] + [2] * 8, "match_score": [0.0, 0.0] + [0.95] * 8,
        "detail_score": [0.0, 0.0] + [0.6] * 8,
        "status": ["no SDR frame"] * 2 + ["verified"] * 8, "shot_start": [False] * 10,
        "kept_centre": [False] * 10}, schema=FRAMES_SCHEMA)
    alignment = {"candidate_offsets": [0, 1, 2, 3], "candidate_scores": [0.5, 0.6, 0.95, 0.6],
                 "candidate_detail_scores": [0.1, 0.2, 0.6, None], "offset_frames": 2}
    extraction = {"cut_hdr_frames": [], "offset_changes": []}
    assert png_size(alignment_figure_png(alignment, extraction, frames, title="city")) == (1000, 650)
    hdr_frames, scores, details = score_series(frames)
    assert hdr_frames == list(range(10))
    assert np.isnan(scores[:2]).all() and np.isnan(details[:2]).all()  # gaps, not zeros
    assert np.allclose(scores[2:], 0.95) and np.allclose(details[2:], 0.6)  # float32 in the table
