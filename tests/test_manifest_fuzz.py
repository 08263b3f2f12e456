"""2,000 mangled manifests: each loads or raises our ManifestError (with a line), quickly; nothing else escapes.

The documents are mutations of a valid manifest (seeded, so a failure names a reproducible document): characters and
lines deleted, duplicated, swapped or replaced by YAML syntax, types changed, anchors and aliases added, and
unbalanced brackets and quotes.
"""

from __future__ import annotations

import random
import time
from pathlib import Path

import pytest

from fmstf_data.errors import ManifestError
from fmstf_data.manifest.load import load_manifest

VALID = """\
version: 1
name: fuzz
description: a manifest to mangle
defaults: {stride_frames: 4, chunk_seconds: 30}
pairs:
  - id: city
    split: train
    hdr: demo/city.hdr.mp4
    sdr: demo/city.sdr.mp4
    notes: "SDR version starts 5 frames late"
  - id: park
    split: test
    hdr: demo/park.hdr.mp4
    sdr: demo/park.sdr.mp4
    start_seconds: 1.5
    end_seconds: 3
    options: {stride_seconds: 0.5}
  - {id: tube, split: train, youtube: bpfu7biLT5c}
excluded:
  - {source: "youtube:KtYYMigpQVM", reason: duplicate}
"""

SNIPPETS = ["{", "}", "[", "]", ":", "- ", "&a ", "*a", "!!int ", "!!float ", "!!binary ", "<<: *a", "'", '"',
            "\t", "\x00", "~", "null", "true", "1e999", "-1", "0x1f", "?", "|", ">", "#", "%YAML 1.1\n", "---\n",
            "...\n", "\u2028", "é", "9" * 400]


def mutate(text: str, rng: random.Random) -> str:
    lines = text.splitlines(keepends=True)
    for _ in range(rng.randint(1, 4)):
        kind = rng.randrange(7)
        if kind == 0 and lines:  # delete a line
            del lines[rng.randrange(len(lines))]
        elif kind == 1 and lines:  # duplicate a line
            index = rng.randrange(len(lines))
            lines.insert(index, lines[index])
        elif kind == 2 and len(lines) > 1:  # swap two lines
            a, b = rng.randrange(len(lines)), rng.randrange(len(lines))
            lines[a], lines[b] = lines[b], lines[a]
        elif kind == 3 and lines:  # insert a snippet inside a line
            index = rng.randrange(len(lines))
            line = lines[index]
            position = rng.randrange(len(line) + 1)
            lines[index] = line[:position] + rng.choice(SNIPPETS) + line[position:]
        elif kind == 4 and lines:  # replace a value
            index = rng.randrange(len(lines))
            if ":" in lines[index]:
                key = lines[index].split(":", 1)[0]
                lines[index] = f"{key}: {rng.choice(SNIPPETS + ['[]', '{}', '1', 'x', '-3.5', '[1, [2]]'])}\n"
        elif kind == 5 and lines:  # change the indentation
            index = rng.randrange(len(lines))
            lines[index] = " " * rng.choice([0, 1, 3, 5, 8]) + lines[index].lstrip(" ")
        else:  # an anchor and aliases
            lines.insert(rng.randrange(len(lines) + 1), "extra: &a [x, *a]\n" if rng.random() < 0.5 else
                         "bomb: &a [1, 1]\nbomb2: &b [*a, *a, *a, *a]\nbomb3: [*b, *b, *b, *b]\n")
    return "".join(lines)


def test_two_thousand_mangled_manifests_give_only_our_error_quickly(tmp_path: Path):
    (tmp_path / "demo").mkdir()
    for name in ("city.hdr.mp4", "city.sdr.mp4", "park.hdr.mp4", "park.sdr.mp4"):
        (tmp_path / "demo" / name).write_bytes(b"not decoded here")
    rng = random.Random(20261207)
    path = tmp_path / "m.yaml"
    outcomes = {"loaded": 0, "refused": 0}
    slowest = 0.0
    for number in range(2000):
        text = mutate(VALID, rng)
        path.write_text(text, encoding="utf-8", errors="surrogatepass")
        started = time.perf_counter()
        try:
            load_manifest(path)
            outcomes["loaded"] += 1
        except ManifestError as error:
            outcomes["refused"] += 1
            assert error.line is None or error.line >= 1, (number, text)
            assert str(error).startswith(str(path)), (number, text)
        except Exception as error:  # noqa: BLE001 - the point of the test: name the document that escaped
            pytest.fail(f"document {number} raised {type(error).__name__}: {error}\n---\n{text}")
        seconds = time.perf_counter() - started
        slowest = max(slowest, seconds)
        assert seconds < 5, (number, seconds, text)
    assert outcomes["refused"] > 500 and outcomes["loaded"] > 20, outcomes  # the mutations do both
