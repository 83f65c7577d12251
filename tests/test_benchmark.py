"""The benchmark's baselines do the same work as the pipeline, and the command runs (no timing
is asserted here: performance is measured by `python -m benchmarks.run`, never in CI)."""

import json
import subprocess
import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from conftest import code_file, make_tree

from beam_pipeline import IndexSettings, run_index
from beam_pipeline.ann import EXPANSION_SEARCH
from beam_pipeline.index import Index
from beam_pipeline.sourcefile import DEFAULT_CHUNKER
from benchmarks import shapes

ROOT = Path(__file__).parent.parent


def _tree(root):
    return make_tree(root, {
        **{f"pkg/m{i}.py": code_file(f"m{i}", 15 + 10 * i) for i in range(5)},
        "README.md": "# Title\n\nSome words.\n" * 40,
        "empty.py": "",
    })


@pytest.mark.parametrize("shape", ["sequential", "threadpool"])
def test_baseline_shapes_write_the_pipelines_rows(tmp_path, shape, capsys):
    src = _tree(tmp_path / "src")
    files = sorted(str(p.relative_to(src)) for p in src.rglob("*") if p.is_file())
    (tmp_path / "files.txt").write_text("\n".join(files) + "\n")
    assert shapes.main([shape, str(src), str(tmp_path / "out"), "--files",
                        str(tmp_path / "files.txt"), "--threads", "3"]) == 0
    reported = json.loads(capsys.readouterr().out.splitlines()[-1])
    run_index(src, tmp_path / "index", IndexSettings.create())
    index = Index.open(tmp_path / "index")
    expected = pa.concat_tables(pq.read_table(index.shard_path(s)) for s in index.shards)
    written = pq.read_table(tmp_path / "out")
    assert written.sort_by("id").equals(expected.sort_by("id"))
    assert reported["files"] == len(files) and reported["chunks"] == expected.num_rows
    assert reported["first_progress_s"] is not None


def _benchmark(module: str, tmp_path, *args: str) -> tuple[subprocess.CompletedProcess, dict]:
    """Run `python -m module --corpus … --repeat 1 ARGS` on a small tree; its output and JSON."""
    corpus = _tree(tmp_path / "corpus")
    report = tmp_path / "report.json"
    done = subprocess.run(
        [sys.executable, "-m", module, "--corpus", str(corpus), "--repeat", "1", *args,
         "--json", str(report)], cwd=ROOT, capture_output=True, text=True, timeout=600,
        check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    return done, json.loads(report.read_text())


def test_the_benchmark_command_runs_and_reports_every_shape(tmp_path):
    done, data = _benchmark("benchmarks.run", tmp_path, "--scales", "1,2",
                            "--compare-embedders", "hashing,fake0")
    rows = data["comparison"]["rows"]
    assert {(r["embedder"], r["shape"]) for r in rows} == {
        (e, s) for e in ("hashing", "fake0") for s in ("sequential", "threadpool", "beam")
    } | {("hashing", "beam-mp")}
    by_corpus: dict = {}
    for row in rows:  # every shape did the same work on the same corpus
        by_corpus.setdefault(row["corpus"], set()).add(
            (row["median"]["files"], row["median"]["chunks"]))
    assert all(len(work) == 1 for work in by_corpus.values()), by_corpus
    assert [s["factor"] for s in data["scales"]] == [1, 2]
    assert data["scales"][1]["files"] == 2 * data["scales"][0]["files"]
    assert set(data["chunk_10MB_s"]) == {"code", "one line"}
    assert "hashing: best local beam / threadpool" in done.stdout


def test_the_capacity_benchmark_runs_and_reports_every_part(tmp_path):
    _, data = _benchmark("benchmarks.capacity", tmp_path, "--request-files", "4",
                         "--launcher-files", "20000")
    assert data["stages"]["files"] == 7 and data["stages"]["chunks"] > 7
    assert set(data["stages"]["seconds"]) == {
        "discover (local walk)", "read + hash + chunk", "embed (hashing)",
        "assemble (re-read, rows)", "write shards (zstd)"}
    assert data["shuffle"]["bytes_per_chunk"] > 384 * 4  # the vector, and its key
    assert data["launcher"]["files listed"] == 20000
    assert data["launcher"]["shards rewritten, 1% clustered"] < data["launcher"]["shards"]
    full = data["requests"]["full build"]
    # Three of the four have chunks: each is read, then re-read at assembly.
    assert full["files"] == 4 and full["requests"]["data GET"] >= 2 * 3
    assert set(data["spill"]) == {"spill files in local scratch", "the shuffle"}


def test_the_costs_benchmark_reports_every_figure(tmp_path):
    done, data = _benchmark("benchmarks.run", tmp_path, "--no-compare", "--scales", "",
                            "--costs", "--costs-scale", "2", "--small-files", "300")
    costs = data["costs"]
    assert set(costs) == {"x1", "x2", "many_files", "remote", "resume", "journal_write"}
    for tree in ("x1", "x2", "many_files"):
        for key in ("search", "up_to_date_git", "up_to_date_no_git", "one_percent_git",
                    "one_percent_no_git", "one_file"):
            assert costs[tree][key]["wall_s"] > 0 and costs[tree][key]["baseline_s"] > 0
    assert costs["many_files"]["files"] == 300
    assert costs["remote"]["calls"] >= 1 and costs["remote"]["per_call_s"] >= 0.1
    assert 0 < costs["resume"]["share_embedded_again"] <= 0.45
    assert "resume: killed at 60 %" in done.stdout


def test_the_quality_benchmark_scores_every_mode_and_guards_the_default(tmp_path):
    """The quality set over apache_beam: every answer file still defines what its query asks
    (the benchmark refuses otherwise), and the default search keeps its quality."""
    report = tmp_path / "quality.json"
    proc = subprocess.run([sys.executable, "-m", "benchmarks.quality", "--json", str(report)],
                          check=False, cwd=ROOT, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-2000:]
    data = json.loads(report.read_text())
    assert data["queries"] >= 40
    every = {(row["chunker"], row["mode"]): row for row in data["rows"]}
    assert set(every) == {(c, m) for c in ("fixed", "syntax") for m in ("semantic", "fts", "hybrid")}
    assert every[("syntax", "hybrid")]["fixed_chunk_files"] == {}  # all of it is Python
    rows = {mode: row for (chunker, mode), row in every.items() if chunker == DEFAULT_CHUNKER}
    # The default, measured 0.95 / 0.67 (README); the floors leave room for a changed Beam.
    assert rows["hybrid"]["recall_at_10"] >= 0.9 and rows["hybrid"]["mrr_at_10"] >= 0.6
    assert rows["fts"]["identifier"]["recall_at_10"] == 1.0
    assert "hybrid MRR@10" in proc.stdout


def test_the_search_scale_benchmark_times_every_mode_and_ranks_exactly(tmp_path):
    src = _tree(tmp_path / "src")
    run_index(src, tmp_path / "index")
    report = tmp_path / "report.json"
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks.search_scale", "--index", str(tmp_path / "index"),
         "--rows", "3000", "--ann-rows", "3000", "--repeat", "1", "--json", str(report)],
        cwd=ROOT, capture_output=True, text=True, timeout=600, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    data = json.loads(report.read_text())
    assert set(data["index"]["query_ms"]) == {f"{mode}/{kind}" for mode in
                                              ("semantic", "fts", "hybrid")
                                              for kind in ("all", "filtered")}
    assert data["index"]["rows"] == Index.open(tmp_path / "index").manifest["counts"]["rows"]
    assert data["index"]["process"]["wall_s"] > 0
    assert [row["rows"] for row in data["exact"]] == [3000]
    assert data["exact"][0]["matrix_MB"] == pytest.approx(3000 * 384 * 4 / 1e6)
    [graph] = data["approximate"]
    assert graph["rows"] == 3000 and graph["size_MB"] > 0
    shipped = {v["rows_ranked"]: v for v in graph["variants"]
               if v["expansion_search"] == EXPANSION_SEARCH}
    assert set(shipped) == {"all", "filter_10pct"}
    assert min(v["recall_at_10"] for v in shipped.values()) >= 0.9
