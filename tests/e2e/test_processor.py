"""The compatibility face: HighThroughputProcessor.process_files_high_throughput."""

import itertools
import os
import threading
import time
from pathlib import Path

import pytest
from conftest import SlowEmbedder, code_file, make_tree

from beam_pipeline import FileProcessingResult, HighThroughputProcessor, ProcessingStats
from beam_pipeline.layout.schema import CURRENT_FILE, STAGING_DIR
from beam_pipeline.search import Index


class Recorder:
    def __init__(self, answer=None, fail_every=0):
        self.calls = []
        self.answer = answer
        self.fail_every = fail_every
        self.threads = set()

    def __call__(self, current, total, path, info=None, concurrent_files=None,
                 slot_tracker=None):
        self.calls.append((time.monotonic(), current, total, path, info))
        self.threads.add(threading.get_ident())
        if self.fail_every and len(self.calls) % self.fail_every == 0:
            raise RuntimeError("callback bug")
        return self.answer(self) if self.answer else None

    def infos(self):
        return [c[4] for c in self.calls]

    def progress(self):
        return [c for c in self.calls if c[2] > 0 and c[4] != "✅ Completed"]


def tree(root, n=30, lines=20):
    return make_tree(root, {f"pkg/m{i:03d}.py": code_file(f"m{i}", lines) for i in range(n)})


def test_queued_first_then_progress_lines_then_completed(tmp_path):
    src = tree(tmp_path / "src")
    files = sorted(str(p.relative_to(src)) for p in src.rglob("*.py"))
    rec = Recorder()
    processor = HighThroughputProcessor(src, tmp_path / "out")
    stats = processor.process_files_high_throughput(files, 3, 8, rec)
    assert isinstance(stats, ProcessingStats) and stats.committed
    queued = rec.calls[:len(files)]
    assert [c[3] for c in queued] == files
    assert all(c[1:3] == (0, 0) and c[4] == "📥 Queued for processing" for c in queued)
    progress = rec.progress()
    assert [c[1] for c in progress] == list(range(1, len(files) + 1))
    assert sorted(c[3] for c in progress) == files
    for _, current, total, path, info in progress:
        parts = info.split(" | ")
        assert parts[0].startswith(f"{current}/{total} files (")
        assert parts[1].endswith(" files/s") and float(parts[1].split()[0]) >= 0
        assert parts[2].endswith(" KB/s") and float(parts[2].split()[0]) >= 0
        assert parts[3] == "3 threads" and parts[4].startswith("📊 ")
    assert rec.calls[-1][4] == "✅ Completed"
    assert rec.threads == {threading.get_ident()}
    assert stats.files_processed == len(files) and stats.failed_files == 0
    assert stats.vector_thread_count == 3 and stats.batch_size == 8
    assert stats.files_processed == stats.counters["files_processed"]
    assert stats.chunks_created == stats.counters["chunks_created"]
    results = processor.file_results
    assert all(isinstance(r, FileProcessingResult) and r.success for r in results)
    assert sum(r.chunks_processed for r in results) == stats.chunks_created


def test_ten_thousand_files_queue_at_once(tmp_path):
    (tmp_path / "src").mkdir()
    files = [f"missing/{i}.py" for i in range(10_000)]
    rec = Recorder()
    processor = HighThroughputProcessor(tmp_path / "src", tmp_path / "out")
    started = time.monotonic()
    stats = processor.process_files_high_throughput(files, 2, 100, rec)
    queued_at = rec.calls[len(files) - 1][0] - started
    assert queued_at < 2.0, f"10,000 Queued callbacks took {queued_at:.2f} s"
    assert stats.failed_files == 10_000 and stats.files_processed == 0
    assert not stats.committed


def test_no_silent_gap_with_a_slow_embedder(tmp_path):
    src = tree(tmp_path / "src", n=3, lines=200)  # ~10 chunks a file: files finish rarely
    rec = Recorder()
    processor = HighThroughputProcessor(src, tmp_path / "out", SlowEmbedder(0.3))
    files = sorted(str(p.relative_to(src)) for p in src.rglob("*.py"))
    processor.process_files_high_throughput(files, 1, 2, rec)
    times = [c[0] for c in rec.calls]
    gaps = [b - a for a, b in itertools.pairwise(times)]
    assert max(gaps) < 2.0
    heartbeats = [c[4] for c in rec.calls if c[2] == 0 and c[4].startswith("⏳")]
    assert heartbeats, "expected info lines while the slow embedder works"
    embedded = [int(h.split(" cut, ")[1].split(" embedded")[0]) for h in heartbeats]
    assert embedded == sorted(embedded) and len(set(embedded)) > 1


def first_run(src, out):
    HighThroughputProcessor(src, out).process_files_high_throughput(
        [str(p.relative_to(src)) for p in src.rglob("*.py")], 1)
    return (out / CURRENT_FILE).read_text()


def test_interrupt_from_the_callback_cancels_and_commits_nothing(tmp_path):
    src = tree(tmp_path / "src", n=40)
    out = tmp_path / "out"
    live = first_run(src, out)
    for p in src.rglob("*.py"):
        p.write_text(p.read_text() + "# edited\n")
    rec = Recorder(answer=lambda r: "INTERRUPT" if r.calls[-1][1] >= 2 else None)
    processor = HighThroughputProcessor(src, out, SlowEmbedder(0.2))
    files = sorted(str(p.relative_to(src)) for p in src.rglob("*.py"))
    stats = processor.process_files_high_throughput(files, 1, 2, rec)
    assert stats.cancelled and not stats.committed and processor.cancelled
    assert 2 <= stats.files_processed < len(files)
    assert (out / CURRENT_FILE).read_text() == live
    assert not any((out / STAGING_DIR).iterdir())
    assert "✅ Completed" not in rec.infos()
    assert sum(r.success for r in processor.file_results) == stats.files_processed


MODES = {
    "in_memory": [],
    "multi_threading": ["--direct_running_mode=multi_threading"],
    "multi_processing": ["--direct_running_mode=multi_processing", "--direct_num_workers=2"],
}


@pytest.mark.parametrize("mode", MODES)
def test_request_cancellation_from_another_thread_stops_promptly(tmp_path, monkeypatch, mode):
    # Worker processes must import the test embedder from conftest, as the launcher does.
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [
        str(Path(__file__).resolve().parents[1]), os.environ.get("PYTHONPATH", "")])))
    src = tree(tmp_path / "src", n=60)
    out = tmp_path / "out"
    processor = HighThroughputProcessor(src, out, SlowEmbedder(0.3), pipeline_args=MODES[mode])
    files = sorted(str(p.relative_to(src)) for p in src.rglob("*.py"))
    rec = Recorder()
    stopped = {}

    def cancel_soon():
        while not rec.progress():
            time.sleep(0.02)
        stopped["at"] = time.monotonic()
        processor.request_cancellation()
        processor.request_cancellation()  # idempotent

    canceller = threading.Thread(target=cancel_soon)
    canceller.start()
    stats = processor.process_files_high_throughput(files, 1, 2, rec)
    returned = time.monotonic()
    canceller.join()
    assert stats.cancelled and not stats.committed
    assert returned - stopped["at"] < 5.0
    assert not (out / CURRENT_FILE).exists()
    assert not any((out / STAGING_DIR).iterdir())


def test_raising_callback_is_ignored_and_counts_stay_right(tmp_path):
    src = tree(tmp_path / "src", n=15)
    rec = Recorder(fail_every=2)
    files = sorted(str(p.relative_to(src)) for p in src.rglob("*.py"))
    stats = HighThroughputProcessor(src, tmp_path / "out").process_files_high_throughput(
        files, 2, progress_callback=rec)
    assert stats.committed and stats.files_processed == 15
    assert len(rec.progress()) == 15 and rec.calls[-1][4] == "✅ Completed"


def test_failing_files_count_once_and_the_rest_is_carried_forward(tmp_path):
    src = tree(tmp_path / "src", n=6)
    out = tmp_path / "out"
    first_run(src, out)
    (src / "pkg/m000.py").write_text(code_file("changed", 5))
    (src / "binary.dat").write_bytes(b"\x00\x01" * 100)
    processor = HighThroughputProcessor(src, out)
    files = ["pkg/m000.py", str(src / "binary.dat"), "nope.py", "/etc/hostname"]
    stats = processor.process_files_high_throughput(files, 2, 50)
    assert stats.files_processed == 1 and stats.failed_files == 2
    assert stats.skipped_files == 1
    assert stats.files_processed + stats.failed_files + stats.skipped_files == len(files)
    reasons = {f["path"]: f["reason"] for f in stats.failures}
    assert "outside the source root" in reasons["/etc/hostname"]
    assert "FileNotFoundError" in reasons["nope.py"]
    by_path = {r.file_path: r for r in processor.file_results}
    assert by_path["pkg/m000.py"].success and not by_path["nope.py"].success
    hits = Index.open(out).search("changed", k=3)
    assert hits[0]["path"] == "pkg/m000.py"
    _, rows = Index.open(out)._rows
    assert len(set(rows["path"].to_pylist())) == 6  # the 5 unlisted files were carried forward


@pytest.mark.parametrize("form", ["positional2", "positional3", "keywords", "newer keywords"])
def test_the_call_forms(tmp_path, form):
    src = tree(tmp_path / "src", n=3)
    files = [str(p.relative_to(src)) for p in src.rglob("*.py")]
    processor = HighThroughputProcessor(src, tmp_path / "out")
    if form == "positional2":
        stats = processor.process_files_high_throughput(files, 2)
    elif form == "positional3":
        stats = processor.process_files_high_throughput(files, 2, 10)
    elif form == "keywords":
        stats = processor.process_files_high_throughput(
            files=files, vector_thread_count=2, batch_size=10, progress_callback=Recorder())
    else:  # what newer callers of the replaced system pass: accepted, and ignored
        stats = processor.process_files_high_throughput(
            files, 2, 10, Recorder(), slot_tracker=object(), fts_manager=object())
    assert stats.files_processed == 3 and stats.committed


def test_chunks_created_counts_written_files_only(tmp_path):
    from conftest import PoisonEmbedder

    src = make_tree(tmp_path / "src", {"good.py": code_file("good", 30),
                                       "bad.py": code_file("bad", 30) + "# POISON\n"})
    processor = HighThroughputProcessor(src, tmp_path / "out", PoisonEmbedder(),
                                        chunk_size=300)
    stats = processor.process_files_high_throughput(["good.py", "bad.py"], 1, 4)
    assert stats.files_processed == 1 and stats.failed_files == 1
    good = next(r for r in processor.file_results if r.file_path == "good.py")
    assert stats.chunks_created == good.chunks_processed > 0
    assert stats.chunks_embedded > stats.chunks_created  # bad.py's clean chunks were embedded
