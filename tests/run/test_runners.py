"""One pipeline, every local way of running it: identical rows, and progress in each.

The portable runner is Beam's real job-service path (the one Flink and Spark take), served by
the Python SDK's local job service on 127.0.0.1; LOOPBACK runs the SDK workers in this process.
"""

import threading
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from conftest import SlowEmbedder, code_file, make_tree, run_cli

from beam_pipeline import IndexSettings, run_index
from beam_pipeline.layout.schema import CURRENT_FILE, STAGING_DIR
from beam_pipeline.run.progress import ProgressTracker
from beam_pipeline.runtime.cancel import CancelToken
from beam_pipeline.search import Index

CONFIGS = Path(__file__).resolve().parents[2] / "configs"

LOCAL_MODES = {
    "in_memory": [],
    "multi_threading": ["--direct_running_mode=multi_threading"],
    "multi_processing": ["--direct_running_mode=multi_processing", "--direct_num_workers=2"],
}


def _tree(root):
    files = {f"pkg/mod_{i:02d}.py": code_file(f"mod{i}", 20 + 7 * i) for i in range(12)}
    files["empty.py"] = ""
    files["notes/readme.md"] = "# Notes\n\nSome text about the project.\n" * 30
    files["data.bin"] = b"\x00\x01\x02" * 100  # skipped as binary in every mode
    return make_tree(root, files)


def _rows(out) -> pa.Table:
    index = Index.open(out)
    table = pa.concat_tables(pq.read_table(index.shard_path(s)) for s in index.shards)
    return table.sort_by("id")


def _index(src, out, args):
    tracker = ProgressTracker()
    stats = run_index(src, out, IndexSettings.create(chunk_size=300, batch_size=8),
                      pipeline_options=args, tracker=tracker)
    return stats, tracker


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    root = tmp_path_factory.mktemp("runners")
    src = _tree(root / "src")
    stats, _ = _index(src, root / "reference", [])
    return src, _rows(root / "reference"), stats


def _same_run(reference, out, args):
    src, expected, expected_stats = reference
    stats, tracker = _index(src, out, args)
    assert stats.committed and stats.files_processed == expected_stats.files_processed == 14
    assert stats.skipped_files == expected_stats.skipped_files == 1
    assert stats.chunks_created == expected_stats.chunks_created > 14
    rows = _rows(out)
    assert rows.equals(expected), "rows differ from the in-memory DirectRunner's"
    # The progress channel reached the launcher from wherever the workers ran.
    assert tracker.files_done == 14 + 1  # the skipped binary file is done too
    assert tracker.chunks_embedded == stats.chunks_created


@pytest.mark.parametrize("mode", [m for m in LOCAL_MODES if m != "in_memory"])
def test_every_local_mode_writes_the_same_rows(reference, tmp_path, mode):
    _same_run(reference, tmp_path / "out", LOCAL_MODES[mode])


def test_portable_runner_against_a_local_job_service(reference, tmp_path, job_endpoint):
    _same_run(reference, tmp_path / "out", [
        "--runner=PortableRunner", f"--job_endpoint={job_endpoint}",
        "--environment_type=LOOPBACK"])


def test_cancel_reaches_the_portable_runner_workers(tmp_path, job_endpoint):
    src = make_tree(tmp_path / "src", {f"m{i:02d}.py": code_file(f"m{i}", 20) for i in range(40)})
    out = tmp_path / "out"
    token, tracker = CancelToken(), ProgressTracker()

    def cancel_after_first_file():
        while tracker.files_done == 0:
            time.sleep(0.02)
        token.cancel()

    canceller = threading.Thread(target=cancel_after_first_file)
    canceller.start()
    started = time.monotonic()
    stats = run_index(src, out, IndexSettings.create(SlowEmbedder(0.3), batch_size=2),
                      pipeline_options=["--runner=PortableRunner",
                                        f"--job_endpoint={job_endpoint}",
                                        "--environment_type=LOOPBACK"],
                      cancel=token, tracker=tracker)
    canceller.join()
    assert stats.cancelled and not stats.committed
    assert stats.files_processed < 40 and time.monotonic() - started < 60
    assert not (out / CURRENT_FILE).exists() and not any((out / STAGING_DIR).iterdir())


def test_cli_multi_processing_keeps_worker_chatter_out_of_the_output(reference, tmp_path):
    src, expected, _ = reference
    done = run_cli("index", src, "--output", tmp_path / "out", "--chunk-size", "300",
                   "--batch-size", "8", "--config", CONFIGS / "multiprocess.yaml")
    assert done.returncode == 0, done.stderr
    assert "Committed snapshot" in done.stderr and "sdk_worker" not in done.stderr
    assert _rows(tmp_path / "out").equals(expected)


def test_a_portable_job_outliving_the_job_server_timeout_still_commits(tmp_path, job_endpoint):
    # Beam opens the job's state stream with --job_server_timeout as its deadline; a job that
    # runs longer must still be waited for, not failed.
    src = make_tree(tmp_path / "src", {f"m{i:02d}.py": code_file(f"m{i}", 12) for i in range(20)})
    # 20 calls of 0.4 s one after another: the job outlives the 3 s deadline by seconds.
    stats = run_index(src, tmp_path / "out", IndexSettings.create(SlowEmbedder(0.4), batch_size=1),
                      pipeline_options=["--runner=PortableRunner", f"--job_endpoint={job_endpoint}",
                                        "--environment_type=LOOPBACK", "--job_server_timeout=3"])
    assert stats.committed and stats.files_processed == 20
    assert stats.duration > 3 + 2
