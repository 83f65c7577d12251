"""The CLI and run_index on generated trees, checked with plain pyarrow."""

import codecs
import itertools
import json
import os
import signal
import subprocess
import threading
import time
from pathlib import Path

import duckdb
import pandas as pd
import pyarrow.parquet as pq
import pytest
from conftest import (
    BEAM_INDEX,
    BrokenLoadEmbedder,
    SlowEmbedder,
    code_file,
    free_port,
    make_tree,
    run_cli,
)

from beam_pipeline import IndexSettings, run_index
from beam_pipeline.embedders import DEFAULT_EMBEDDER, get_embedder
from beam_pipeline.layout.schema import (
    CURRENT_FILE,
    FILES_TABLE,
    MANIFEST_FILE,
    SNAPSHOTS_DIR,
    STAGING_DIR,
)
from beam_pipeline.run.flags import SMALL_RUN_FILES

DEFAULT_DIM = get_embedder(DEFAULT_EMBEDDER).dim  # a run that names no embedder
TREE = {
    ".gitignore": "*.log\nignored_dir/\n",
    "main.py": code_file("main", 80),
    "pkg/__init__.py": "",
    "pkg/.gitignore": "!important.log\n*.tmp\n",
    "pkg/important.log": "kept by negation\n",
    "pkg/scratch.tmp": "ignored\n",
    "pkg/util.js": "function readConfigFile(path) {\n  return JSON.parse(path);\n}\n" * 40,
    "debug.log": "ignored\n",
    "ignored_dir/x.py": "ignored\n",
    "node_modules/dep/index.js": "excluded\n",
    "blank.txt": "   \n\n\t\n",
    "image.png": b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(200),
    "garbage.bin": bytes(range(1, 32)) * 40 + b"\xff\xfe\x80\x81",
    "legacy.txt": "caf\xe9 cr\xe8me br\xfbl\xe9e\n".encode("latin-1") * 20,
    "utf16.txt": codecs.BOM_UTF16_LE + "wide text\n".encode("utf-16-le") * 30,
    "huge.txt": "x" * 20000,
}


def snapshot_dir(out):
    return out / SNAPSHOTS_DIR / (out / CURRENT_FILE).read_text().strip()


def read_index(out):
    snap = snapshot_dir(out)
    manifest = json.loads((snap / MANIFEST_FILE).read_text())
    rows = pq.read_table([str(snap / s["path"]) for s in manifest["shards"]])
    files = pq.read_table(snap / FILES_TABLE)
    return manifest, rows, files


def test_cli_indexes_a_generated_tree(tmp_path):
    src = make_tree(tmp_path / "src", TREE)
    out = tmp_path / "out"
    stats_path = tmp_path / "stats.json"
    proc = run_cli("index", src, "--output", out, "--max-file-size", 10000, "--chunk-size", 400,
                   "--batch-size", 16, "--stats-json", stats_path)
    assert proc.returncode == 0, proc.stderr
    manifest, rows, files = read_index(out)
    by_status = dict(zip(files["path"].to_pylist(), files["status"].to_pylist()))
    assert by_status == {
        ".gitignore": "indexed", "main.py": "indexed", "pkg/__init__.py": "indexed",
        "pkg/.gitignore": "indexed", "pkg/important.log": "indexed", "pkg/util.js": "indexed",
        "blank.txt": "indexed", "legacy.txt": "indexed", "utf16.txt": "indexed",
        "image.png": "skipped", "garbage.bin": "skipped",
    }
    # Every indexed file has exactly total_chunks rows, numbered 0..n-1; ids are unique.
    counts = dict(zip(files["path"].to_pylist(), files["total_chunks"].to_pylist()))
    paths, indices = rows["path"].to_pylist(), rows["chunk_index"].to_pylist()
    for path, n in counts.items():
        assert sorted(i for p, i in zip(paths, indices) if p == path) == list(range(n)), path
    assert len(set(rows["id"].to_pylist())) == rows.num_rows
    for shard in manifest["shards"]:  # sorted by path, then chunk: row groups can be skipped
        table = pq.read_table(snapshot_dir(out) / shard["path"], columns=["path", "chunk_index"])
        keys = list(zip(table["path"].to_pylist(), table["chunk_index"].to_pylist()))
        assert keys == sorted(keys)
    assert not {"debug.log", "ignored_dir/x.py", "node_modules/dep/index.js", "huge.txt",
                "pkg/scratch.tmp", "image.png", "garbage.bin", "blank.txt"} & set(paths)
    assert rows.schema.field("vector").type.list_size == DEFAULT_DIM
    legacy = [c for p, c in zip(paths, rows["content"].to_pylist()) if p == "legacy.txt"]
    assert "crème brûlée" in legacy[0]
    stats = json.loads(stats_path.read_text())
    assert stats["files_processed"] == 9 and stats["failed_files"] == 0
    assert stats["chunks_created"] == rows.num_rows == manifest["counts"]["rows"]
    assert stats["legacy_encoding_files"] == 1
    assert stats["skipped_by_reason"] == {"binary": 1, "excluded": 1, "gitignored": 3,
                                          "too_large": 1, "undecodable": 1}
    assert manifest["fingerprint"]["chunker"] == {"name": "syntax", "size": 400,
                                                  "overlap": 60, "version": 1}
    assert "Committed snapshot" in proc.stderr
    assert not any((out / STAGING_DIR).iterdir())
    # Readable without our code: DuckDB and pandas agree with pyarrow.
    shards = str(snapshot_dir(out) / "part-*.parquet")
    counted = duckdb.sql(f"SELECT count(*), count(DISTINCT id) FROM '{shards}'").fetchall()
    assert counted == [(rows.num_rows, rows.num_rows)]
    frame = pd.read_parquet(snapshot_dir(out) / manifest["shards"][0]["path"])
    assert len(frame["vector"].iloc[0]) == DEFAULT_DIM


def test_stats_are_the_summed_beam_counters(tmp_path):
    src = make_tree(tmp_path / "src", {f"m{i}.py": code_file(f"m{i}", 5 * i) for i in range(12)})
    stats = run_index(src, tmp_path / "out", IndexSettings.create(chunk_size=300, batch_size=8))
    counters = stats.counters
    assert stats.files_processed == counters["files_processed"] == 12
    assert stats.chunks_created == counters["chunks_created"]
    assert stats.chunks_embedded == counters["chunks_embedded"] == stats.chunks_created
    assert stats.total_size == counters["total_size"] == sum(
        (src / f"m{i}.py").stat().st_size for i in range(12))
    assert stats.embed_batches == counters["embed_batches"] >= stats.chunks_created // 8
    _, rows, _ = read_index(tmp_path / "out")
    assert rows.num_rows == stats.chunks_created == counters["rows_written"]
    assert stats.committed and stats.duration > 0


class FakeTerminal:
    """A stream that says it is a terminal and records when each redraw of the bars (rich)
    arrived."""

    def __init__(self):
        self.writes = []

    def isatty(self):
        return True

    def write(self, text):
        self.writes.append((time.monotonic(), text))

    def flush(self):
        pass


def test_progress_heartbeats_advance_and_never_go_silent(tmp_path):
    src = make_tree(tmp_path / "src", {f"d{i // 100}/f{i}.py": code_file(f"f{i}", 20)
                                       for i in range(1500)})
    stream = FakeTerminal()
    # 63 calls of 30 ms: a run of ~2 s, so the 0.5 s display must show the counters moving.
    stats = run_index(src, tmp_path / "out",
                      IndexSettings.create(SlowEmbedder(0.03), batch_size=32),
                      progress_stream=stream, quiet=False)
    assert stats.files_processed == 1500
    times = [t for t, _ in stream.writes]
    assert max(b - a for a, b in itertools.pairwise(times)) < 2.0
    lines = [text for _, text in stream.writes if "files" in text]
    cut = [int(line.split("chunks ")[1].split(" cut")[0]) for line in lines]
    embedded = [int(line.split(" cut, ")[1].split(" embedded")[0]) for line in lines]
    assert cut == sorted(cut) and embedded == sorted(embedded)
    assert len(set(cut)) > 2, "chunk counter never advanced mid-run"
    assert "[done]" in lines[-1] and "1500/1500" in lines[-1]  # the bars, then the status
    assert cut[-1] == embedded[-1] == stats.chunks_created


def test_failed_pipeline_keeps_the_previous_snapshot(tmp_path):
    src = make_tree(tmp_path / "src", {"a.py": code_file("a", 10)})
    out = tmp_path / "out"
    first = run_index(src, out)
    before = (out / CURRENT_FILE).read_text()
    (src / "b.py").write_text(code_file("b", 10))
    with pytest.raises(Exception, match="could not be loaded"):
        run_index(src, out, IndexSettings.create(BrokenLoadEmbedder()))
    assert (out / CURRENT_FILE).read_text() == before == first.snapshot_id + "\n"
    assert [p.name for p in (out / SNAPSHOTS_DIR).iterdir()] == [first.snapshot_id]
    assert not any((out / STAGING_DIR).iterdir())


def test_commit_is_atomic_for_concurrent_readers(tmp_path):
    """A reader following CURRENT always finds a complete manifest and all its shards."""
    src = make_tree(tmp_path / "src", {f"f{i}.py": code_file(f"f{i}", 10) for i in range(20)})
    out = tmp_path / "out"
    run_index(src, out)
    stop, problems = threading.Event(), []

    def reader():
        while not stop.is_set():
            try:
                manifest, rows, _ = read_index(out)
                assert rows.num_rows == manifest["counts"]["rows"]
            except Exception as exc:  # noqa: BLE001 - any failure is the finding
                problems.append(repr(exc))

    thread = threading.Thread(target=reader)
    thread.start()
    for _ in range(3):
        run_index(src, out, full=True)
    stop.set()
    thread.join()
    assert problems == []


def test_unreadable_files_fail_alone_as_an_unprivileged_user(world_tmp):
    src = make_tree(world_tmp / "src", {"ok.py": code_file("ok", 20), "secret.py": "x = 1\n",
                                        "locked/inner.py": "y = 2\n"})
    os.chmod(src / "secret.py", 0o000)
    os.chmod(src / "locked", 0o000)
    for d in (src, world_tmp / "src"):
        d.chmod(0o755)
    out = world_tmp / "out"
    out.mkdir()
    os.chown(out, 65534, 65534)
    stats_path = world_tmp / "stats.json"
    os.chown(world_tmp, 65534, 65534)
    proc = run_cli("index", src, "--output", out, "--stats-json", stats_path, user="nobody")
    assert proc.returncode == 0, proc.stderr
    assert "FAILED secret.py: PermissionError" in proc.stderr
    stats = json.loads(stats_path.read_text())
    assert stats["files_processed"] == 1 and stats["failed_files"] == 1
    assert stats["skipped_by_reason"] == {"unreadable_dir": 1}
    manifest, rows, _ = read_index(out)
    assert set(rows["path"].to_pylist()) == {"ok.py"}
    assert manifest["failures"][0]["path"] == "secret.py"


def test_every_file_failing_commits_nothing(world_tmp):
    src = make_tree(world_tmp / "src", {"a.py": "a = 1\n", "b.py": "b = 2\n"})
    for name in ("a.py", "b.py"):
        os.chmod(src / name, 0o000)
    src.chmod(0o755)
    out = world_tmp / "out"
    out.mkdir()
    os.chown(out, 65534, 65534)
    proc = run_cli("index", src, "--output", out, user="nobody")
    assert proc.returncode == 1
    assert proc.stderr.strip().splitlines()[-1] == (
        "beam-index: error: every file failed (2); nothing committed")
    assert not (out / CURRENT_FILE).exists()
    assert not any((out / STAGING_DIR).iterdir())


def test_api_refuses_a_missing_source_without_touching_output(tmp_path):
    with pytest.raises(NotADirectoryError):
        run_index(tmp_path / "missing", tmp_path / "out")
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("args,code,message", [
    (["index", "/nonexistent/src", "--output", "{tmp}/out"], 1, "source is not a directory"),
    (["index", "{tmp}", "--output", "{tmp}/file"], 1, "exists and is not a folder"),
    (["index", "{tmp}", "--output", "{tmp}/out", "--no-such-flag"], 2, "unknown option"),
    (["index", "{tmp}", "--output", "{tmp}/out", "--chunk-size", "0"], 2, "chunk size"),
])
def test_cli_errors_are_one_line_with_exit_status(tmp_path, args, code, message):
    (tmp_path / "file").write_text("not a folder")
    proc = run_cli(*[a.format(tmp=tmp_path) for a in args])
    assert proc.returncode == code
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], proc.stderr
    assert "apitools" not in proc.stderr


def test_empty_source_commits_an_empty_snapshot(tmp_path):
    (tmp_path / "src").mkdir()
    proc = run_cli("index", tmp_path / "src", "--output", tmp_path / "out", "-q")
    assert proc.returncode == 0, proc.stderr
    manifest, rows, files = read_index(tmp_path / "out")
    assert rows.num_rows == 0 and files.num_rows == 0 and manifest["counts"]["rows"] == 0


def test_ctrl_c_stops_promptly_and_commits_nothing(tmp_path):
    src = make_tree(tmp_path / "src", {f"d{i // 100}/f{i}.py": code_file(f"f{i}", 30)
                                       for i in range(2000)})
    out = tmp_path / "out"
    # Its own session, so that Ctrl-C can reach the whole process group as a terminal's does
    # (the embedding helper processes included).
    temp = tmp_path / "tmp"  # the run's temp folder, to be left as it was found: empty
    temp.mkdir()
    proc = subprocess.Popen([*BEAM_INDEX, "index", str(src), "--output", str(out), "-q",
                             "--batch-size", "2"], stderr=subprocess.PIPE, text=True,
                            start_new_session=True, env={**os.environ, "TMPDIR": str(temp)})
    deadline = time.monotonic() + 60
    # Well inside the pipeline: Beam is imported after the plan, then the helpers start.
    while not session_processes(proc.pid, "beam_pipeline.embedding.calls"):
        assert time.monotonic() < deadline and proc.poll() is None
        time.sleep(0.05)
    time.sleep(0.5)
    sent = time.monotonic()
    os.killpg(proc.pid, signal.SIGINT)
    _, stderr = proc.communicate(timeout=30)
    assert proc.returncode == 130, stderr
    assert time.monotonic() - sent < 5
    assert stderr.strip().splitlines()[-1] == "beam-index: interrupted; nothing committed"
    assert "Traceback" not in stderr
    assert not (out / CURRENT_FILE).exists()
    assert not any((out / STAGING_DIR).iterdir())
    deadline = time.monotonic() + 5
    while session_processes(proc.pid, "beam_pipeline.embedding.calls"):  # no helper outlives it
        assert time.monotonic() < deadline
        time.sleep(0.1)
    assert list(temp.iterdir()) == []


@pytest.mark.parametrize("outcome, flags", [
    ("committed", []),
    ("committed", ["--direct_running_mode=multi_processing", "--direct_num_workers=2"]),
    ("failed", ["--embedder", "openai", "--embedding-url", "http://127.0.0.1:{port}/v1",
                "--embedding-dim", "8"]),
])
def test_a_run_leaves_nothing_in_the_temp_folder(tmp_path, monkeypatch, outcome, flags):
    """Issue 35: every run left an empty pymp-* folder (multiprocessing's, for the lexical
    index helper's socket, removed only by an exit handler its os._exit skips)."""
    # Enough files for the helpers to start (a smaller run starts none).
    src = make_tree(tmp_path / "src", {f"f{i}.py": code_file(f"f{i}", 10)
                                       for i in range(SMALL_RUN_FILES)})
    temp = tmp_path / "tmp"
    temp.mkdir()
    monkeypatch.setenv("TMPDIR", str(temp))
    port = free_port()  # nothing listens there: every embedding request is refused
    proc = run_cli("index", src, "--output", tmp_path / "out", "-q",
                   *(flag.format(port=port) for flag in flags))
    assert (proc.returncode == 0) == (outcome == "committed"), proc.stderr
    assert (tmp_path / "out" / CURRENT_FILE).exists() == (outcome == "committed")
    assert list(temp.iterdir()) == []


def session_processes(session: int, marker: str) -> list[int]:
    """Processes of a session whose command line holds `marker`."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
            if os.getsid(int(entry.name)) == session and marker in cmdline:
                found.append(int(entry.name))
        except (OSError, ProcessLookupError):
            continue  # gone meanwhile
    return found
