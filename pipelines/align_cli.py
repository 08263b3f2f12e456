"""``fmstf-data align HDR SDR [--plot FILE.png]``: alignment diagnostics for one pair of files."""

from __future__ import annotations

import argparse


def add_align_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("align", help="offset, confidence, geometry and per-frame scores of a pair")
    parser.add_argument("hdr")
    parser.add_argument("sdr")


def run_align_command(args: argparse.Namespace) -> int:
    raise NotImplementedError("fmstf-data align is being written (issue 3)")
