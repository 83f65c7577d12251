"""One benchmark command: prints tables and writes JSON.

    python -m benchmarks.run [--corpus PATH] [--repeat 3] [--json PATH] [--reindex] [--all] …

By default: the comparison of the sequential and thread-pool designs with the Beam pipeline
on the same work (benchmarks/compare.py), the hashing pipeline on the corpus scaled ×1, ×2,
×4, and chunking one 10 MB file. Options add the re-index scenarios, the compatibility face,
embedder-alone and concurrency runs, and search.

Without --corpus the corpus is the running interpreter's standard library (every `.py` file,
site-packages excluded). Either way the corpus is copied once into a temporary folder (the
re-index scenarios edit files). Every run is a child process into a fresh output folder; every
figure is the median of `--repeat` runs unless a table says otherwise; peak RSS is the child's
own (wait4).
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import sysconfig
import tempfile
import time
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

from beam_pipeline.cli import configure_logging

from .compare import EMBEDDERS, compare, sample_corpus
from .costs import costs, print_costs


@dataclass(frozen=True)
class Scenario:
    name: str
    args: tuple[str, ...] = ()
    extended: bool = False  # only with --all
    # "full": index into an empty folder. "reindex-N%": index once (untimed), edit N % of the
    # files, then time the re-index (N = 0: nothing changed).
    mode: str = "full"


# Full builds first: the re-index scenarios edit the corpus.
SCENARIOS = (
    Scenario("beam in-memory (hashing)"),
    Scenario("beam multi_threading (hashing)", ("--direct_running_mode=multi_threading",),
             extended=True),
    Scenario("beam multi_processing x2 (hashing)",
             ("--direct_running_mode=multi_processing", "--direct_num_workers=2"), extended=True),
    Scenario("re-index, nothing changed", mode="reindex-0%"),
    Scenario("re-index, 1% of files touched", mode="reindex-1%"),
)
FIGURES = ("files", "chunks", "MB", "wall_s", "files_per_s", "chunks_per_s", "peak_rss_MB",
           "embed_batches")


def stdlib_corpus(target: Path, limit: int | None) -> tuple[int, int]:
    """Copy the standard library's .py files (no site-packages) into target; (files, bytes)."""
    stdlib = Path(sysconfig.get_paths()["stdlib"])
    files = sorted(
        p for p in stdlib.rglob("*.py")
        if not {"site-packages", "dist-packages"} & set(p.relative_to(stdlib).parts)
    )[:limit]
    size = 0
    for path in files:
        dest = target / path.relative_to(stdlib)
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, dest)
        size += dest.stat().st_size
    return len(files), size


def scaled_corpus(corpus: Path, target: Path, factor: int) -> None:
    """`factor` copies of the corpus side by side (copy1/, copy2/, …): the same files, so the
    cost per MB can be compared across sizes."""
    for i in range(1, factor + 1):
        shutil.copytree(corpus, target / f"copy{i}", symlinks=True)


def scale_benchmark(corpus: Path, factors: list[int], extra: list[str]) -> list[dict]:
    """One full in-memory run on each scaled copy: how wall time and peak RSS grow."""
    rows = []
    for factor in factors:
        with tempfile.TemporaryDirectory(prefix=f"beam-x{factor}-") as tmp:
            scaled_corpus(corpus, Path(tmp), factor)
            run = run_once(Path(tmp), Scenario(f"x{factor}"), extra)
        rows.append({"factor": factor, **run, "s_per_MB": run["wall_s"] / run["MB"],
                     "rss_MB_per_1000_files": 1000 * run["peak_rss_MB"] / run["files"]})
        print(f"  x{factor}: {run['wall_s']:.1f} s, {run['peak_rss_MB']:.0f} MB peak",
              file=sys.stderr)
    base = rows[0] if rows else None
    for row in rows:
        row["s_per_MB_vs_x1"] = row["s_per_MB"] / base["s_per_MB"]
        row["rss_growth_vs_corpus_growth"] = (
            (row["peak_rss_MB"] / base["peak_rss_MB"]) / (row["MB"] / base["MB"]))
    return rows


def touch_share(corpus: Path, percent: int) -> int:
    """Edit every (100/percent)-th file (a line appended, a new mtime); returns the count."""
    files = sorted(p for p in corpus.rglob("*") if p.is_file())
    chosen = files[::max(1, round(100 / percent))] if percent else []
    for path in chosen:
        st = path.stat()
        with open(path, "a", encoding="utf-8") as fh:
            fh.write("\n# edited by the benchmark\n")
        os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))
    return len(chosen)


def run_once(corpus: Path, scenario: Scenario, extra: list[str]) -> dict:
    with tempfile.TemporaryDirectory(prefix="beam-bench-") as tmp:
        stats_path = Path(tmp) / "stats.json"
        cmd = [sys.executable, "-m", "beam_pipeline", "index", str(corpus), "--output",
               str(Path(tmp) / "out"), "--stats-json", str(stats_path), "-q",
               *scenario.args, *extra]
        if scenario.mode.startswith("reindex-"):
            subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            touch_share(corpus, int(scenario.mode.removeprefix("reindex-").rstrip("%")))
        stats, wall, peak = timed_index(cmd, stats_path, scenario.name)
    return {
        "embed_batches": stats["embed_batches"],
        "files": stats["files_processed"],
        "chunks": stats["chunks_created"],
        "MB": stats["total_size"] / 1e6,
        "wall_s": wall,
        "files_per_s": stats["files_processed"] / wall,
        "chunks_per_s": stats["chunks_created"] / wall,
        "peak_rss_MB": peak,
    }


# Linux records a process's peak RSS across exec, so a child forked from a large process (one
# that has loaded indexes or a model) reports the parent's size as its own peak. The command is
# started from a fresh small interpreter instead, which reports its child's peak on stdout.
_PEAK = ("import os, subprocess, sys\n"
         "child = subprocess.Popen(sys.argv[1:], stdout=subprocess.DEVNULL)\n"
         "_, status, usage = os.wait4(child.pid, 0)\n"
         "print(usage.ru_maxrss / 1024)\n"
         "sys.exit(os.waitstatus_to_exitcode(status))\n")


def timed_index(cmd: list[str], stats_path: Path, name: str) -> tuple[dict, float, float]:
    """Run an index command in a process of its own: (its --stats-json, wall seconds, peak
    RSS MB of the process alone). Exits with the command's stderr when it fails."""
    start = time.perf_counter()
    child = subprocess.run([sys.executable, "-S", "-c", _PEAK, *cmd], capture_output=True,
                           check=False)
    wall = time.perf_counter() - start
    if child.returncode != 0:
        sys.stderr.write(child.stderr.decode(errors="replace"))
        raise SystemExit(f"{name}: exit status {child.returncode}: {' '.join(cmd)}")
    return json.loads(stats_path.read_text()), wall, float(child.stdout)


def search_benchmark(rows: int, queries: int = 5) -> dict:
    """Time `Index.open(...).search` over a synthetic snapshot of `rows` random unit vectors."""
    import numpy as np
    import pyarrow as pa

    from beam_pipeline.layout.schema import CURRENT_FILE, FORMAT_VERSION, SNAPSHOTS_DIR, row_schema
    from beam_pipeline.search import Index
    from beam_pipeline.store.write import DEFAULT_ROWS_PER_SHARD, write_table

    dim, per_shard = 384, DEFAULT_ROWS_PER_SHARD
    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory(prefix="beam-search-") as tmp:
        snapshot = Path(tmp) / SNAPSHOTS_DIR / "synthetic"
        snapshot.mkdir(parents=True)
        shards = []
        for start in range(0, rows, per_shard):
            n = min(per_shard, rows - start)
            vectors = rng.standard_normal((n, dim), dtype=np.float32)
            vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
            ids = [f"{start + i:032x}" for i in range(n)]
            columns = {
                "id": ids, "path": [f"src/file{(start + i) // 10}.py" for i in range(n)],
                "chunk_index": [(start + i) % 10 for i in range(n)],
                "total_chunks": [10] * n, "line_start": [1] * n, "line_end": [20] * n,
                "char_start": [0] * n, "char_end": [1000] * n, "language": ["python"] * n,
                "file_hash": ["0" * 64] * n, "file_size": [10_000] * n,
                "content": [f"chunk {start + i}" for i in range(n)],
                "vector": pa.FixedSizeListArray.from_arrays(pa.array(vectors.reshape(-1)), dim),
            }
            name = f"part-{len(shards):05d}.parquet"
            write_table(pa.table(columns, schema=row_schema(dim)), str(snapshot / name))
            shards.append({"path": name, "rows": n})
        manifest = {"format_version": FORMAT_VERSION, "snapshot_id": "synthetic",
                    "fingerprint": {"embedder": {"name": "hashing", "model": "code-tokens-v1",
                                                 "dim": dim}},
                    "shards": shards}
        (snapshot / "manifest.json").write_text(json.dumps(manifest))
        (Path(tmp) / CURRENT_FILE).write_text("synthetic\n")
        start = time.perf_counter()
        index = Index.open(tmp)
        index.search("warm up: loads the vectors once", k=10)
        load_s = time.perf_counter() - start
        timings = []
        for i in range(queries):
            start = time.perf_counter()
            index.search(f"parse json config file {i}", k=10)
            timings.append(time.perf_counter() - start)
        start = time.perf_counter()
        Index.open(tmp).search("a new process: the vector cache is memory-mapped", k=10)
        cached_s = time.perf_counter() - start
    return {"rows": rows, "load_and_first_query_s": load_s, "cached_open_and_query_s": cached_s,
            "query_s_median": statistics.median(timings), "query_s_all": timings}


def face_benchmark(corpus: Path) -> dict:
    """The compatibility face on the corpus: a full run, then a run cancelled half-way."""
    from beam_pipeline import HighThroughputProcessor

    files = sorted(str(p.relative_to(corpus)) for p in corpus.rglob("*.py"))
    figures = {}
    with tempfile.TemporaryDirectory(prefix="beam-face-") as tmp:
        for label, cancel_at in (("full", None), ("cancelled", len(files) // 2)):
            processor = HighThroughputProcessor(corpus, Path(tmp) / label)
            times: list[float] = []
            marks: dict[str, float] = {}

            def callback(current, total, path, info=None, concurrent_files=None,
                         slot_tracker=None, processor=processor, times=times, marks=marks,
                         cancel_at=cancel_at):
                times.append(time.perf_counter())
                if cancel_at is not None and total and current >= cancel_at and not marks:
                    marks["cancel"] = time.perf_counter()
                    processor.request_cancellation()

            start = time.perf_counter()
            stats = processor.process_files_high_throughput(files, 2, 64, callback)
            end = time.perf_counter()
            gaps = [b - a for a, b in itertools.pairwise(times)]
            figures[label] = {
                "files": len(files), "wall_s": end - start,
                "first_queued_s": times[0] - start,
                "all_queued_s": times[len(files) - 1] - start,
                "longest_gap_s": max(gaps) if gaps else 0.0,
                "files_processed": stats.files_processed, "cancelled": stats.cancelled,
                "cancel_to_return_s": end - marks["cancel"] if marks else None,
            }
    return figures


def remote_benchmark(corpus: Path, latency: float, batch: int, threads: tuple[int, ...],
                     sample: int) -> list[dict]:
    """Pipeline throughput against the fake server vs the limit threads × batch / latency."""
    from beam_pipeline.testing.fake_embeddings import FakeEmbeddingServer

    rows = []
    with tempfile.TemporaryDirectory(prefix="beam-remote-") as tmp, \
            FakeEmbeddingServer(384) as server:
        sample_dir = Path(tmp) / "sample"
        sample_corpus(corpus, sample_dir, sample)
        server.latency = latency
        for n in threads:
            run = run_once(sample_dir, Scenario(f"openai x{n}", (
                "--embedder", "openai", "--embedding-url", server.url, "--embedding-model",
                "fake", "--embedding-dim", "384", "--batch-size", str(batch),
                "--embed-concurrency", str(n))), [])
            limit = n * batch / latency
            rows.append({"threads": n, "chunks": run["chunks"], "wall_s": run["wall_s"],
                         "chunks_per_s": run["chunks_per_s"], "limit_chunks_per_s": limit,
                         "fraction_of_limit": run["chunks_per_s"] / limit})
    return rows


def machine() -> dict:
    cpu = ""
    try:
        cpu = next(line.split(":", 1)[1].strip()
                   for line in Path("/proc/cpuinfo").read_text().splitlines()
                   if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return {"platform": platform.platform(), "cpus": os.cpu_count(), "cpu_model": cpu,
            "python": platform.python_version()}


def versions() -> dict:
    out = {}
    for name in ("apache-beam", "pyarrow", "numpy", "beam-pipeline"):
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    return out


def write_report(path: Path, module: str, argv: list[str] | None, figures: dict) -> None:
    """The JSON a benchmark leaves: its command, the machine, the versions and its figures."""
    report = {"command": [sys.executable, "-m", module, *(argv or sys.argv[1:])],
              "machine": machine(), "versions": versions(), **figures}
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {path}", file=sys.stderr)


def _log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def chunk_big_file(corpus: Path, size: int = 10_000_000) -> dict[str, float]:
    """Seconds to decode and chunk one 10 MB file with the default chunker: real code (the
    corpus repeated) and one single line (the replaced chunker's line numbering was quadratic:
    7 s for 4 MB; the syntax chunker parsed a minified line for 7 s until issue 35, which this
    figure did not see while it timed the fixed-size chunker alone)."""
    from beam_pipeline.chunking import DEFAULT_CHUNK_SIZE, decode_source, default_overlap
    from beam_pipeline.chunking.cut import cut
    from beam_pipeline.source.text import DEFAULT_CHUNKER, ChunkerConfig

    config = ChunkerConfig(str(corpus), DEFAULT_CHUNK_SIZE, default_overlap(DEFAULT_CHUNK_SIZE),
                           2 * size, chunker=DEFAULT_CHUNKER)
    code = b"".join(p.read_bytes() for p in sorted(corpus.rglob("*.py")))
    code = (code * (size // max(1, len(code)) + 1))[:size]
    code = code[:code.rfind(b"\n") + 1]  # whole lines: a cut line would not parse
    timings = {}
    for label, path, data in (("code", "big.py", code),
                              ("one line", "bundle.min.js", b"x = 1; " * (size // 7))):
        start = time.perf_counter()
        cut(config, path, decode_source(data).text)
        timings[label] = time.perf_counter() - start
    return timings


def print_comparison(comparison: dict) -> None:
    columns = ("files_per_s", "chunks_per_s", "MB_per_s", "wall_s", "peak_rss_MB",
               "first_progress_s", "vs_embedder_alone", "of_limit")
    header = f"{'embedder':9}{'corpus':11}{'shape':11}{'runs':>5}" + "".join(
        f"{c:>19}" for c in columns)
    print(f"{comparison['threads']} threads, batch {comparison['batch_size']}")
    print(header)
    print("-" * len(header))
    for row in comparison["rows"]:
        med = row["median"]
        print(f"{row['embedder']:9}{row['corpus']:11}{row['shape']:11}{row['repeat']:>5}" + "".join(
            f"{med[c]:>19.2f}" if med.get(c) is not None else f"{'-':>19}" for c in columns))
    for name, item in comparison["ratios"].items():
        value = item["value"]
        verdict = "n/a" if value is None else ("met" if value >= item["target"] else "MISSED")
        shown = "-" if value is None else f"{value:.2f}"
        print(f"{name}: {shown} (target ≥ {item['target']}) {verdict}")


def print_table(results: dict) -> None:
    header = f"{'scenario':38}" + "".join(f"{f:>14}" for f in FIGURES)
    print(header)
    print("-" * len(header))
    for name, result in results.items():
        med = result["median"]
        print(f"{name:38}" + "".join(
            f"{med[f]:>14.0f}" if f in ("files", "chunks", "embed_batches")
            else f"{med[f]:>14.2f}"
            for f in FIGURES))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.run", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--corpus", type=Path, help="folder to index (default: the stdlib)")
    parser.add_argument("--limit", type=int, help="stdlib corpus: only the first N files")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--reindex", action="store_true",
                        help="also the full / re-index scenarios through the CLI")
    parser.add_argument("--all", action="store_true",
                        help="also minilm's thread-pool shape (90 s more) and, with --reindex, "
                        "the multi_threading and multi_processing runs")
    parser.add_argument("--json", type=Path, default=Path("benchmarks/results/latest.json"))
    parser.add_argument("--face", action="store_true",
                        help="also time the compatibility face (queue, gaps, cancellation)")
    parser.add_argument("--embedders", action="store_true",
                        help="also the pipeline against the fake server at 100 ms per call "
                        "with 1/4/8 requests in flight, as a share of the limit")
    parser.add_argument("--scales", default="1,2,4", metavar="F,F,…",
                        help="one full in-memory run on the corpus copied F times side by side, "
                        "for each F: growth of time and memory (default: %(default)s; "
                        "'' skips it)")
    parser.add_argument("--no-compare", dest="compare", action="store_false",
                        help="skip the sequential / threadpool / beam comparison")
    parser.add_argument("--compare-embedders", default=",".join(EMBEDDERS), metavar="E,E,…",
                        help="embedders of the comparison (default: %(default)s)")
    parser.add_argument("--search-rows", type=int, default=0, metavar="N",
                        help="also time search over a synthetic snapshot of N rows "
                        "(e.g. 1000000); 0 skips it")
    parser.add_argument("--costs", action="store_true",
                        help="also what a run costs beyond embedding (benchmarks/costs.py): "
                        "search, up-to-date and 1 %% re-index walls against a bare "
                        "numpy+pyarrow import, with and without git, on the corpus, ×8 and a "
                        "tree of many small files; remote per-call cost; resume after a kill")
    parser.add_argument("--costs-scale", type=int, default=8, metavar="F",
                        help="--costs: the larger tree is the corpus ×F (default: %(default)s)")
    parser.add_argument("--small-files", type=int, default=100_000, metavar="N",
                        help="--costs: files of the many-small-files tree (default: "
                        "%(default)s; 0 skips it)")
    args, extra = parser.parse_known_args(argv)
    configure_logging(verbose=False)  # hide Beam's import-time noise in the search benchmark

    with tempfile.TemporaryDirectory(prefix="beam-corpus-") as tmp:
        copy_start = time.perf_counter()
        corpus = Path(tmp) / "corpus"
        if args.corpus:
            # A copy: the re-index scenarios edit files, and must never touch the user's tree.
            shutil.copytree(args.corpus, corpus, symlinks=True)
            listed = [p for p in corpus.rglob("*") if p.is_file() and not p.is_symlink()]
            files, size = len(listed), sum(p.stat().st_size for p in listed)
        else:
            files, size = stdlib_corpus(corpus, args.limit)
        print(f"corpus: {files} files, {size / 1e6:.1f} MB (copied in "
              f"{time.perf_counter() - copy_start:.1f} s)", file=sys.stderr)
        comparison = (compare(corpus, args.repeat, log=_log,
                              embedders=tuple(args.compare_embedders.split(",")),
                              full=args.all)
                      if args.compare else None)
        results = {}
        for scenario in SCENARIOS if args.reindex else ():
            if scenario.extended and not args.all:
                continue
            runs = []
            for i in range(args.repeat):
                runs.append(run_once(corpus, scenario, extra))
                print(f"  {scenario.name} run {i + 1}/{args.repeat}: "
                      f"{runs[-1]['wall_s']:.1f} s", file=sys.stderr)
            median = {f: statistics.median(r[f] for r in runs) for f in FIGURES}
            results[scenario.name] = {"args": list(scenario.args), "mode": scenario.mode,
                                      "runs": runs, "median": median}
        full = results.get(SCENARIOS[0].name)
        for result in results.values():
            if full and result["mode"] != "full":
                result["wall_vs_full"] = result["median"]["wall_s"] / full["median"]["wall_s"]

        factors = [int(f) for f in args.scales.split(",") if f.strip()]
        scales = scale_benchmark(corpus, factors, extra) if factors else None
        big_file = chunk_big_file(corpus)
        # In-process, so after the child-process scenarios (a fork inherits the parent's RSS).
        face = face_benchmark(corpus) if args.face else None
        cost_figures = (costs(corpus, args.repeat, args.costs_scale, args.small_files, _log)
                        if args.costs else None)
        embedders = None
        if args.embedders:
            embedders = {"remote_100ms": remote_benchmark(corpus, 0.1, 16, (1, 4, 8), 10_000)}
    search = search_benchmark(args.search_rows) if args.search_rows else None
    if comparison:
        print_comparison(comparison)
    if results:
        print_table(results)
    if cost_figures:
        print_costs(cost_figures)
    for label, fig in (face or {}).items():
        print(f"face ({label}): {fig['files']} files, first Queued after "
              f"{fig['first_queued_s'] * 1000:.1f} ms, all queued after "
              f"{fig['all_queued_s'] * 1000:.0f} ms, longest gap between callbacks "
              f"{fig['longest_gap_s']:.2f} s, wall {fig['wall_s']:.1f} s"
              + (f", request_cancellation → return {fig['cancel_to_return_s']:.2f} s "
                 f"({fig['files_processed']} files done)" if fig["cancel_to_return_s"] else ""))
    for row in (embedders or {}).get("remote_100ms", []):
        print(f"fake server 100 ms, {row['threads']} threads: {row['chunks_per_s']:.0f} "
              f"chunks/s = {row['fraction_of_limit']:.2f} of the {row['limit_chunks_per_s']:.0f} "
              "chunks/s limit")
    for row in scales or []:
        print(f"x{row['factor']}: {row['files']} files, {row['MB']:.0f} MB, {row['wall_s']:.1f} s, "
              f"{row['s_per_MB']:.3f} s/MB ({row['s_per_MB_vs_x1']:.2f} of x1), peak RSS "
              f"{row['peak_rss_MB']:.0f} MB ({row['rss_MB_per_1000_files']:.0f} MB per 1,000 "
              f"files; RSS growth / corpus growth {row['rss_growth_vs_corpus_growth']:.2f})")
    for label, seconds in big_file.items():
        print(f"chunking one 10 MB file ({label}): {seconds:.2f} s")
    if search:
        print(f"search over {search['rows']:,} rows: load + first query "
              f"{search['load_and_first_query_s']:.2f} s (with the vector cache: "
              f"{search['cached_open_and_query_s']:.2f} s), then a query in "
              f"{search['query_s_median'] * 1000:.0f} ms (median of "
              f"{len(search['query_s_all'])})")
    for name, result in results.items():
        if "wall_vs_full" in result:
            print(f"{name}: {100 * result['wall_vs_full']:.1f} % of the full run's wall time")
    write_report(args.json, "benchmarks.run", argv, {
        "corpus": {"path": str(args.corpus or "stdlib"), "files": files, "bytes": size},
        "repeat": args.repeat,
        "scenarios": results,
        "search": search,
        "face": face,
        "embedders": embedders,
        "scales": scales,
        "comparison": comparison,
        "chunk_10MB_s": big_file,
        "costs": cost_figures,
    })
    return 0


if __name__ == "__main__":
    sys.exit(main())
