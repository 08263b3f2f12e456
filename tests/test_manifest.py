"""Manifest loading and validation: every error names the file, the line and the field."""

from __future__ import annotations

import dataclasses
import textwrap
from pathlib import Path

import pytest

from fmstf_data.errors import ManifestError
from fmstf_data.manifest.load import load_manifest, parse_source
from fmstf_data.manifest.schema import PAIR_OPTION_RULES, FormatSpec, PairSpec, SourceSpec

MANIFESTS = Path(__file__).resolve().parent.parent / "manifests"

# HDRTVNet's video_links.txt (reference/prior-art.md)
HDRTVNET_TRAIN = ["7Y9nX0QHqzA", "bON-KPiiNCk", "PxdZcvhtwzc", "GOE7S_usVXc", "FcEVbVrNIyg", "ESxn1cLz-Ig",
                  "W8oyStWkoSE", "h21qM1Y-Bog", "mkggXE5e2yk", "9jWF1yxbZbA", "UmSa8tnJ97k", "xtmbLFwR19o",
                  "690ruSjMNoA", "0rTv2EGmjqI", "evXH5IpAsTM", "T3-_RW99h3U", "aoApRzmhb-I", "UmSa8tnJ97k"]
HDRTVNET_TEST = ["bpfu7biLT5c", "KtYYMigpQVM", "HrI5o9Sv6vo", "k1Ud2s72mes"]


@pytest.fixture
def folder(tmp_path) -> Path:
    (tmp_path / "demo").mkdir()
    for name in ("city.hdr.mp4", "city.sdr.mp4", "park.hdr.mp4", "park.sdr.mp4"):
        (tmp_path / "demo" / name).write_bytes(b"not decoded here")
    return tmp_path


def write(folder: Path, text: str) -> Path:
    path = folder / "m.yaml"
    path.write_text(textwrap.dedent(text).lstrip("\n"))
    return path


def error_of(folder: Path, text: str) -> ManifestError:
    path = write(folder, text)
    with pytest.raises(ManifestError) as caught:
        load_manifest(path)
    error = caught.value
    assert error.path == str(path) and str(error).startswith(f"{path}:{error.line}: ")
    return error


VALID = """
version: 1
name: demo
description: two local pairs and a YouTube one
defaults:
  stride_frames: 4
  format: {height: 2160}
pairs:
  - id: city
    split: train
    hdr: demo/city.hdr.mp4
    sdr: demo/city.sdr.mp4
    start_seconds: 12.5
    end_seconds: 80
    notes: free text
    licence: CC-BY 4.0
    options: {stride_frames: 2}
  - id: park
    split: test
    hdr: demo/park.hdr.mp4
    sdr: demo/park.sdr.mp4
  - id: sunset
    split: val
    youtube: https://www.youtube.com/watch?v=GOE7S_usVXc&t=166s&list=PLX4aFjxR0Edu0YlgF0g3rypCxmgxFm9IS
    sdr_format: {height: 1080, vcodec: avc1}
"""


def test_valid_manifest(folder):
    manifest = load_manifest(write(folder, VALID))
    assert (manifest.version, manifest.name, manifest.split_counts()) == (1, "demo", {"train": 1, "val": 1, "test": 1})
    city, park, sunset = manifest.pairs
    assert city.hdr == SourceSpec(kind="local", location=str(folder / "demo" / "city.hdr.mp4"), role="hdr",
                                  pair_id="city", text="demo/city.hdr.mp4", line=10, field="pairs[0].hdr")
    assert city.hdr.path == folder / "demo" / "city.hdr.mp4" and city.sdr.dynamic_range == "SDR"
    assert (city.start_seconds, city.end_seconds, city.notes, city.licence) == (12.5, 80.0, "free text", "CC-BY 4.0")
    assert city.options == {"stride_frames": 2} and manifest.defaults == {"stride_frames": 4}
    assert park.options == {} and park.line == 17 and park.start_seconds is None
    assert (sunset.hdr.kind, sunset.hdr.location, sunset.sdr.location) == ("youtube", "GOE7S_usVXc", "GOE7S_usVXc")
    assert sunset.hdr.format == FormatSpec(height=2160) and sunset.hdr.dynamic_range == "HDR10"
    assert sunset.sdr.format == FormatSpec(height=1080, vcodec="avc1")
    assert sunset.hdr.url == "https://www.youtube.com/watch?v=GOE7S_usVXc"
    assert manifest.pairs_in("test") == (park,) and manifest.pair("sunset") is sunset


@pytest.mark.parametrize("text, expected", [
    ("youtube:bpfu7biLT5c", ("youtube", "bpfu7biLT5c")),
    ("https://youtu.be/KtYYMigpQVM?t=3", ("youtube", "KtYYMigpQVM")),
    ("https://www.youtube.com/shorts/HrI5o9Sv6vo", ("youtube", "HrI5o9Sv6vo")),
    ("https://m.youtube.com/watch?feature=share&v=k1Ud2s72mes", ("youtube", "k1Ud2s72mes")),
    ("https://www.youtube.com/embed/T3-_RW99h3U", ("youtube", "T3-_RW99h3U")),
    ("https://example.org/v/a.mp4", ("url", "https://example.org/v/a.mp4")),
    ("file:///data/a.mp4", ("url", "file:///data/a.mp4")),
    ("clips/a.mp4", ("local", "/base/clips/a.mp4")),
])
def test_parse_source(text, expected):
    assert parse_source(text, base_dir="/base") == expected


@pytest.mark.parametrize("text, message", [
    ("youtube:short", "11 characters"),
    ("https://www.youtube.com/playlist?list=PLX4aFjxR0Edu0YlgF0g3rypCxmgxFm9IS", "playlists are not supported"),
    ("s3://bucket/a.mp4", "unsupported URL scheme 's3'"),
])
def test_parse_source_errors(text, message):
    with pytest.raises(ValueError, match=message):
        parse_source(text, base_dir="/base")


def test_youtube_shorthand_with_per_side_formats_and_defaults(folder):
    manifest = load_manifest(write(folder, """
        version: 1
        name: yt
        defaults:
          format: {height: 1440, vcodec: vp09}
          sdr_format: {vcodec: av01}
        pairs:
          - id: a
            split: train
            youtube: bpfu7biLT5c
            hdr_format: "bv[dynamic_range=HDR10][height=1440]"
          - id: b
            split: train
            youtube: youtube:KtYYMigpQVM
            format: {height: 2160}
    """))
    a, b = manifest.pairs
    assert a.hdr.format == FormatSpec(selector="bv[dynamic_range=HDR10][height=1440]")
    assert a.sdr.format == FormatSpec(height=1440, vcodec="av01")
    assert b.hdr.format == FormatSpec(height=2160, vcodec="vp09") and b.sdr.format == FormatSpec(height=2160,
                                                                                                  vcodec="av01")
    assert manifest.defaults == {}


# (manifest text, line, field, words in the message)
ERRORS = [
    ("""
     version: 2
     name: x
     pairs: []
     """, 1, "version", "unsupported manifest version 2"),
    ("""
     version: 1
     name: x
     pairs: []
     """, 3, "pairs", "pairs is empty"),
    ("""
     version: 1
     name: x
     pair: []
     """, 3, "pair", "unknown key 'pair' in the manifest; did you mean 'pairs'?"),
    ("""
     version: 1
     name: x
     pairs:
       - id: city
         split: train
         hdr: demo/city.hdr.mp4
         sdr: demo/city.sdr.mp4
       - id: park
         splt: test
         hdr: demo/park.hdr.mp4
         sdr: demo/park.sdr.mp4
     """, 9, "pairs[1].splt", "did you mean 'split'?"),
    ("""
     version: 1
     name: x
     pairs:
       - id: city
         split: [train]
         hdr: demo/city.hdr.mp4
         sdr: demo/city.sdr.mp4
     """, 5, "pairs[0].split", "expected a string, got a list"),
    ("""
     version: 1
     name: x
     pairs:
       - id: city
         split: training
         hdr: demo/city.hdr.mp4
         sdr: demo/city.sdr.mp4
     """, 5, "pairs[0].split", "split 'training' is not one of train, val, test (did you mean 'train'?)"),
    ("""
     version: 1
     name: x
     pairs:
       - id: City.2
         split: train
         hdr: demo/city.hdr.mp4
         sdr: demo/city.sdr.mp4
     """, 4, "pairs[0].id", "must match [a-z0-9][a-z0-9_-]*"),
    ("""
     version: 1
     name: x
     pairs:
       - {id: city, split: train, hdr: demo/city.hdr.mp4, sdr: demo/city.sdr.mp4}
       - {id: city, split: train, hdr: demo/park.hdr.mp4, sdr: demo/park.sdr.mp4}
     """, 5, "pairs[1].id", "duplicate pair id 'city' (first used at line 4)"),
    ("""
     version: 1
     name: x
     pairs:
       - id: city
         split: train
         hdr: demo/city.hdr.mp4
         sdr: demo/city.sdr.mkv
     """, 7, "pairs[0].sdr", "file not found: {folder}/demo/city.sdr.mkv (written 'demo/city.sdr.mkv', relative to "
                             "the manifest's folder {folder})"),
    ("""
     version: 1
     name: x
     pairs:
       - id: city
         split: train
         hdr: demo/city.hdr.mp4
         sdr: demo/city.sdr.mp4
         start_seconds: 30
         end_seconds: 12
     """, 9, "pairs[0].end_seconds", "end_seconds (12) must be greater than start_seconds (30)"),
    ("""
     version: 1
     name: x
     pairs:
       - id: city
         split: train
         hdr: demo/city.hdr.mp4
         sdr: demo/city.sdr.mp4
         start_seconds: soon
     """, 8, "pairs[0].start_seconds", "expected a number of seconds >= 0, got a string 'soon'"),
    ("""
     version: 1
     name: x
     pairs:
       - {id: city, split: train, hdr: demo/city.hdr.mp4, sdr: demo/city.sdr.mp4}
       - id: city-again
         split: test
         hdr: demo/park.hdr.mp4
         sdr: ./demo/../demo/city.sdr.mp4
     """, 8, "pairs[1].sdr", "is also used by pair 'city' in split 'train' (line 4)"),
    ("""
     version: 1
     name: x
     pairs:
       - {id: city, split: train, hdr: demo/city.hdr.mp4, sdr: demo/city.sdr.mp4}
       - id: roles-swapped
         split: test
         hdr: demo/city.sdr.mp4
         sdr: demo/park.sdr.mp4
     """, 7, "pairs[1].hdr", "is also used by pair 'city' in split 'train' (line 4)"),
    ("""
     version: 1
     name: x
     pairs:
       - {id: a, split: train, youtube: bpfu7biLT5c}
       - id: b
         split: test
         hdr: youtube:KtYYMigpQVM
         sdr: https://youtu.be/bpfu7biLT5c
     """, 8, "pairs[1].sdr", "youtube:bpfu7biLT5c is also used by pair 'a' in split 'train'"),
    ("""
     version: 1
     name: x
     pairs:
       - id: city
         split: train
         hdr: demo/city.hdr.mp4
         sdr: demo/city.sdr.mp4
         options:
           stride: 2
     """, 9, "pairs[0].options.stride", "unknown key 'stride' in pair options; did you mean 'stride_frames'?"),
    ("""
     version: 1
     name: x
     defaults:
       stride_frames: 0
     pairs:
       - {id: city, split: train, hdr: demo/city.hdr.mp4, sdr: demo/city.sdr.mp4}
     """, 4, "defaults.stride_frames", "must be >= 1, got 0"),
    ("""
     version: 1
     name: x
     defaults:
       window_frames: 4
     pairs:
       - {id: city, split: train, hdr: demo/city.hdr.mp4, sdr: demo/city.sdr.mp4}
     """, 4, "defaults.window_frames", "must be odd (a window has a centre frame), got 4"),
    ("""
     version: 1
     name: x
     pairs:
       - id: city
         split: train
         youtube: bpfu7biLT5c
         sdr: demo/city.sdr.mp4
     """, 7, "pairs[0].sdr", "give either 'youtube'"),
    ("""
     version: 1
     name: x
     pairs:
       - id: city
         split: train
         hdr: demo/city.hdr.mp4
     """, 4, "pairs[0].sdr", "missing required key 'sdr'"),
    ("""
     version: 1
     name: x
     pairs:
       - id: city
         split: train
         hdr: demo/city.hdr.mp4
         sdr: demo/city.sdr.mp4
         hdr_format: {height: 1080}
     """, 8, "pairs[0].hdr_format", "format selection applies to YouTube and URL sources"),
    ("""
     version: 1
     name: x
     pairs:
       - id: city
         split: train
         youtube: bpfu7biLT5c
         hdr_format: {height: 1080, selector: "bv"}
     """, 7, "pairs[0].hdr_format", "give either a selector or height/vcodec"),
    ("""
     version: 1
     name: x
     pairs:
       - id: city
         split: train
         youtube: bpfu7biLT5c
         sdr_format: "bv[height=1080"
     """, 7, "pairs[0].sdr_format", "Invalid format specification"),
    ("""
     version: 1
     name: x
     pairs:
       - id: city
         split: train
         hdr: ftp://example.org/a.mp4
         sdr: demo/city.sdr.mp4
     """, 6, "pairs[0].hdr", "unsupported URL scheme 'ftp'"),
    ("""
     version: 1
     name: x
     pairs:
       - id: city
         split: train
         hdr: demo/city.hdr.mp4
         sdr: demo/city.hdr.mp4
     """, 7, "pairs[0].sdr", "hdr and sdr name the same file"),
    ("""
     version: 1
     name: x
     excluded:
       - {source: youtube:bpfu7biLT5c, reason: a duplicate}
     pairs:
       - {id: a, split: train, youtube: bpfu7biLT5c}
     """, 6, "pairs[0].youtube", "is listed under 'excluded' (line 4: a duplicate)"),
    ("""
     version: 1
     name: x
     pairs:
       - id: city
         split: train
         split: test
     """, 6, "pairs[0].split", "duplicate key 'split' (first at line 5)"),
    ("""
     version: 1
     name: x
     pairs:
       - id: city
         split: train
         hdr: [unclosed
     """, 7, None, "invalid YAML"),
    ("""
     version: 1
     name: !!python/object:os.system x
     pairs: []
     """, 2, None, "invalid YAML: could not determine a constructor"),
]


@pytest.mark.parametrize("text, line, field, words", ERRORS, ids=[e[2] or e[3][:20] for e in ERRORS])
def test_errors_name_line_and_field(folder, text, line, field, words):
    error = error_of(folder, text)
    assert (error.line, error.field) == (line, field), str(error)
    assert words.format(folder=folder) in error.message, error.message


def test_empty_and_missing_files(folder):
    error = error_of(folder, "\n")
    assert "the manifest is empty" in error.message
    with pytest.raises(ManifestError, match=r"manifest file not found: .*nope\.yaml"):
        load_manifest(folder / "nope.yaml")


def test_plain_scalars_are_taken_as_written(folder):
    manifest = load_manifest(write(folder, """
        version: 1
        name: 2024
        pairs:
          - {id: 2019, split: train, hdr: demo/city.hdr.mp4, sdr: demo/city.sdr.mp4, notes: yes}
    """))
    assert (manifest.name, manifest.pairs[0].id, manifest.pairs[0].notes) == ("2024", "2019", "yes")


def test_yaml_merge_keys_are_supported(folder):
    manifest = load_manifest(write(folder, """
        version: 1
        name: merged
        pairs:
          - &base {id: a, split: train, hdr: demo/city.hdr.mp4, sdr: demo/city.sdr.mp4}
          - <<: *base
            id: b
    """))
    assert [pair.id for pair in manifest.pairs] == ["a", "b"]


def test_dataclass_checks_without_a_file(folder):
    hdr = SourceSpec(kind="youtube", location="bpfu7biLT5c", role="hdr")
    sdr = dataclasses.replace(hdr, role="sdr")
    with pytest.raises(ManifestError, match="11 characters"):
        SourceSpec(kind="youtube", location="nope", role="hdr")
    with pytest.raises(ManifestError, match="absolute path"):
        SourceSpec(kind="local", location="relative.mp4", role="hdr")
    with pytest.raises(ManifestError, match="split must be one of"):
        PairSpec(id="a", split="holdout", hdr=hdr, sdr=sdr)
    with pytest.raises(ManifestError, match="end_seconds"):
        PairSpec(id="a", split="train", hdr=hdr, sdr=sdr, start_seconds=3, end_seconds=3)
    with pytest.raises(ManifestError, match="unknown pair option"):
        PairSpec(id="a", split="train", hdr=hdr, sdr=sdr, options={"strides": 1})
    with pytest.raises(ManifestError, match="roles"):
        PairSpec(id="a", split="train", hdr=sdr, sdr=hdr)


def test_pair_options_match_the_build_options():
    from pipelines.options import PairOptions

    assert set(PAIR_OPTION_RULES) == {f.name for f in dataclasses.fields(PairOptions)}
    from fmstf_data.extract.options import MAX_WINDOW_FRAMES

    assert PAIR_OPTION_RULES["window_frames"].maximum == MAX_WINDOW_FRAMES
    for bad in (1, 4, MAX_WINDOW_FRAMES + 2):
        with pytest.raises(Exception, match="window_frames"):
            PairOptions(window_frames=bad)


def test_fmstf20_is_hdrtvnet_16_train_4_test():
    manifest = load_manifest(MANIFESTS / "fmstf20.yaml")
    assert manifest.split_counts() == {"train": 16, "test": 4}
    train = [pair.hdr.location for pair in manifest.pairs_in("train")]
    test = [pair.hdr.location for pair in manifest.pairs_in("test")]
    assert test == HDRTVNET_TEST
    unique_train = list(dict.fromkeys(HDRTVNET_TRAIN))
    assert len(unique_train) == 17 and set(train) < set(unique_train)
    [left_out] = set(unique_train) - set(train)
    assert [(e.kind, e.location) for e in manifest.excluded] == [("youtube", left_out)]
    assert len(manifest.excluded[0].reason) > 80  # the reason is written out
    for pair in manifest.pairs:
        assert pair.hdr.kind == pair.sdr.kind == "youtube" and pair.hdr.location == pair.sdr.location
        assert pair.id == "yt-" + pair.hdr.location.lower()
        assert pair.hdr.format == pair.sdr.format == FormatSpec(height=2160)
    starts = {pair.hdr.location: pair.start_seconds for pair in manifest.pairs if pair.start_seconds is not None}
    assert starts == {"GOE7S_usVXc": 166.0, "W8oyStWkoSE": 7.0}  # the list's &t= links


HOSTILE = [  # (text, line, words): each refused quickly with our own error, never a hang or a traceback
    ("name: x\npairs: []\n", 1, "missing required key 'version'"),
    ("version: 1\npairs: []\n", 1, "missing required key 'name'"),
    ("version: 1\nname: x\n", 1, "missing required key 'pairs'"),
    ("version: " + "1" * 5001 + "\nname: x\npairs: []\n", 1, "as int: Exceeds the limit"),
    ("version: !!int abc\nname: x\npairs: []\n", 1, "cannot read 'abc' as int"),
    ("version: 1\nname: !!float abc\npairs: []\n", 2, "cannot read 'abc' as float"),
    ("version: 1\nname: x\npairs: " + "[" * 5000 + "]" * 5000 + "\n", None, "nests too deeply"),
    ("version: 1\nname: x\npairs: " + "[" * 100 + "]" * 100 + "\n", 3, "more than 64 levels"),
    ("version: 1\nname: \"a\0b\"\npairs: []\n", 2, "character #x0000 at column 9"),  # len('name: "a') + 1
    ("version: 1\nname: x\npairs:\n  - ? [a, b]\n    : 1\n", 4, "keys must be strings, got a list"),
]


@pytest.mark.timeout(30)  # a hang is the failure this guards against
@pytest.mark.parametrize("text, line, words", HOSTILE, ids=[f"hostile{n}" for n in range(len(HOSTILE))])
def test_hostile_manifests_get_our_error_quickly(folder, text, line, words):
    import time

    path = folder / "m.yaml"
    path.write_text(text)
    started = time.perf_counter()
    with pytest.raises(ManifestError) as caught:
        load_manifest(path)
    assert time.perf_counter() - started < 5
    assert caught.value.line == line and words in caught.value.message, str(caught.value)


@pytest.mark.timeout(60)
def test_an_alias_bomb_is_refused_in_milliseconds_while_merge_keys_still_work(folder):
    import time

    levels = ['a: &a ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    levels += [f"{chr(98 + n)}: &{chr(98 + n)} [" + ", ".join([f"*{chr(97 + n)}"] * 9) + "]" for n in range(8)]
    path = folder / "bomb.yaml"
    path.write_text("\n".join(levels) + "\nversion: 1\nname: x\npairs: *i\n")  # 9^9 = 387 million strings
    started = time.perf_counter()
    with pytest.raises(ManifestError, match="alias bomb"):
        load_manifest(path)
    assert time.perf_counter() - started < 2
    # an ordinary manifest that leans on merge keys stays well inside the alias budget
    for n in range(300):
        (folder / "demo" / f"p{n}.hdr.mp4").write_bytes(b"x")
        (folder / "demo" / f"p{n}.sdr.mp4").write_bytes(b"x")
    pairs = ["  - &base {id: p0, split: train, notes: shared, hdr: demo/p0.hdr.mp4, sdr: demo/p0.sdr.mp4}"]
    pairs += [f"  - <<: *base\n    id: p{n}\n    hdr: demo/p{n}.hdr.mp4\n    sdr: demo/p{n}.sdr.mp4"
              for n in range(1, 300)]
    manifest = load_manifest(write(folder, "version: 1\nname: m\npairs:\n" + "\n".join(pairs) + "\n"))
    assert len(manifest.pairs) == 300 and {pair.notes for pair in manifest.pairs} == {"shared"}


def test_a_bad_notes_field_is_named_at_its_own_line(folder):
    error = error_of(folder, """
        version: 1
        name: x
        pairs:
          - id: a
            split: train
            hdr: demo/city.hdr.mp4
            sdr: demo/city.sdr.mp4
            licence: [cc0]
    """)
    assert (error.line, error.field) == (8, "pairs[0].licence"), str(error)


def test_a_manifest_too_large_is_refused_before_parsing(folder, monkeypatch):
    from fmstf_data.manifest import yaml_lines

    monkeypatch.setattr(yaml_lines, "MAX_MANIFEST_BYTES", 1000)
    with pytest.raises(ManifestError, match="2,032 characters; at most 1,000 are accepted"):  # 11+8+10+2+2000+1
        load_manifest(write(folder, "version: 1\nname: x\npairs: []\n# " + "x" * 2000 + "\n"))
