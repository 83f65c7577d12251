"""Search speed at scale (issue 15, part 6).

    python -m benchmarks.search_scale [--index OUT] [--rows 1000000,5000000]
                                      [--ann-rows 1000000] [--repeat 7]

- `--index OUT`: a real index (README command 1 makes one of the standard library and its
  site-packages). One query per mode (semantic, fts, hybrid), with and without filters
  (`--language python --exclude-path '**/tests/**'`), timed in one process after the index is
  loaded: medians over a fixed query list. Then the whole `search` process against a bare
  `python -c "import numpy, pyarrow.parquet"`, run alternately (benchmarks/costs.py).
- `--rows`: exact vector ranking (`search.top_rows`, what `--semantic` runs) over synthetic
  rows of 384 float32 dimensions, in memory: a query over all rows, over rows a filter keeps
  (10 %) and over a few rows gathered first (1,000: what a narrow filter leaves).
- `--ann-rows` (and `--ann-index`: over the real index's own vectors): the approximate index
  (beam_pipeline/ann.py, as search uses it) over the same kind of rows: build time, size,
  query time and recall@10 against exact ranking, over all rows and a 10 % filter.

Synthetic rows are clustered (points around 2,000 centres, as chunks of related code are),
because uniformly random vectors in 384 dimensions have no neighbours worth the name and
would make any approximate index look worse than it is on real embeddings.

Prints a table and writes benchmarks/results/search_scale.json.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from beam_pipeline.search import top_rows
from benchmarks.costs import SEARCH, paired
from benchmarks.run import write_report

DIM = 384
QUERIES = ["parse json config file", "HTTPServer", "read_config",
           "how are threads joined at shutdown", "ssl certificate verification",
           "retry with exponential backoff", "TemporaryDirectory", "decode base64 string",
           "compile a regular expression", "walk a directory tree"]
FILTERS = {"languages": ("python",), "exclude_paths": ("**/tests/**",)}
CENTRES = 2_000
BLOCK = 250_000


def _median_ms(call, queries) -> float:
    timings = []
    for query in queries:
        start = time.perf_counter()
        call(query)
        timings.append(time.perf_counter() - start)
    return 1000 * statistics.median(timings)


def real_index(out: Path, repeat: int) -> dict:
    from beam_pipeline.search import Index

    start = time.perf_counter()
    index = Index.open(out)
    for mode in ("semantic", "fts"):
        index.search("load the vectors, the rows and the lexical index", 10, mode=mode)
    figures = {"rows": int(index.manifest["counts"]["rows"]),
               "load_s": time.perf_counter() - start, "query_ms": {}}
    for mode in ("semantic", "fts", "hybrid"):
        for label, options in (("all", {}), ("filtered", FILTERS)):
            figures["query_ms"][f"{mode}/{label}"] = _median_ms(
                lambda q, mode=mode, options=options: index.search(q, 10, mode=mode, **options),
                QUERIES)
    figures["process"] = paired([*SEARCH, str(out), QUERIES[0], "-k", "10"], repeat)
    return figures


def clustered(rows: int, seed: int = 0) -> np.ndarray:
    """`rows` unit vectors around CENTRES random centres."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((CENTRES, DIM), dtype=np.float32)
    matrix = np.empty((rows, DIM), dtype=np.float32)
    for start in range(0, rows, BLOCK):
        n = min(BLOCK, rows - start)
        block = rng.standard_normal((n, DIM), dtype=np.float32)
        block += 2.0 * centres[rng.integers(0, CENTRES, n)]
        block /= np.linalg.norm(block, axis=1, keepdims=True)
        matrix[start:start + n] = block
    return matrix


def queries_near(matrix: np.ndarray, count: int, seed: int = 1) -> np.ndarray:
    rng = np.random.default_rng(seed)
    picked = matrix[rng.integers(0, len(matrix), count)]
    picked = picked + 0.05 * rng.standard_normal(picked.shape, dtype=np.float32)
    return picked / np.linalg.norm(picked, axis=1, keepdims=True)


def brute_force(rows: int, queries: int = 10) -> dict:
    matrix = clustered(rows)
    asked = queries_near(matrix, queries)
    rng = np.random.default_rng(2)
    tenth = rng.random(rows) < 0.1
    few = np.sort(rng.choice(rows, 1_000, replace=False))
    figures = {
        "rows": rows,
        "all_ms": _median_ms(lambda q: top_rows(matrix, q, 10), asked),
        "filter_10pct_ms": _median_ms(lambda q: top_rows(matrix, q, 10, tenth), asked),
        "gathered_1000_ms": _median_ms(lambda q: top_rows(matrix[few], q, 10), asked),
        "matrix_MB": matrix.nbytes / 1e6,
    }
    return figures


def approximate(matrix: np.ndarray, label: str, queries: int = 50) -> dict:
    """The approximate index as search uses it (beam_pipeline/ann.py: its parameters, the
    graph's candidates scored exactly): build time, size, query time and recall@10 against
    exact ranking, over all rows and with a filter that keeps 10 % of them."""
    from beam_pipeline.search import ann

    rows = len(matrix)
    asked = queries_near(matrix, queries)
    tenth = np.random.default_rng(2).random(rows) < 0.1
    graph = ann.new_graph(matrix.shape[1])
    start = time.perf_counter()
    graph.add(np.arange(rows, dtype=np.uint64), matrix)
    build_s = time.perf_counter() - start
    with tempfile.TemporaryDirectory(prefix="beam-ann-") as tmp:
        path = Path(tmp) / ann.ANN_FILE
        graph.save(str(path))
        size_mb = path.stat().st_size / 1e6
    index = ann.ApproximateIndex(graph, ann.key_table(np.arange(rows, dtype=np.uint64)))
    figures = {"rows": rows, "vectors": label, "library": "usearch (HNSW)", "dtype": ann.DTYPE,
               "connectivity": ann.CONNECTIVITY, "expansion_add": ann.EXPANSION_ADD,
               "build_s": build_s, "size_MB": size_mb, "variants": []}
    for expansion in sorted({128, ann.EXPANSION_SEARCH}):
        index.expansion_search = expansion
        for name, allowed in (("all", None), ("filter_10pct", tenth)):
            found, timings = [], []
            for q in asked:
                start = time.perf_counter()
                found.append(index.rank(matrix, q, 10, allowed))
                timings.append(time.perf_counter() - start)
            figures["variants"].append({
                "expansion_search": expansion, "rows_ranked": name,
                "query_ms": 1000 * statistics.median(timings),
                "recall_at_10": statistics.mean(
                    _recall(hits, top_rows(matrix, q, 10, allowed))
                    for hits, q in zip(found, asked))})
    return figures


def _recall(found: list[tuple[int, float]], exact: list[tuple[int, float]]) -> float:
    """The share of the exact top 10 found. A row scoring at least the exact 10th counts:
    counting ids would miss rows tied with it (an index holds many identical chunks, licence
    headers and vendored copies, whose vectors are equal)."""
    bar = exact[-1][1] - 1e-6
    return sum(score >= bar for _, score in found) / len(exact)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.search_scale")
    parser.add_argument("--index", type=Path, help="a real index to time queries on")
    parser.add_argument("--rows", default="1000000,5000000",
                        help="synthetic row counts for exact ranking ('' skips)")
    parser.add_argument("--ann-rows", default="1000000",
                        help="synthetic row counts for the approximate index ('' skips)")
    parser.add_argument("--ann-index", action="store_true",
                        help="also the approximate index over --index's own vectors")
    parser.add_argument("--repeat", type=int, default=7, help="whole search processes")
    parser.add_argument("--json", type=Path,
                        default=Path(__file__).parent / "results" / "search_scale.json")
    args = parser.parse_args(argv)
    figures: dict = {}
    if args.index:
        real = figures["index"] = real_index(args.index, args.repeat)
        print(f"index of {real['rows']:,} rows: loaded in {real['load_s']:.2f} s")
        for key, ms in real["query_ms"].items():
            print(f"  {key:<20} {ms:7.1f} ms a query (median of {len(QUERIES)})")
        process = real["process"]
        print(f"  whole search process {process['wall_s']:.2f} s, "
              f"{process['vs_baseline']:.2f}x the bare import ({process['baseline_s']:.2f} s)")
    counts = [int(n) for n in args.rows.split(",") if n]
    figures["exact"] = [brute_force(n) for n in counts]
    for row in figures["exact"]:
        print(f"exact over {row['rows']:>9,} rows ({row['matrix_MB']:,.0f} MB): "
              f"{row['all_ms']:6.1f} ms; a 10 % filter {row['filter_10pct_ms']:6.1f} ms; "
              f"1,000 gathered rows {row['gathered_1000_ms']:5.2f} ms")
    figures["approximate"] = [approximate(clustered(int(n)), "synthetic")
                              for n in args.ann_rows.split(",") if n]
    if args.index and args.ann_index:
        from beam_pipeline.search import Index

        matrix = np.ascontiguousarray(Index.open(args.index)._rows[0])
        figures["approximate"].append(approximate(matrix, f"the index's ({args.index})"))
    for result in figures["approximate"]:
        print(f"{result['library']} over {result['rows']:,} {result['vectors']} rows, "
              f"{result['dtype']}: build {result['build_s']:.0f} s, {result['size_MB']:,.0f} MB")
        for v in result["variants"]:
            print(f"  ef {v['expansion_search']:>4}, {v['rows_ranked']:<12} "
                  f"{v['query_ms']:6.2f} ms a query, recall@10 {v['recall_at_10']:.3f}")
    write_report(args.json, "benchmarks.search_scale", argv, figures)
    return 0


if __name__ == "__main__":
    sys.exit(main())
