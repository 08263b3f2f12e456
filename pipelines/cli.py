"""The ``fmstf-data`` command.

    fmstf-data build --manifest manifests/demo.yaml --out build/demo
    fmstf-data probe FILE [--json] [--as hdr|sdr]
    fmstf-data align HDR SDR [--plot FILE.png]
    fmstf-data verify OUT [--deep]

Exit codes: 0 success; 1 the build finished but some pairs failed (the summary says which and why); 2 bad input or
environment (an invalid manifest or option, an unreadable file, an unusable --out), with a one-line message and no
traceback; 130 / 143 interrupted by Ctrl-C / SIGTERM (rerun to resume); 141 the reader of our output went away.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import sys
import threading
from pathlib import Path
from typing import Any

from fmstf_data.errors import FmstfError

EXIT_OK = 0
EXIT_PAIRS_FAILED = 1
EXIT_BAD_INPUT = 2
EXIT_BROKEN_PIPE = 141  # 128 + SIGPIPE, what a shell tool killed by SIGPIPE returns

logger = logging.getLogger("fmstf_data.cli")


def default_cache_dir() -> str:
    """``$FMSTF_CACHE``, else ``~/.cache/fmstf-data`` (fetched sources; local files are never copied)."""
    return os.environ.get("FMSTF_CACHE") or str(Path.home() / ".cache" / "fmstf-data")


def _add_build(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("build", help="build WebDataset shards, index and report from a manifest")
    parser.add_argument("--manifest", required=True, help="manifest YAML (see manifests/README.md)")
    parser.add_argument("--out", help="output directory or URI (s3://bucket/prefix, gs://..., hdfs://...); "
                                      "required except with --dry-run")
    parser.add_argument("--cache", default=None, help="where downloads are kept (default: $FMSTF_CACHE or "
                                                      "~/.cache/fmstf-data)")
    parser.add_argument("--workers", type=int, default=None,
                        help="pairs processed at once (default: as many as the cluster's CPUs allow)")
    parser.add_argument("--cpus-per-task", type=int, default=None,
                        help="CPUs each pair's task declares and uses for its decoder and zstd threads (default 1)")
    parser.add_argument("--memory-per-task", type=parse_size, default=None, metavar="SIZE",
                        help="memory each task declares to Ray, e.g. 2G or 1500M (default: none declared; a 2160p "
                             "pair needs about 2G)")
    parser.add_argument("--max-retries", type=int, default=None,
                        help="reruns of a task whose worker died, e.g. a lost node (default 1)")
    parser.add_argument("--ray-address", default=None, help="join this Ray cluster (default: $RAY_ADDRESS, else a "
                                                            "private local Ray instance)")
    stride = parser.add_mutually_exclusive_group()
    stride.add_argument("--stride", type=int, default=None, help="one triplet per window of this many HDR frames "
                                                                 "(default 8; the manifest may override)")
    stride.add_argument("--stride-seconds", type=float, default=None,
                        help="one triplet per window of this many seconds (the same at any frame rate)")
    parser.add_argument("--chunk-seconds", type=float, default=None,
                        help="seconds of the HDR timeline per chunk task (default 60; the samples do not depend on "
                             "it; a manifest's defaults override this)")
    parser.add_argument("--window-frames", type=int, default=None,
                        help="frames per sample: 3 (triplets, the default) or another odd number up to 25")
    parser.add_argument("--max-shard-mb", type=float, default=None, help="close shards before this size (default "
                                                                         "1024 MB)")
    parser.add_argument("--only", nargs="+", default=(), metavar="PAIR_ID", help="build only these pairs")
    parser.add_argument("--force", action="store_true", help="rebuild pairs that are already complete")
    parser.add_argument("--verify-resume", action="store_true",
                        help="re-hash the shards of completed pairs before skipping them (sizes are always checked)")
    parser.add_argument("--no-previews", action="store_true", help="skip preview pictures in the report")
    parser.add_argument("--dry-run", action="store_true", help="print the plan (pairs per split, sources, what "
                                                               "would be fetched) and touch nothing")
    fetching = parser.add_argument_group("fetching (URLs and YouTube, through yt-dlp; see docs/youtube.md)")
    fetching.add_argument("--cookies", default=None, help="cookies.txt of a logged-in browser session (YouTube's "
                                                          "'confirm you're not a bot')")
    fetching.add_argument("--cookies-from-browser", default=None,
                          help="read cookies from a local browser: BROWSER[+KEYRING][:PROFILE][::CONTAINER]")
    fetching.add_argument("--limit-rate", default=None, help="download at most this rate, e.g. 4M or 500K (bytes/s)")
    fetching.add_argument("--sleep-requests", type=float, default=None,
                          help="seconds to pause between the requests of an extraction")
    fetching.add_argument("--sleep-interval", type=float, default=None, help="seconds to pause before each download")
    fetching.add_argument("--retries", type=int, default=None, help="retries per download request (default 10)")
    fetching.add_argument("--format-height", type=int, default=None,
                          help="target video height when the manifest sets none (default 2160)")
    fetching.add_argument("--js-runtime", action="append", default=None, metavar="NAME[:PATH]",
                          help="JavaScript runtime yt-dlp may use for YouTube (deno, node, bun, quickjs); repeatable")
    fetching.add_argument("--remote-components", action="append", default=None, metavar="COMPONENT",
                          help="let yt-dlp fetch its JavaScript solver (ejs:github or ejs:npm); repeatable")
    fetching.add_argument("--proxy", default=None, help="proxy URL for all requests")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def _add_probe(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("probe", help="what a video file is: codec, colour tags, HDR10 metadata, verdict")
    parser.add_argument("file")
    parser.add_argument("--json", action="store_true", help="machine-readable output")
    parser.add_argument("--as", dest="role", choices=("hdr", "sdr"), default=None,
                        help="also say whether the file can serve as this side of a pair (exit 1 if not)")


def _add_verify(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("verify", help="check a finished build: shards against the index, sample "
                                                  "format, splits by video")
    parser.add_argument("out", help="build directory or URI")
    parser.add_argument("--deep", action="store_true", help="decode every plane, not only the metadata")


def run_verify_command(args: argparse.Namespace) -> int:
    from pipelines.verify import verify_build

    result = verify_build(args.out, deep=args.deep)
    for problem in result.problems:
        print(f"PROBLEM {problem}")
    verdict = "ok" if result.ok else f"{len(result.problems)} problem(s)"
    print(f"verified {result.shards} shard(s), {result.samples} sample(s){' (deep)' if args.deep else ''}: {verdict}")
    return EXIT_OK if result.ok else EXIT_PAIRS_FAILED


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="fmstf-data",
        description="HDR10/SDR video pairs -> exact, aligned PQ triplets in WebDataset shards.",
        epilog="exit codes: 0 success; 1 the build finished but some pairs failed (the summary says which and why); "
               "2 bad input or environment (an invalid manifest or option, an unreadable file, an unusable --out), "
               "with a one-line message; 130/143 interrupted (Ctrl-C / SIGTERM): rerun to resume")
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more logging (-vv for debug)")
    subparsers = parser.add_subparsers(dest="command", required=True)
    _add_build(subparsers)
    _add_probe(subparsers)
    _add_verify(subparsers)
    from pipelines.align_cli import add_align_parser

    add_align_parser(subparsers)
    return parser


def _fetch_options(args: argparse.Namespace) -> dict[str, Any]:
    """The fetch options the command line sets, as a plain mapping (validated here, before anything starts)."""
    from fmstf_data.sources import FetchOptions, parse_byte_rate

    given = {
        "cookies_file": args.cookies, "cookies_from_browser": args.cookies_from_browser,
        "rate_limit_bytes": None if args.limit_rate is None else parse_byte_rate(args.limit_rate),
        "sleep_requests_seconds": args.sleep_requests, "sleep_before_download_seconds": args.sleep_interval,
        "retries": args.retries, "format_height": args.format_height,
        "js_runtimes": None if args.js_runtime is None else list(args.js_runtime),
        "remote_components": None if args.remote_components is None else list(args.remote_components),
        "proxy": args.proxy,
    }
    fetch = {name: value for name, value in given.items() if value is not None}
    FetchOptions.from_mapping(fetch).check_cookies()
    return fetch


def parse_size(text: str) -> int:
    """Bytes of a size such as ``2G``, ``1500M``, ``512k`` or ``1048576`` (binary units: G = 2**30)."""
    units = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40}
    number, unit = text.strip().rstrip("bB").rstrip("iI"), ""
    if number and number[-1].lower() in units:
        number, unit = number[:-1], number[-1].lower()
    try:
        value = float(number) * units[unit]
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a size: {text!r} (e.g. 2G, 1500M)") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"a size must be positive, got {text!r}")
    return int(value)


def _build_options(args: argparse.Namespace):
    from pipelines.options import BuildOptions, PairOptions

    fetch = _fetch_options(args)
    pair_overrides = {name: value for name, value in (("stride_frames", args.stride),
                                                      ("stride_seconds", args.stride_seconds),
                                                      ("chunk_seconds", args.chunk_seconds),
                                                      ("window_frames", args.window_frames)) if value is not None}
    pair_options = PairOptions().with_overrides(pair_overrides)
    values: dict[str, Any] = {
        "manifest_path": args.manifest, "out": args.out, "cache_dir": args.cache or default_cache_dir(),
        "ray_address": args.ray_address, "pair_options": pair_options, "only_pairs": tuple(args.only),
        "force": args.force, "verify_resume": args.verify_resume, "previews": not args.no_previews, "fetch": fetch,
    }
    for name, value in (("workers", args.workers), ("cpus_per_task", args.cpus_per_task),
                        ("memory_per_task_bytes", args.memory_per_task), ("max_retries", args.max_retries)):
        if value is not None:
            values[name] = value
    if args.max_shard_mb is not None:
        values["max_shard_bytes"] = int(args.max_shard_mb * 1e6)
    return BuildOptions(**values)


def run_build_command(args: argparse.Namespace) -> int:
    from fmstf_data.manifest.load import load_manifest

    if args.dry_run:
        from fmstf_data.sources import FetchOptions
        from pipelines.plan import format_plan

        manifest = load_manifest(args.manifest)
        options = FetchOptions.from_mapping(_fetch_options(args))
        print(format_plan(manifest, Path(args.cache or default_cache_dir()), options=options))
        return EXIT_OK
    if not args.out:
        raise FmstfError("--out is required (a directory or a URI such as s3://bucket/prefix)")
    from pipelines.build import run_build

    build = _build_options(args)
    manifest = load_manifest(build.manifest_path)  # fail fast, before Ray starts
    progress = None
    if not args.no_progress:
        from tqdm import tqdm

        total = len([p for p in manifest.pairs if not build.only_pairs or p.id in build.only_pairs])
        progress = tqdm(total=total, unit="pair", desc="pairs", file=sys.stderr, dynamic_ncols=True)

    def on_record(record: dict[str, Any]) -> None:
        if progress is not None:
            progress.update(1)
            progress.set_postfix_str(f"{record['pair_id']}: {record['status']}")

    try:
        result = run_build(build, on_record=on_record)
    finally:
        if progress is not None:
            progress.close()
    print(result.report["summary"])
    return EXIT_PAIRS_FAILED if result.failed else EXIT_OK


def run_probe_command(args: argparse.Namespace) -> int:
    from fmstf_data.video.probe import probe_video

    probe = probe_video(args.file)
    problem = probe.problem_as(args.role) if args.role else None
    if args.json:
        payload = probe.to_dict()
        if args.role:
            payload["role"] = args.role
            payload["problem_as_role"] = problem
        print(json.dumps(payload, indent=2, sort_keys=True))
    else:
        print(probe.describe())
        if args.role:
            print(f"as {args.role.upper()} side: " + ("usable" if problem is None else f"NOT usable: {problem}"))
    return EXIT_PAIRS_FAILED if problem else EXIT_OK


class Terminated(KeyboardInterrupt):
    """SIGTERM, turned into the same orderly stop as Ctrl-C."""


#: set when SIGTERM arrived (code on the way may turn our Terminated into a plain KeyboardInterrupt)
_SIGTERM_RECEIVED = threading.Event()


def _terminate(signum: int, frame: object) -> None:
    _SIGTERM_RECEIVED.set()
    raise Terminated()


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    level = logging.WARNING if args.verbose == 0 else logging.INFO if args.verbose == 1 else logging.DEBUG
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")
    from pipelines.align_cli import run_align_command

    commands = {"build": run_build_command, "probe": run_probe_command, "align": run_align_command,
                "verify": run_verify_command}
    previous = None
    if threading.current_thread() is threading.main_thread():
        previous = signal.signal(signal.SIGTERM, _terminate)  # like Ctrl-C: the build stops its workers, its lease
    try:
        code = commands[args.command](args)
        sys.stdout.flush()  # a reader that went away shows here, inside the handlers below
        return code
    except FmstfError as error:
        print(f"fmstf-data {args.command}: error: {error}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except BrokenPipeError:
        # the reader went away (``fmstf-data probe FILE | head -1``): stop quietly, as shell tools do
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_BROKEN_PIPE
    except OSError as error:  # the environment, not a bug: disk full, permission denied, read-only file system
        where = f" ({error.filename})" if getattr(error, "filename", None) else ""
        print(f"fmstf-data {args.command}: error: {error.strerror or error}{where}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except KeyboardInterrupt as interrupt:
        print("fmstf-data: interrupted; rerun the same command to resume", file=sys.stderr)
        return 143 if isinstance(interrupt, Terminated) or _SIGTERM_RECEIVED.is_set() else 130
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


if __name__ == "__main__":
    sys.exit(main())
