"""Workers that share nothing with the launcher but OUT's and SOURCE's filesystem.

The PortableRunner runs the job on the Python SDK's local job service (beside the launcher)
with `--environment_type=EXTERNAL`: the SDK workers come from a worker pool
(`python -m apache_beam.runners.worker.worker_pool_main`) started in a mount namespace of its
own, where /tmp and this checkout are empty tmpfs and only the venv and the package are bound
back. SOURCE and OUT are on S3 (moto on 127.0.0.1). Loopback is still shared, so isolation is
proven, not assumed: the workers' embedder refuses to load where it can see the launcher's
canary file or the launcher's mounts, and progress must arrive as event files on S3 (this is
not a local mode, so no UDP channel is even opened).
"""

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pyarrow as pa
import pytest
from conftest import code_file, free_port, make_tree, wait_for_port

import beam_pipeline
from beam_pipeline import IndexSettings, run_index
from beam_pipeline.run.progress import ProgressTracker
from beam_pipeline.runtime.cancel import CancelToken
from beam_pipeline.search import Index
from beam_pipeline.source import storage
from beam_pipeline.store.verify import verify_index
from beam_pipeline.testing.isolation import IsolationProbe, isolated_command, mount_namespace

BUCKET = "isolated"
PACKAGE = Path(beam_pipeline.__file__).resolve().parent
CHECKOUT = PACKAGE.parent


def _unshare_refusal() -> str | None:
    try:
        done = subprocess.run(isolated_command(["true"], hide=["/tmp"], keep=[sys.prefix]),
                              capture_output=True, text=True, timeout=60, check=False)
    except OSError as exc:
        return str(exc)
    return None if done.returncode == 0 else (done.stderr.strip() or f"exit {done.returncode}")


@pytest.fixture(scope="module")
def pool(tmp_path_factory):
    """The worker pool's address, and the canary the launcher wrote where workers cannot look."""
    refusal = _unshare_refusal()
    if refusal is not None:
        pytest.skip(f"this machine does not permit unshare --mount with a tmpfs: {refusal}")
    canary = tmp_path_factory.mktemp("launcher") / "canary"
    canary.write_text("only the launcher can see this\n")
    port = free_port()
    # The pool starts each SDK worker with the `python` on PATH: the venv's.
    env = {"PATH": f"{Path(sys.executable).parent}:/usr/bin:/bin", "HOME": "/root",
           "PYTHONDONTWRITEBYTECODE": "1"}
    command = isolated_command(
        [sys.executable, "-m", "apache_beam.runners.worker.worker_pool_main",
         f"--service_port={port}"],
        hide=["/tmp", str(tmp_path_factory.getbasetemp()), str(CHECKOUT)],
        keep=[sys.prefix, str(PACKAGE)])
    process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        wait_for_port(port, process, "the isolated worker pool")
        yield f"localhost:{port}", str(canary)
    finally:
        os.killpg(process.pid, signal.SIGKILL)  # unshare, the pool and its SDK workers
        process.wait(timeout=30)


def _files(n: int, salt: str = "") -> dict:
    return {f"pkg/m{i:02d}.py": code_file(f"m{i}{salt}", 9 + i % 5) for i in range(n)}


def _probe(canary: str, delay: float) -> IsolationProbe:
    return IsolationProbe(canary, mount_namespace(), delay=delay)


SETTINGS = {"chunk_size": 400, "batch_size": 4}


def _isolated_run(s3, pool, job_endpoint, src, out, delay=0.0, **kwargs):
    address, canary = pool
    tracker = kwargs.pop("tracker", None) or ProgressTracker()
    flags = ["--runner=PortableRunner", f"--job_endpoint={job_endpoint}",
             "--environment_type=EXTERNAL", f"--environment_config={address}", *s3.flags]
    stats = run_index(src, out, IndexSettings.create(_probe(canary, delay), **SETTINGS),
                      pipeline_options=flags, tracker=tracker, **kwargs)
    return stats, tracker


def _rows(out, flags=()) -> pa.Table:
    index = Index.open(out, flags)
    return pa.concat_tables(storage.read_parquet(index.shard_path(s))
                            for s in index.shards).sort_by("id")


def _local_run(root: Path, files: dict):
    src = make_tree(root / "src", files)
    stats = run_index(src, root / "out", IndexSettings.create(**SETTINGS))
    return stats, _rows(root / "out")


def _samples(tracker: ProgressTracker, stop: threading.Event, into: list) -> threading.Thread:
    def sample():
        while not stop.is_set():
            into.append((tracker.current_stage(), tracker.files_done))
            time.sleep(0.1)

    thread = threading.Thread(target=sample, daemon=True)
    thread.start()
    return thread


def test_isolated_workers_index_and_reindex_s3_exactly_as_a_local_run(
        tmp_path, s3, pool, job_endpoint):
    s3.bucket(BUCKET)
    files = _files(24)
    src = s3.upload(BUCKET, "repo", files)
    out = f"s3://{BUCKET}/index"
    tracker, seen, stop = ProgressTracker(), [], threading.Event()
    sampler = _samples(tracker, stop, seen)
    stats, _ = _isolated_run(s3, pool, job_endpoint, src, out, delay=0.5, tracker=tracker)
    stop.set()
    sampler.join()
    expected_stats, expected_rows = _local_run(tmp_path / "local", files)
    assert stats.committed and stats.files_processed == 24
    assert _rows(out, s3.flags).equals(expected_rows)
    for name in ("files_processed", "chunks_created", "chunks_embedded", "failed_files",
                 "total_size", "rows_written", "skipped_by_reason"):
        assert getattr(stats, name) == getattr(expected_stats, name), name
    assert stats.stats_source == "metrics"
    # Progress came through S3, and advanced while the workers were embedding.
    assert stats.progress_route == "event files" and stats.progress_events > 0
    assert tracker.files_done == 24
    assert any(stage == "chunking+embedding" and 0 < done < 24 for stage, done in seen), seen
    assert not [k for k in s3.keys(BUCKET, "index") if k.startswith(".staging/")]

    # A scheduled re-index of the object-store copy: a changed, an added and a deleted file.
    files["pkg/m03.py"] = code_file("changed", 4)
    files["pkg/new.py"] = code_file("added", 6)
    del files["pkg/m07.py"]
    s3.upload(BUCKET, "repo", {p: files[p] for p in ("pkg/m03.py", "pkg/new.py")})
    s3.delete(BUCKET, "repo", "pkg/m07.py")
    again, _ = _isolated_run(s3, pool, job_endpoint, src, out)
    assert (again.files_changed, again.files_added, again.files_deleted,
            again.files_unchanged) == (1, 1, 1, 22)
    _, final_rows = _local_run(tmp_path / "final", files)
    assert _rows(out, s3.flags).equals(final_rows)
    assert verify_index(out) == []


def test_a_cancel_reaches_isolated_workers_and_commits_nothing(tmp_path, s3, pool,
                                                               job_endpoint):
    s3.bucket(BUCKET)
    src = s3.upload(BUCKET, "cancel-repo", _files(6))
    out = f"s3://{BUCKET}/cancel-index"
    first, _ = _isolated_run(s3, pool, job_endpoint, src, out)
    assert first.committed
    s3.upload(BUCKET, "cancel-repo", _files(30, salt="v2"))
    token, tracker = CancelToken(), ProgressTracker()

    def cancel_when_the_workers_report():
        while tracker.files_done == 0:
            time.sleep(0.05)
        token.cancel()

    canceller = threading.Thread(target=cancel_when_the_workers_report, daemon=True)
    canceller.start()
    started = time.monotonic()
    stats, _ = _isolated_run(s3, pool, job_endpoint, src, out, delay=0.5, cancel=token,
                             tracker=tracker)
    canceller.join(timeout=5)
    assert stats.cancelled and not stats.committed
    assert 0 < stats.files_processed < 30 and time.monotonic() - started < 90
    assert Index.open(out, s3.flags).snapshot_id == first.snapshot_id
    assert verify_index(out) == []
