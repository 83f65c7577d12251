import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pytest

from beam_pipeline.embedders import Embedder, HashingEmbedder

BEAM_INDEX = [sys.executable, "-m", "beam_pipeline"]


def make_tree(root: Path, files: dict) -> Path:
    for rel, content in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content if isinstance(content, bytes) else content.encode())
    return root


def listed_tree(tmp_path: Path, files: dict) -> tuple[Path, Path, Path]:
    """A source tree of `files`, an empty staging folder and the tree's discovered file list
    (what ReadFileList reads): (src, staging, listing)."""
    from beam_pipeline.source.discover import discover_to_file

    src = make_tree(tmp_path / "src", files)
    staging = tmp_path / "staging"
    staging.mkdir()
    listing = tmp_path / "files.jsonl"
    discover_to_file(src, listing)
    return src, staging, listing


def code_file(name: str, lines: int) -> str:
    return "".join(f"def {name}_{i}(value):\n    return value * {i}  # {name}\n"
                   for i in range(lines))


class PoisonEmbedder(Embedder):
    """A real embedder that refuses any batch holding a chunk with the word POISON."""

    name = "poison"
    model = "test"

    def __init__(self, dim: int = 16):
        self.dim = dim
        self.inner = HashingEmbedder(dim)

    def embed(self, texts):
        if any("POISON" in t for t in texts):
            raise RuntimeError("poisoned input")
        return self.inner.embed(texts)


class BrokenLoadEmbedder(HashingEmbedder):
    """Fails when a worker loads it: the whole pipeline fails."""

    def load(self):
        raise RuntimeError("model could not be loaded")


def run_cli(*args, user: str | None = None, timeout: float = 300, **kwargs):
    cmd = [*BEAM_INDEX, *map(str, args)]
    if user is not None:
        cmd = ["setpriv", f"--reuid={user}", "--regid=nogroup", "--clear-groups", *cmd]
    env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1"}
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env,
                          check=False, **kwargs)


@pytest.fixture
def world_tmp():
    """A temp folder every user can enter (pytest's tmp_path is private to root)."""
    path = Path(tempfile.mkdtemp(prefix="beam-index-test-", dir="/tmp"))
    path.chmod(0o777)
    yield path
    shutil.rmtree(path, ignore_errors=True)


def unit(v):
    v = np.asarray(v, dtype=np.float64)
    return v / np.linalg.norm(v)


class SlowEmbedder(HashingEmbedder):
    """The default embedder with a fixed delay per call: a stand-in for a slow remote model
    (the delay overlaps across calls, as requests in flight do)."""

    parallel_calls = True
    gil_bound = False  # waits, as a remote model's requests do: a thread pool, not helpers

    def __init__(self, delay: float = 0.2, dim: int = 384):
        super().__init__(dim)
        self.delay = delay

    def __getstate__(self):
        return {**super().__getstate__(), "delay": self.delay}

    def __setstate__(self, state):
        super().__setstate__(state)
        self.delay = state["delay"]

    def embed(self, texts):
        time.sleep(self.delay)
        return super().embed(texts)


class MutatingEmbedder(HashingEmbedder):
    """The default embedder, plus what a busy working tree does during a run: loading it (a
    worker's setup, before any file is read) deletes `vanish`; its first embed call (after the
    files were chunked) rewrites `change`."""

    def __init__(self, vanish: str, change: str, dim: int = 384):
        super().__init__(dim)
        self.vanish, self.change = vanish, change
        self._changed = False

    def __getstate__(self):
        return {**super().__getstate__(), "vanish": self.vanish, "change": self.change}

    def __setstate__(self, state):
        super().__setstate__(state)
        self.vanish, self.change, self._changed = state["vanish"], state["change"], False

    def load(self):
        super().load()
        Path(self.vanish).unlink(missing_ok=True)

    def embed(self, texts):
        if not self._changed:
            self._changed = True
            Path(self.change).write_text("def rewritten():\n    return 'during the run'\n")
        return super().embed(texts)


def block_chunks(path, block):
    """A vector block `(indices, float32 row bytes)` → (path, index, vector bytes) per chunk."""
    indices, rows = block
    size = len(rows) // len(indices)
    return [(path, index, rows[k * size:(k + 1) * size]) for k, index in enumerate(indices)]


class S3:
    """An S3 server (moto) on 127.0.0.1, reached through Beam's own S3 filesystem."""

    def __init__(self, url: str):
        import boto3  # the [test] extra: apache-beam[aws] and moto[server]

        self.url = url
        self.flags = [f"--s3_endpoint_url={url}", "--s3_access_key_id=testing",
                      "--s3_secret_access_key=testing", "--s3_region_name=us-east-1"]
        self.client = boto3.client("s3", endpoint_url=url, aws_access_key_id="testing",
                                   aws_secret_access_key="testing", region_name="us-east-1")

    def bucket(self, name: str) -> str:
        self.client.create_bucket(Bucket=name)
        return name

    def upload(self, bucket: str, prefix: str, files: dict) -> str:
        """Write `files` (relative path → text or bytes) under s3://bucket/prefix; its URL."""
        for rel, content in files.items():
            body = content if isinstance(content, bytes) else content.encode()
            self.client.put_object(Bucket=bucket, Key=f"{prefix}/{rel}", Body=body)
        return f"s3://{bucket}/{prefix}"

    def delete(self, bucket: str, prefix: str, rel: str) -> None:
        self.client.delete_object(Bucket=bucket, Key=f"{prefix}/{rel}")

    def keys(self, bucket: str, prefix: str) -> list[str]:
        pages = self.client.get_paginator("list_objects_v2").paginate(Bucket=bucket,
                                                                       Prefix=prefix + "/")
        return sorted(item["Key"][len(prefix) + 1:] for page in pages
                      for item in page.get("Contents", []))


@pytest.fixture(scope="session")
def s3():
    from moto import server as moto_server

    server = moto_server.ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield S3(f"http://{host}:{port}")
    server.stop()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for_port(port: int, process: subprocess.Popen, what: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"{what} did not start") from None
            time.sleep(0.2)


@pytest.fixture(scope="session")
def job_endpoint():
    """The Python SDK's local job service on 127.0.0.1 (the job-service shape Flink and Spark
    use), beside the launcher."""
    port = free_port()
    service = subprocess.Popen(
        [sys.executable, "-m", "apache_beam.runners.portability.local_job_service_main",
         f"--port={port}"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for_port(port, service, "the local job service")
        yield f"localhost:{port}"
    finally:
        service.terminate()
        service.wait(timeout=30)


END_TO_END = Path(__file__).resolve().parent / "e2e"


def pytest_collection_modifyitems(items):
    """tests/e2e/ (the CLI, the face, faults, isolated workers, subprocesses) is `slow`:
    `pytest -m "not slow"` leaves it out while one stage is being worked on."""
    for item in items:
        if END_TO_END in item.path.parents:
            item.add_marker(pytest.mark.slow)
