"""Time and peak memory of whole `beam-index index` processes on the shapes that stress them.

    python -m benchmarks.memory [--shapes long-line,x1,x4,x16,small] [--repeat N]
                                [--long-line-MB M] [--small-files N] [--json PATH]

- `long-line`: one minified JavaScript file of a single line (`var x=1+1+…+1;`, 10 MB by
  default), default chunker and embedder, `--max-file-size` above it. Issue 35's targets: at
  most 3.5 s for the whole process and 500 MB peak RSS (before the syntax chunker learned to
  leave minified code to the fixed-size one: 12.3 s and 2.2 GB).
- `x1`, `x4`, `x16`: the standard library's .py files, 1, 4 and 16 copies side by side (files
  and bytes scale alike): peak RSS should follow the largest file and the batches, not the
  tree, so it should grow far slower than the tree.
- `small`: 100,000 two-line .py files in 100 folders (`--small-files`). Target: 600 MB.

Each figure is the median of `--repeat` runs (the process tree's largest process: wait4);
prints a table and writes benchmarks/results/memory.json.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
from pathlib import Path

from benchmarks.run import Scenario, run_once, scaled_corpus, stdlib_corpus, write_report

SHAPES = ("long-line", "x1", "x4", "x16", "small")
# Issue 35's targets, for the shapes at their default sizes.
TARGETS = {("long line", 10_000_000): {"wall_s": 3.5, "peak_rss_MB": 500},
           ("small files", 100_000): {"peak_rss_MB": 600}}


def long_line_tree(target: Path, size: int) -> Path:
    """A folder holding one `size`-byte JavaScript file of one line."""
    target.mkdir(parents=True, exist_ok=True)
    terms = (size - len("var x=1;")) // 2
    (target / "bundle.min.js").write_text("var x=1" + "+1" * terms + ";", encoding="ascii")
    return target


def median_run(corpus: Path, name: str, size: int, args: tuple[str, ...], repeat: int) -> dict:
    runs = [run_once(corpus, Scenario(name, args), []) for _ in range(repeat)]
    row = {key: statistics.median(run[key] for run in runs)
           for key in ("wall_s", "peak_rss_MB", "chunks", "MB", "files")}
    row.update({"name": name, "runs": repeat,
                "wall_s_all": [run["wall_s"] for run in runs],
                "peak_rss_MB_all": [run["peak_rss_MB"] for run in runs]})
    for key, limit in TARGETS.get((name, size), {}).items():
        row.setdefault("targets", {})[key] = {"limit": limit, "met": row[key] <= limit}
    return row


def small_files_tree(target: Path, files: int) -> Path:
    """`files` two-line .py files, a thousand a folder."""
    for i in range(files):
        folder = target / f"d{i // 1000:03}"
        if i % 1000 == 0:
            folder.mkdir(parents=True, exist_ok=True)
        (folder / f"m{i % 1000:04}.py").write_text(f"def f_{i}(x):\n    return x + {i}\n")
    return target


def measure(shapes: tuple[str, ...], repeat: int, long_line_bytes: int, small_files: int,
            log=print) -> dict:
    rows = []
    with tempfile.TemporaryDirectory(prefix="beam-memory-") as tmp:
        base = Path(tmp)
        for shape in shapes:
            folder = base / shape
            if shape == "long-line":
                corpus = long_line_tree(folder, long_line_bytes)
                row = median_run(corpus, "long line", long_line_bytes,
                                 ("--max-file-size", str(2 * long_line_bytes)), repeat)
            elif shape == "small":
                corpus = small_files_tree(folder, small_files)
                row = median_run(corpus, "small files", small_files, (), repeat)
            else:
                factor = int(shape.removeprefix("x"))
                if not (base / "stdlib").exists():
                    stdlib_corpus(base / "stdlib", None)
                scaled_corpus(base / "stdlib", folder, factor)
                row = median_run(folder, f"stdlib x{factor}", factor, (), repeat)
            row["shape"] = shape
            rows.append(row)
            log(f"  {row['name']}: {row['wall_s']:.1f} s, {row['peak_rss_MB']:.0f} MB peak")
            shutil.rmtree(folder)
    scales = [row for row in rows if row["shape"].startswith("x")]
    for row in scales:  # how much faster the tree grows than the memory
        row["MB_vs_x1"] = row["MB"] / scales[0]["MB"]
        row["peak_rss_vs_x1"] = row["peak_rss_MB"] / scales[0]["peak_rss_MB"]
    return {"rows": rows}


def print_rows(result: dict) -> None:
    header = (f"{'shape':12} {'files':>7} {'MB':>6} {'chunks':>8} {'runs':>5} {'wall s':>8} "
              f"{'peak MB':>8} {'tree ×':>7} {'peak ×':>7}  targets")
    print(header)
    print("-" * len(header))
    for row in result["rows"]:
        targets = ", ".join(f"{key} ≤ {t['limit']} {'met' if t['met'] else 'MISSED'}"
                            for key, t in row.get("targets", {}).items())
        growth = (f"{row['MB_vs_x1']:>7.1f} {row['peak_rss_vs_x1']:>7.2f}" if "MB_vs_x1" in row
                  else f"{'':>7} {'':>7}")
        print(f"{row['name']:12} {row['files']:>7.0f} {row['MB']:>6.1f} {row['chunks']:>8.0f} "
              f"{row['runs']:>5} {row['wall_s']:>8.2f} {row['peak_rss_MB']:>8.0f} {growth}  "
              f"{targets}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.memory", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--shapes", default=",".join(SHAPES), metavar="S,S,…",
                        help="shapes to run (default: %(default)s)")
    parser.add_argument("--repeat", type=int, default=3, metavar="N")
    parser.add_argument("--small-files", type=int, default=100_000, metavar="N")
    parser.add_argument("--long-line-MB", type=float, default=10.0, metavar="M")
    parser.add_argument("--json", type=Path, default=Path("benchmarks/results/memory.json"))
    args = parser.parse_args(argv)
    result = measure(tuple(args.shapes.split(",")), args.repeat, int(args.long_line_MB * 1e6),
                     args.small_files, log=lambda line: print(line, file=sys.stderr))
    print_rows(result)
    write_report(args.json, "benchmarks.memory", argv, result)
    return 0 if all(t["met"] for row in result["rows"]
                    for t in row.get("targets", {}).values()) else 1


if __name__ == "__main__":
    raise SystemExit(main())
