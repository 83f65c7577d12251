"""`beam-index`: the command line.

    beam-index index SOURCE --output OUT [--batch-size N] [--stats-json PATH] [--quiet] [BEAM FLAGS…]

Exit status: 0 when a snapshot was committed (failed files are listed in the summary and in the
manifest); 1 when nothing could be committed (bad SOURCE, unusable OUT, every file failed,
pipeline error), with a one-line reason on stderr; 2 for a usage error; 130 on Ctrl-C.
"""

from __future__ import annotations

import argparse
import atexit
import gc
import json
import logging
import os
import signal
import sys
import threading
from pathlib import Path

from .errors import EXIT_FAILED, EXIT_USAGE, BeamIndexError, UsageError
from .run.config import ConfigError, expand_config
from .run.terminal import json_text, printable

EXIT_OK, EXIT_INTERRUPTED = 0, 130


class _DropNoise(logging.Filter):
    """Beam's import-time warning about optional GCP clients means nothing to our users."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith("apitools not found")


def configure_logging(verbose: bool) -> None:
    # force=True: importing apache_beam may already have installed a root handler.
    logging.basicConfig(level=logging.INFO if verbose else logging.WARNING, force=True)
    for handler in logging.getLogger().handlers:
        handler.setFormatter(_PrintableFormatter("%(levelname)s %(name)s: %(message)s"))
    logging.getLogger().addFilter(_DropNoise())
    # Beam logs every failing bundle with its traceback; the CLI prints a one-line reason instead.
    logging.getLogger("apache_beam").setLevel(logging.INFO if verbose else logging.CRITICAL)


class _PrintableFormatter(logging.Formatter):
    """Log lines name paths and quote errors: no control character of theirs reaches stderr."""

    def format(self, record: logging.LogRecord) -> str:
        return printable(super().format(record), newlines=True)


def count(text: str) -> int:
    """A count flag's value: a usage error (exit 2) below 1, like any malformed flag."""
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def build_parser() -> argparse.ArgumentParser:
    from . import __version__
    from .embedding.journal import DEFAULT_MAX_MB as DEFAULT_JOURNAL_MB
    from .layout.schema import PRUNE_GRACE_S
    from .run.flags import add_endpoint_flags, add_index_flags
    from .search.ann import DEFAULT_MIN_ROWS as DEFAULT_ANN_MIN_ROWS
    from .serve.bind import DEFAULT_HOST, DEFAULT_PORT

    parser = argparse.ArgumentParser(
        prog="beam-index", description="Index a code repository into Parquet vector shards "
        "with an Apache Beam pipeline.")
    parser.add_argument("--version", action="version", version=f"beam-index {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)
    # The options of a run, shared by `index` and `watch`.
    index = argparse.ArgumentParser(add_help=False)
    index.add_argument("source", help="repository folder to index, or a URL on a filesystem "
                       "Beam has installed (s3://…, gs://…) holding a copy of it")
    index.add_argument("--output", "-o", required=True,
                       help="index folder (created if needed), or a URL on a filesystem Beam "
                       "has installed (gs://…, s3://…)")
    index.add_argument("--stats-json", type=Path, help="write the run's stats as JSON here")
    index.add_argument("--full", action="store_true",
                       help="rebuild from scratch instead of re-indexing what changed")
    index.add_argument("--checksum", action="store_true",
                       help="decide what changed by content hash instead of size and mtime")
    index.add_argument("--no-git", dest="git", action="store_false",
                       help="decide what changed by size and mtime even in a git work tree "
                       "(default: git's blob ids for tracked, unmodified files)")
    index.add_argument("--keep", type=int, default=3, metavar="N",
                       help="snapshots to keep; older ones are pruned after a commit "
                       "(default: %(default)s)")
    index.add_argument("--prune-grace", type=float, default=PRUNE_GRACE_S, metavar="SECONDS",
                       dest="prune_grace_s",
                       help="prune a snapshot only once it has been superseded this long, so "
                       "searches that opened it finish (default: %(default)s)")
    index.add_argument("--follow-symlinks", action="store_true",
                       help="index what symlinks point to, also outside SOURCE (default: "
                       "symlinks are skipped); a folder is walked once")
    index.add_argument("--local-paths-on-workers", action="store_true",
                       help="a local SOURCE or OUT is mounted at the same path on every worker "
                       "of a distributed runner (without it, such paths are refused there)")
    index.add_argument("--no-spill", dest="spill", action="store_false",
                       help="local runners: send the vectors through Beam's grouping in memory "
                       "instead of spill files on disk")
    index.add_argument("--journal", choices=("auto", "always", "never"), default="auto",
                       help="keep what is embedded in OUT/.journal until the commit, so a "
                       "killed or failed run's vectors are reused by the next (default: auto, "
                       "every embedder but static and hashing)")
    index.add_argument("--journal-max-mb", type=count, default=DEFAULT_JOURNAL_MB,
                       metavar="MB",
                       help="cap of the resume journal; its oldest segments go first "
                       "(default: %(default)s)")
    index.add_argument("--journal-fsync", action="store_true",
                       help="fsync the journal after every batch: a power loss keeps it too "
                       "(a killed process keeps it without)")
    index.add_argument("--ann-min-rows", type=count, default=DEFAULT_ANN_MIN_ROWS,
                       metavar="N",
                       help="give snapshots of at least N rows an approximate vector index "
                       "(HNSW), so a query does not score every row (default: %(default)s)")
    index.add_argument("--dry-run", action="store_true",
                       help="print the plan and the number of chunks to embed, then stop")
    index.add_argument("--quiet", "-q", action="store_true", help="no progress display")
    index.add_argument("--verbose", "-v", action="store_true", help="log Beam's own messages")
    index.add_argument("--config", metavar="FILE",
                       help="a profile of options (configs/*.yaml); flags given here override it")
    add_index_flags(index.add_argument_group("indexing"))
    beam_flags = ("Any other --flag is passed to Beam as a pipeline option, e.g. "
                  "--direct_running_mode=multi_processing --direct_num_workers=2 or "
                  "--runner=FlinkRunner.")
    commands.add_parser(
        "index", parents=[index], epilog=beam_flags,
        help="index SOURCE into OUT (a new snapshot, committed atomically)")
    commands.add_parser(
        "watch", parents=[index], epilog=beam_flags,
        help="index SOURCE into OUT, then follow its file changes: one snapshot per group of "
        "changes, until Ctrl-C")

    search = commands.add_parser("search", help="rank the live snapshot's chunks by a query")
    search.add_argument("output", help="index folder or URL (gs://…, s3://…; Beam's "
                        "filesystem flags such as --s3_endpoint_url are accepted)")
    search.add_argument("query", help="text or code to search for")
    search.add_argument("-k", "--limit", dest="k", type=int, default=10,
                        help="hits to show (default: %(default)s)")
    modes = search.add_mutually_exclusive_group()
    modes.add_argument("--fts", dest="mode", action="store_const", const="fts",
                       help="lexical only: BM25 over code-aware terms")
    modes.add_argument("--semantic", dest="mode", action="store_const", const="semantic",
                       help="vectors only: cosine similarity")
    search.set_defaults(mode="hybrid")
    search.add_argument("--regex", action="store_true",
                        help="with --fts: QUERY is a regular expression (RE2) over the text")
    search.add_argument("--case-sensitive", action="store_true", help="with --fts")
    search.add_argument("--fuzzy", action="store_true",
                        help="with --fts: also words one or two edits away")
    search.add_argument("--language", action="append", default=[], metavar="LANG",
                        help="only these languages (repeatable), e.g. python")
    search.add_argument("--exclude-language", action="append", default=[], metavar="LANG")
    search.add_argument("--path-filter", action="append", default=[], metavar="GLOB",
                        help="only paths matching (repeatable; .gitignore syntax: ** crosses "
                        "folders, a pattern without / matches a name at any depth)")
    search.add_argument("--exclude-path", action="append", default=[], metavar="GLOB")
    search.add_argument("--min-score", type=float, metavar="S",
                        help="show only hits whose score (0 to 1, the number printed) is at "
                        "least S: the cosine with --semantic, BM25 as a fraction of the best "
                        "hit's with --fts, 0.4 x that + 0.6 x the cosine in hybrid")
    search.add_argument("--files-only", action="store_true", help="each file once, best first")
    search.add_argument("--exact", action="store_true",
                        help="rank every row, even in a snapshot with an approximate index")
    search.add_argument("--json", action="store_true", help="print the hits as JSON")
    search.add_argument("--no-server", action="store_true",
                        help="read the index's files even when a `beam-index serve` of OUT runs "
                        "on this host (by default it answers: the same hits, no index to open)")
    search.add_argument("--verbose", "-v", action="store_true",
                        help="say whether a running server answered, and why not")
    add_endpoint_flags(search.add_argument_group(
        "a remote embedder's endpoint (an index made with openai or voyage; never taken from "
        "the index, whose copy must match)"))

    serve = commands.add_parser(
        "serve", help="answer searches of OUT over HTTP (GET /search, GET /health) from one "
        "warm process, following each new snapshot")
    _add_served_index(serve)
    serve.add_argument("--host", default=DEFAULT_HOST,
                       help="address to listen on (default: %(default)s, this machine only)")
    serve.add_argument("--port", type=int, default=DEFAULT_PORT,
                       help="port (default: %(default)s; 0: one the system picks)")
    serve.add_argument("--allow-remote", action="store_true",
                       help="allow a --host beyond this machine (needs --token-env)")
    serve.add_argument("--token-env", metavar="VAR",
                       help="environment variable holding a token every request must send "
                       "as 'Authorization: Bearer TOKEN'")
    serve.add_argument("--verbose", "-v", action="store_true",
                       help="log each request, its query included")

    mcp = commands.add_parser(
        "mcp", help="offer OUT's search to a coding agent: an MCP server on stdin and stdout "
        "(tools search, read_lines, index_status)")
    _add_served_index(mcp)

    status = commands.add_parser(
        "status", help="how current OUT is: its live snapshot, when a run last caught up with "
        "SOURCE, whether a run holds it now")
    status.add_argument("output", help="index folder or URL")
    status.add_argument("--json", action="store_true", help="one JSON object")
    verify = commands.add_parser("verify", help="check the live snapshot against its manifest")
    verify.add_argument("output", help="index folder or URL")
    verify.add_argument("--source",
                        help="also report files missing from or stale in the index (a folder "
                        "or a URL)")
    verify.add_argument("--quick", action="store_true",
                        help="compare each file's size with the manifest, not its sha256 "
                        "(reads every shard all the same)")
    return parser


def _add_served_index(command: argparse.ArgumentParser) -> None:
    """OUT and the embedder endpoint of a resident server's index (serve, mcp)."""
    from .run.flags import add_endpoint_flags

    command.add_argument("output", help="index folder or URL (it may have no index yet)")
    add_endpoint_flags(command.add_argument_group(
        "a remote embedder's endpoint (an index made with openai or voyage)"))


def print_summary(stats, stream=sys.stderr) -> None:
    if stats.committed:
        headline = f"Committed snapshot {stats.snapshot_id}"
    elif stats.up_to_date:
        headline = f"Up to date: snapshot {stats.snapshot_id} unchanged"
    else:
        headline = "Nothing committed"
    no_metrics = ("  stats           from the pipeline's outputs: the runner reports no "
                  "metrics (embedding counters unknown)")
    lines = [
        headline,
        *([no_metrics] if stats.stats_source == "outputs" else []),
        (f"  plan            {stats.files_added} added, {stats.files_changed} changed, "
         f"{stats.files_unchanged} unchanged, {stats.files_deleted} deleted"),
        f"  files indexed   {stats.files_processed}",
        f"  files failed    {stats.failed_files}",
        f"  files skipped   {stats.skipped_files}"
        + (f"  ({', '.join(f'{k}: {v}' for k, v in stats.skipped_by_reason.items())})"
           if stats.skipped_by_reason else ""),
        f"  chunks          {stats.chunks_created} created, {stats.chunks_embedded} embedded",
        f"  bytes           {stats.total_size}",
        f"  time            {stats.duration:.1f} s ({stats.files_per_second:.1f} files/s)",
    ]
    if stats.legacy_encoding_files:
        lines.append(f"  legacy encoding {stats.legacy_encoding_files} files (cp1252/latin-1)")
    if stats.fixed_chunks_by_reason:
        reasons = ", ".join(f"{k}: {v}" for k, v in stats.fixed_chunks_by_reason.items())
        lines.append(f"  fixed chunks    {sum(stats.fixed_chunks_by_reason.values())} files "
                     f"({reasons})")
    for item in stats.stale[:20]:
        lines.append(f"  STALE {item['path']}: {item['reason']} (previous rows kept; retried "
                     "next run)")
    for failure in stats.failures[:20]:
        lines.append(f"  FAILED {failure['path']}: {failure['reason']}")
    if len(stats.failures) > 20:
        lines.append(f"  … and {len(stats.failures) - 20} more failures (see the manifest)")
    stream.write("\n".join(map(printable, lines)) + "\n")


def _write_stats(stats, path: Path | None) -> None:
    if path is not None:
        path.write_text(json.dumps(stats.to_dict(), indent=2) + "\n", encoding="utf-8")


def _run_inputs(args, beam_flags: list[str]):
    """(IndexSettings, RunRequest, Beam flags) of an `index` or `watch` command line."""
    from .run.indexing import RunRequest
    from .run.settings import IndexSettings

    if beam_flags:  # only flags need Beam to be checked: a plain local run plans without it
        from .run.options import unknown_flags

        unknown = unknown_flags(beam_flags)
        if unknown:
            raise UsageError(f"unknown option(s): {' '.join(unknown)}")
    try:
        settings = IndexSettings.from_options(args)
    except ValueError as exc:  # a value no option accepts, whichever check found it
        raise UsageError(str(exc)) from exc
    request = RunRequest(
        full=args.full, checksum=args.checksum, follow_symlinks=args.follow_symlinks,
        keep=args.keep, prune_grace_s=args.prune_grace_s, dry_run=args.dry_run,
        announce=_announce, quiet=args.quiet, local_paths_on_workers=args.local_paths_on_workers,
        spill=args.spill, git=args.git, journal=args.journal,
        journal_max_mb=args.journal_max_mb, journal_fsync=args.journal_fsync,
        ann_min_rows=args.ann_min_rows)
    if beam_flags and not args.verbose and not any(
            f.startswith("--default_sdk_harness_log_level") for f in beam_flags):
        # Worker processes (only flags start any) log each bundle's life at INFO; the
        # progress line says enough.
        beam_flags = [*beam_flags, "--default_sdk_harness_log_level=WARNING"]
    return settings, request, beam_flags


def watch_command(args, beam_flags: list[str]) -> int:
    from .run.watch import watch_index

    if args.dry_run:
        raise UsageError("watch has no --dry-run: `index --dry-run` shows the plan")
    settings, request, beam_flags = _run_inputs(args, beam_flags)
    stop = threading.Event()
    say = (lambda line: None) if args.quiet else _announce

    def on_sigint(signum, frame):
        if stop.is_set():  # a second Ctrl-C cancels the commit in progress
            raise KeyboardInterrupt
        stop.set()
        _announce("stopping after the commit in progress (Ctrl-C again to cancel it)")

    signal.signal(signal.SIGINT, on_sigint)
    try:
        watch_index(args.source, args.output, settings, request, pipeline_options=beam_flags,
                    stop=stop, say=say)
    finally:
        stop.set()
    return EXIT_OK


def run_index_command(args, beam_flags: list[str]) -> int:
    global _exit_without_teardown
    from .run.indexing import NothingCommitted, run_index
    from .run.runners import place

    settings, request, beam_flags = _run_inputs(args, beam_flags)
    try:
        _exit_without_teardown = place(beam_flags).direct
        stats = run_index(args.source, args.output, settings, request,
                          pipeline_options=beam_flags)
    except NothingCommitted as exc:
        print_summary(exc.stats)
        _write_stats(exc.stats, args.stats_json)
        raise
    if not args.dry_run:
        print_summary(stats)
    _write_stats(stats, args.stats_json)
    return EXIT_OK


def _announce(message: str) -> None:
    # On a terminal the progress bars take what is printed to stderr above them.
    print(printable(message, newlines=True), file=sys.stderr, flush=True)


def search_command(args) -> int:
    answer = _ask_server(args)
    if answer is None:
        answer = _search_files(args)
    hits, notes = answer
    for note in notes:
        print(f"beam-index: note: {printable(note)}", file=sys.stderr)
    if args.json:
        print(json_text(hits))
    elif args.files_only:
        for hit in hits:
            print(f"{printable(hit['path'])}  {hit['score']:.3f}")
    else:
        print_hits(hits, args.query, sys.stdout.isatty())
    return EXIT_OK


def _ask_server(args) -> tuple[list[dict], list[str]] | None:
    """A running `serve` of the same OUT answers, when there is one (the same answer, without
    opening the index); never with another embedder endpoint than the server's own."""
    if args.no_server or any(_endpoint(args).values()):
        return None
    from .serve.client import ask_server

    flags = [(name, "true") for name in ("regex", "case_sensitive", "fuzzy", "files_only",
                                         "exact") if getattr(args, name)]
    lists = [(name, value) for name, attr in (
        ("language", "language"), ("exclude_language", "exclude_language"),
        ("path_filter", "path_filter"), ("exclude_path", "exclude_path"))
        for value in getattr(args, attr)]
    score = [] if args.min_score is None else [("min_score", repr(args.min_score))]
    return ask_server(args.output, [("q", args.query), ("k", str(args.k)), ("mode", args.mode),
                                    *flags, *lists, *score])


def _search_files(args) -> tuple[list[dict], list[str]]:
    from .search import SearchRequest
    from .search.reader import Index

    request = SearchRequest(
        args.query, args.k, args.mode, languages=args.language,
        exclude_languages=args.exclude_language, path_filters=args.path_filter,
        exclude_paths=args.exclude_path, min_score=args.min_score, regex=args.regex,
        case_sensitive=args.case_sensitive, fuzzy=args.fuzzy, files_only=args.files_only,
        exact=args.exact)
    hits = Index.open(args.output, embedder_options=_endpoint(args)).search_request(request)
    return hits, request.notes


SNIPPET_LINES = 8


def print_hits(hits: list[dict], query: str, colour: bool) -> None:
    """Each hit as `path:lines  score`, then its snippet's first lines, numbered; on a
    terminal the query's words are highlighted."""
    import re

    words = sorted({w for w in re.findall(r"\w{2,}", query)}, key=len, reverse=True)
    pattern = re.compile("|".join(map(re.escape, words)), re.IGNORECASE) if words else None
    for hit in hits:
        print(f"{printable(hit['path'])}:{hit['line_start']}-{hit['line_end']}  "
              f"{hit['score']:.3f}")
        lines = hit["snippet"].split("\n")
        width = len(str(hit["line_start"] + len(lines)))
        for number, line in enumerate(lines[:SNIPPET_LINES], start=hit["line_start"]):
            line = printable(line[:160])
            if colour and pattern is not None:
                line = pattern.sub(lambda m: f"\x1b[1;33m{m.group(0)}\x1b[0m", line)
            print(f"  {number:>{width}} │ {line}")
        if len(lines) > SNIPPET_LINES:
            print(f"  {'':>{width}} │ … {len(lines) - SNIPPET_LINES} more lines")


def status_command(args) -> int:
    from .store.status import index_status

    status = index_status(args.output)
    if args.json:
        print(json_text(status))
        return EXIT_OK if status["snapshot"] else EXIT_FAILED
    if status["snapshot"] is None:
        _error(f"{args.output}: no index (no CURRENT snapshot)")
        return EXIT_FAILED
    running = status["run_in_progress"]
    lines = [
        f"snapshot        {status['snapshot']} (committed {status['committed_at']})",
        f"files, rows     {status['files']}, {status['rows']}",
        f"caught up       {status['caught_up_at'] or 'not since this snapshot was committed'}",
        "run in progress " + ("no" if running is None else
                              f"yes (pid {running.get('pid')} on {running.get('host')}, "
                              f"since {running.get('started')})"),
    ]
    print(printable("\n".join(lines), newlines=True))
    return EXIT_OK


def serve_command(args) -> int:
    from .serve import serve

    token = None
    if args.token_env:
        token = os.environ.get(args.token_env)
        if not token:
            raise UsageError(f"--token-env {args.token_env}: that variable is not set or empty")
    serve(args.output, args.host, args.port, allow_remote=args.allow_remote, token=token,
          token_env=args.token_env, embedder_options=_endpoint(args), access_log=args.verbose,
          say=_announce)
    return EXIT_OK


def mcp_command(args) -> int:
    from .serve.agents import run_mcp

    run_mcp(args.output, _endpoint(args))
    return EXIT_OK


def _endpoint(args) -> dict:
    """Where a remote embedder's queries go: the searcher's flags, never the index's copy."""
    return {"base_url": args.embedding_url, "model": args.embedding_model,
            "api_key_env": args.api_key_env}


def verify_command(args) -> int:
    from .store.verify import check_index

    problems, notes = check_index(args.output, args.source, quick=args.quick)
    for problem in problems:
        print(printable(problem))
    for note in notes:
        print(f"note: {printable(note)}", file=sys.stderr)
    if problems:
        print(f"beam-index: {len(problems)} problem(s) found in {args.output}", file=sys.stderr)
        return EXIT_FAILED
    print(f"{args.output}: sound", file=sys.stderr)
    return EXIT_OK


def _use_filesystem_flags(flags: list[str]) -> bool:
    """search/verify take Beam's filesystem flags (e.g. --s3_endpoint_url) for a remote OUT."""
    if not flags:
        return True
    from .run.options import unknown_flags
    from .source import storage

    bad = unknown_flags(flags) or [f for f in flags if not f.startswith("-")]
    if bad:
        _error(f"unknown option(s): {' '.join(bad)}")
        return False
    storage.use_options(flags)
    return True


def main(argv: list[str] | None = None) -> int:
    configure_logging(verbose=False)  # before anything imports apache_beam
    try:
        argv = expand_config(list(sys.argv[1:] if argv is None else argv))
    except ConfigError as exc:
        return _failed(exc)
    args, rest = build_parser().parse_known_args(argv)
    if getattr(args, "verbose", False):
        configure_logging(verbose=True)
    interrupted = threading.Event()

    def on_sigint(signum, frame):
        interrupted.set()
        raise KeyboardInterrupt

    # Beam re-raises a KeyboardInterrupt from inside a DoFn as a RuntimeError; the flag tells.
    signal.signal(signal.SIGINT, on_sigint)
    try:
        if args.command == "index":
            return run_index_command(args, rest)
        if args.command == "watch":
            return watch_command(args, rest)
        if not _use_filesystem_flags(rest):
            return EXIT_USAGE
        if args.command == "search":
            return search_command(args)
        if args.command == "status":
            return status_command(args)
        if args.command == "serve":
            return serve_command(args)
        if args.command == "mcp":
            return mcp_command(args)
        if args.command == "verify":
            return verify_command(args)
    except KeyboardInterrupt:
        interrupted.set()
    except Exception as exc:  # the one-line reason; the traceback only with --verbose
        if not interrupted.is_set():
            logging.getLogger(__name__).debug("run failed", exc_info=True)
            return _failed(exc)
    if interrupted.is_set():
        print("beam-index: interrupted; nothing committed", file=sys.stderr)
        return EXIT_INTERRUPTED
    return EXIT_USAGE


def _failed(exc: Exception) -> int:
    """The one place an exception becomes a message and an exit code. What the library raises
    on purpose says enough in its message; an OSError names a path; anything else is a bug or
    a runner's failure: its type and first line."""
    if isinstance(exc, BeamIndexError):
        _error(str(exc))
        return exc.exit_code
    if isinstance(exc, OSError):
        _error(str(exc))
        return EXIT_FAILED
    _error(f"{type(exc).__name__}: {_first_line(exc)}")
    return EXIT_FAILED


def _error(message: str) -> None:
    print(f"beam-index: error: {printable(message, newlines=True)}", file=sys.stderr)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else ""


# Set by `index` when its runner stops everything it started before run() returns.
_exit_without_teardown = False


def entry() -> None:
    """The `beam-index` program: main(), then exit.

    After `search`, `verify` and an `index` on the DirectRunner's engine the process ends
    without the interpreter's teardown, once its output is flushed: nothing they start needs
    cleaning up at exit, and the teardown costs time (0.15 s of a 6.8 s stdlib index: joining
    Beam's and the executors' threads, freeing every object) and can abort (pyarrow's native
    thread pools, std::terminate, exit status -6, apache/arrow#34314; seen here after reading
    from S3). An `index` on any other runner exits normally: Beam may have started a job
    server that its exit handlers stop.

    Otherwise the collector is frozen at exit rather than left to walk and free Beam's
    ~140,000 objects one by one (`python -c "import apache_beam"` exits in 150 ms, in 22 ms
    frozen): the program's own decision, so the library never makes it for its users.
    """
    atexit.register(gc.freeze)
    code = main()
    if len(sys.argv) > 1 and (sys.argv[1] in ("search", "verify", "status")
                              or _exit_without_teardown):
        logging.shutdown()
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except (OSError, ValueError):  # a closed pipe (… | head): nothing more to say
                pass
        os._exit(code)
    sys.exit(code)


if __name__ == "__main__":
    entry()
