"""The benchmark's baselines do the same work as the pipeline, and the command runs (no timing
is asserted here: performance is measured by `python -m benchmarks.run`, never in CI)."""

import json
import re
import subprocess
import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from conftest import code_file, make_tree

from beam_pipeline import IndexSettings, run_index
from beam_pipeline.search import Index
from beam_pipeline.search.ann import EXPANSION_SEARCH
from beam_pipeline.source.text import DEFAULT_CHUNKER
from benchmarks import shapes

ROOT = Path(__file__).resolve().parents[2]


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


def test_the_question_set_is_mostly_natural_questions_over_two_trees():
    from benchmarks.quality import TREES

    queries = {name: tree.load_queries() for name, tree in TREES.items()}
    every = [item for found in queries.values() for item in found]
    assert len(queries) >= 2 and len(every) >= 100
    assert sum(item["kind"] == "natural" for item in every) >= 2 / 3 * len(every)
    for item in every:
        assert item["kind"] in ("natural", "identifier") and item["files"], item
        assert item["defines"].split()[0] in ("class", "def", "async"), item
        name = item["defines"].split()[-1].split("(")[0]
        if item["kind"] == "natural" and re.search(r"_|[a-z][A-Z]|\d", name):
            # A question that spells its answer's compound name tests nothing but the words.
            assert name.lower() not in item["query"].lower(), item
    assert len({item["query"] for item in every}) == len(every)


def test_the_quality_benchmark_refuses_an_answer_that_no_longer_defines_its_name(tmp_path):
    from benchmarks.quality import TREES, check_answers

    tree = TREES["stdlib"]
    make_tree(tmp_path, {"mod.py": "def parse():\n    pass\n"})
    check_answers(tree, tmp_path, [{"files": ["mod.py"], "defines": "def parse"}])
    for broken in ({"files": ["mod.py"], "defines": "def render"},
                   {"files": ["gone.py"], "defines": "def parse"}):
        with pytest.raises(SystemExit, match="no longer has"):
            check_answers(tree, tmp_path, [broken])


def test_the_quality_benchmark_scores_every_tree_mode_and_fusion(tmp_path):
    """Both trees: every answer file still defines what its query asks (the benchmark refuses
    otherwise), each index's time and memory are measured, and the default keeps its quality."""
    report = tmp_path / "quality.json"
    proc = subprocess.run([sys.executable, "-m", "benchmarks.quality", "--json", str(report),
                           "--fusions", "rrf,score", "--work", str(tmp_path / "work")],
                          check=False, cwd=ROOT, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-2000:]
    data = json.loads(report.read_text())
    assert data["queries"]["apache_beam"] >= 50 and data["queries"]["stdlib"] >= 50
    every = {(row["tree"], row["mode"], row["fusion"]): row for row in data["rows"]}
    assert set(every) == {(tree, mode, fusion) for tree in ("apache_beam", "stdlib")
                          for mode, fusion in (("semantic", ""), ("fts", ""),
                                               ("hybrid", "rrf"), ("hybrid", "score"))}
    for row in every.values():
        # All Python: only generated code (apache_beam's *_pb2.py) is left to fixed chunks.
        assert row["chunker"] == DEFAULT_CHUNKER and set(row["fixed_chunk_files"]) <= {"minified"}
        assert row["index_s"] > 0 and row["peak_rss_MB"] > 50 and row["chunks"] > 10_000
        assert 0 <= row["mrr_at_10"] <= row["recall_at_10"] <= 1
        assert row["natural"]["queries"] + row["identifier"]["queries"] == row["queries"]
    # The default (score fusion) measured 0.93 / 0.68 on apache_beam and 0.84 / 0.67 on the
    # stdlib (README); the floors leave room for a changed Beam or Python.
    for tree in ("apache_beam", "stdlib"):
        hybrid = every[(tree, "hybrid", "score")]
        assert hybrid["recall_at_10"] >= 0.8 and hybrid["mrr_at_10"] >= 0.6
        assert every[(tree, "fts", "")]["identifier"]["recall_at_10"] == 1.0
    summary = {(row["mode"], row["fusion"]): row for row in data["summary"]}
    assert summary[("hybrid", "score")]["queries"] == sum(data["queries"].values())
    # Score fusion is the default because it ranked better than RRF (README: Quality).
    assert summary[("hybrid", "score")]["mrr_at_10"] > summary[("hybrid", "rrf")]["mrr_at_10"]
    assert "hybrid) recall@10 on apache_beam" in proc.stdout and "all trees" in proc.stdout


def test_the_memory_benchmark_runs_each_shape_through_the_whole_command(tmp_path):
    report = tmp_path / "memory.json"
    done = subprocess.run([sys.executable, "-m", "benchmarks.memory", "--repeat", "1",
                           "--shapes", "long-line,small", "--long-line-MB", "0.5",
                           "--small-files", "1200", "--json", str(report)],
                          cwd=ROOT, capture_output=True, text=True, timeout=600, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    line, small = json.loads(report.read_text())["rows"]
    assert line["name"] == "long line" and line["MB"] == pytest.approx(0.5, rel=0.01)
    assert line["chunks"] == pytest.approx(500_000 / 850, rel=0.01)  # fixed-size, 15 % overlap
    assert small["name"] == "small files" and small["files"] == small["chunks"] == 1200
    for row in (line, small):  # the targets are for the default sizes only
        assert row["wall_s"] > 0 and row["peak_rss_MB"] > 50 and "targets" not in row
    assert "long line" in done.stdout and "small files" in done.stdout


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


def test_benchmarks_run_as_one_package_by_name():
    listing = subprocess.run([sys.executable, "-m", "benchmarks"], capture_output=True,
                             text=True, check=False, timeout=120, cwd=ROOT)
    assert listing.returncode == 0
    names = {line.split()[0] for line in listing.stdout.splitlines()[2:] if line.strip()}
    assert {"run", "quality", "search_scale", "distill", "capacity"} <= names
    shown = subprocess.run([sys.executable, "-m", "benchmarks", "search_scale", "--help"],
                           capture_output=True, text=True, check=False, timeout=120, cwd=ROOT)
    assert shown.returncode == 0 and "--index" in shown.stdout
    unknown = subprocess.run([sys.executable, "-m", "benchmarks", "nope"], capture_output=True,
                             text=True, check=False, timeout=120, cwd=ROOT)
    assert unknown.returncode == 2 and "no benchmark 'nope'" in unknown.stderr


def test_the_watch_latency_benchmark_times_each_edit_until_it_is_found(tmp_path):
    corpus = _tree(tmp_path / "corpus")
    report = tmp_path / "report.json"
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks.watch_latency", "--corpus", str(corpus),
         "--edits", "3", "--json", str(report)], cwd=ROOT, capture_output=True, text=True,
        timeout=600, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(report.read_text())
    assert result["files"] == 6 and result["edits"] == len(result["seconds"]) == 3
    assert 0 < result["p50_s"] <= result["p95_s"] <= result["max_s"]
    assert "| files | edits |" in done.stdout and "watch_latency --corpus" in result["command"]


def test_the_serve_latency_benchmark_times_searches_alone_and_under_load(tmp_path):
    from beam_pipeline import run_index

    run_index(_tree(tmp_path / "corpus"), tmp_path / "index", quiet=True)
    report = tmp_path / "report.json"
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks.serve_latency", "--index", str(tmp_path / "index"),
         "--requests", "5", "--clients", "3", "--per-client", "2", "--json", str(report)],
        cwd=ROOT, capture_output=True, text=True, timeout=600, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(report.read_text())
    assert result["alone"]["requests"] == 5 and result["concurrent"]["requests"] == 6
    assert result["alone"]["errors"] == result["concurrent"]["errors"] == 0
    assert 0 < result["alone"]["p50_ms"] <= result["alone"]["p99_ms"] <= result["alone"]["max_ms"]
    assert "| rows | mode |" in done.stdout and "serve_latency --index" in result["command"]
