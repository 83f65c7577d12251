"""Serve latency: how fast a warm `beam-index serve` answers, alone and under 50 clients.

    python -m benchmarks.serve_latency [--index OUT] [--requests 300] [--clients 50]
                                       [--per-client 10] [--mode hybrid] [--json PATH]

Starts `beam-index serve OUT --port 0` as a user would (its own process), asks every question
of the quality set once to warm it, then times `--requests` searches one after another over
one kept-alive connection, then `--clients` threads at once, each with its own connection,
`--per-client` searches each. The questions are the quality set's 120 (benchmarks/data/),
cycled. Without `--index` it indexes the quality benchmark's copy of apache_beam first (1,406
files); the issue's figures are on README command 1's index (`--index ./index`). Prints the
table (p50, p99, max, errors; the targets are p50 ≤ 10 ms and p99 ≤ 50 ms alone, no error
under load) and writes benchmarks/results/serve_latency.json.
"""

from __future__ import annotations

import argparse
import http.client
import json
import re
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
from pathlib import Path

from .quality import TREES, copy_corpus
from .results_file import RESULTS, write_result

TARGET_P50_MS, TARGET_P99_MS = 10.0, 50.0  # issue 42, hybrid, alone


def questions() -> list[str]:
    return [item["query"] for tree in TREES.values() for item in tree.load_queries()]


def start(out: Path) -> tuple[subprocess.Popen, str, int]:
    process = subprocess.Popen([sys.executable, "-m", "beam_pipeline", "serve", str(out),
                                "--port", "0"], stdout=subprocess.DEVNULL,
                               stderr=subprocess.PIPE, text=True)
    for line in process.stderr:
        found = re.search(r"http://([^:/]+):(\d+)", line)
        if found:
            return process, found[1], int(found[2])
    raise RuntimeError("serve never said where it listens")


def timed(connection: http.client.HTTPConnection, query: str, mode: str) -> tuple[float, int]:
    """One search: (milliseconds, HTTP status; 0 for a failed connection)."""
    path = "/search?" + urllib.parse.urlencode({"q": query, "k": 10, "mode": mode})
    started = time.perf_counter()
    try:
        connection.request("GET", path)
        response = connection.getresponse()
        response.read()
        status = response.status
    except (OSError, http.client.HTTPException):
        connection.close()
        status = 0
    return (time.perf_counter() - started) * 1000, status


def summary(milliseconds: list[float], statuses: list[int]) -> dict:
    ordered = sorted(milliseconds)
    p99 = ordered[min(len(ordered) - 1, round(0.99 * (len(ordered) - 1)))]
    return {"requests": len(ordered), "p50_ms": round(statistics.median(ordered), 2),
            "p99_ms": round(p99, 2), "max_ms": round(ordered[-1], 2),
            "errors": sum(status != 200 for status in statuses)}


def measure(out: Path, requests: int, clients: int, per_client: int, mode: str) -> dict:
    asked = questions()
    process, host, port = start(out)
    try:
        connection = http.client.HTTPConnection(host, port, timeout=60)
        for query in asked:  # warm: every question once
            timed(connection, query, mode)
        alone = [timed(connection, asked[i % len(asked)], mode) for i in range(requests)]
        results: list[tuple[float, int]] = []
        lock = threading.Lock()

        def client(offset: int) -> None:
            own = http.client.HTTPConnection(host, port, timeout=60)
            mine = [timed(own, asked[(offset + i) % len(asked)], mode) for i in range(per_client)]
            with lock:
                results.extend(mine)

        threads = [threading.Thread(target=client, args=(n * 7,)) for n in range(clients)]
        started = time.perf_counter()
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        wall = time.perf_counter() - started
    finally:
        process.terminate()
        process.wait(60)
    one = summary(*zip(*alone))
    many = summary(*zip(*results))
    many["per_second"] = round(len(results) / wall, 1)
    return {"mode": mode, "alone": one, "concurrent": {"clients": clients, **many},
            "targets": {"p50_ms": TARGET_P50_MS, "p99_ms": TARGET_P99_MS},
            "met": one["p50_ms"] <= TARGET_P50_MS and one["p99_ms"] <= TARGET_P99_MS
            and many["errors"] == 0}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.serve_latency",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("--index", type=Path, help="an index folder (default: index a copy "
                        "of apache_beam first)")
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--per-client", type=int, default=10)
    parser.add_argument("--mode", default="hybrid", choices=["hybrid", "semantic", "fts"])
    parser.add_argument("--json", type=Path, default=RESULTS / "serve_latency.json")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="serve-latency-") as tmp:
        out = args.index
        if out is None:
            from beam_pipeline import run_index

            corpus, out = Path(tmp) / "corpus", Path(tmp) / "index"
            copy_corpus(TREES["apache_beam"], corpus)
            run_index(corpus, out, quiet=True)
        result = measure(out, args.requests, args.clients, args.per_client, args.mode)
        result["rows"] = json.loads(subprocess.run(
            [sys.executable, "-m", "beam_pipeline", "status", str(out), "--json"],
            capture_output=True, text=True, check=True).stdout)["rows"]
    print(f"| rows | mode | alone p50 / p99 / max ms | {result['concurrent']['clients']} "
          "clients p50 / p99 / max ms | errors | searches/s | targets met |")
    print("|---|---|---|---|---|---|---|")
    one, many = result["alone"], result["concurrent"]
    print(f"| {result['rows']:,} | {result['mode']} | {one['p50_ms']} / {one['p99_ms']} / "
          f"{one['max_ms']} | {many['p50_ms']} / {many['p99_ms']} / {many['max_ms']} | "
          f"{one['errors'] + many['errors']} | {many['per_second']} | "
          f"{'yes' if result['met'] else 'no'} |")
    write_result(result, args.json, "benchmarks.serve_latency", argv)
    return 0


if __name__ == "__main__":
    sys.exit(main())
