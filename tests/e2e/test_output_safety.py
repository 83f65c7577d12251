"""Outputs that cannot be written, and what the indexer may touch: a clear one-line error and
the previous snapshot intact; nothing outside OUT written; no API key anywhere."""

import json
import os
import resource
import secrets
import subprocess
import uuid

import pytest
from conftest import BEAM_INDEX, code_file, make_tree, run_cli

from beam_pipeline.layout.schema import CURRENT_FILE, STAGING_DIR
from beam_pipeline.store.verify import verify_index
from beam_pipeline.testing.fake_embeddings import FakeEmbeddingServer


def _indexed(src, out):
    done = run_cli("index", src, "--output", out, "-q")
    assert done.returncode == 0, done.stderr
    return (out / CURRENT_FILE).read_text()


def _grow(src, files=40, lines=200):
    """Files of distinct random identifiers: their vectors and text do not compress away."""
    for i in range(files):
        (src / f"big{i}.py").write_text("".join(
            f"def f_{secrets.token_hex(6)}(v_{secrets.token_hex(4)}):\n"
            f"    return {secrets.token_hex(8)}\n" for _ in range(lines)))


def _assert_failed_cleanly(done, out, live):
    assert done.returncode == 1, done.stderr
    lines = done.stderr.strip().splitlines()
    assert lines[-1].startswith("beam-index: error: ") and "Traceback" not in done.stderr
    assert (out / CURRENT_FILE).read_text() == live
    assert not any((out / STAGING_DIR).iterdir())
    assert verify_index(out) == []


def test_a_file_size_limit_fails_the_run_and_keeps_the_snapshot(tmp_path):
    src = make_tree(tmp_path / "src", {"a.py": code_file("a", 10)})
    out = tmp_path / "out"
    live = _indexed(src, out)
    _grow(src)

    def limit_file_size():  # like `ulimit -f 64` (64 KiB); Python ignores SIGXFSZ
        resource.setrlimit(resource.RLIMIT_FSIZE, (64 * 1024, 64 * 1024))

    done = subprocess.run([*BEAM_INDEX, "index", str(src), "--output", str(out), "-q"],
                          preexec_fn=limit_file_size, capture_output=True, text=True,
                          timeout=300, check=False)
    _assert_failed_cleanly(done, out, live)
    assert "File too large" in done.stderr


@pytest.fixture
def small_filesystem(tmp_path):
    mount = tmp_path / "small"
    mount.mkdir()
    made = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=512k", "tmpfs", str(mount)],
                          capture_output=True, text=True, check=False)
    if made.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here: {made.stderr.strip()}")
    yield mount
    subprocess.run(["umount", str(mount)], check=True)


def test_a_full_filesystem_fails_the_run_and_keeps_the_snapshot(tmp_path, small_filesystem):
    src = make_tree(tmp_path / "src", {"a.py": code_file("a", 10)})
    out = small_filesystem / "out"
    live = _indexed(src, out)
    _grow(src, files=60, lines=400)  # several MB of shards for a 512 KiB filesystem
    done = run_cli("index", src, "--output", out, "-q")
    _assert_failed_cleanly(done, out, live)
    assert "No space left on device" in done.stderr


def _listing(root, skip):
    return {str(p.relative_to(root)): (p.stat(follow_symlinks=False).st_mtime_ns,
                                       p.stat(follow_symlinks=False).st_size)
            for p in root.rglob("*") if skip not in p.parents and p != skip}


def test_nothing_outside_the_output_is_written_or_deleted(tmp_path):
    src = make_tree(tmp_path / "src", {f"m{i}.py": code_file(f"m{i}", 20) for i in range(8)})
    out = tmp_path / "index"
    make_tree(tmp_path, {"index-sibling/keep.txt": "x", "index.bak/old.parquet": "y"})
    (tmp_path / "index-link").symlink_to(tmp_path / "index-sibling")
    before = _listing(tmp_path, out)
    _indexed(src, out)
    (src / "m0.py").write_text(code_file("changed", 5))  # counts as writing in SOURCE: undo
    before["src/m0.py"] = _listing(tmp_path, out)["src/m0.py"]
    for keep in ("3", "1"):  # re-index, then prune down to one snapshot
        assert run_cli("index", src, "--output", out, "-q", "--keep", keep,
                       "--prune-grace", "0", "--full").returncode == 0
    assert _listing(tmp_path, out) == before


def test_an_api_key_never_appears_in_output_manifest_or_stats(tmp_path):
    secret = f"sk-test-{uuid.uuid4().hex}"
    src = make_tree(tmp_path / "src", {"a.py": code_file("a", 20), "b.py": "POISON = 1\n"})
    stats_path = tmp_path / "stats.json"
    with FakeEmbeddingServer(32) as server:
        server.fail_next = [(429, {"Retry-After": "0"}), (500, {})]
        env = {**os.environ, "MY_KEY": secret}
        done = subprocess.run(
            [*BEAM_INDEX, "index", str(src), "--output", str(tmp_path / "out"), "--verbose",
             "--embedder", "openai", "--embedding-url", server.url, "--embedding-model", "m",
             "--embedding-dim", "32", "--api-key-env", "MY_KEY", "--stats-json",
             str(stats_path)], env=env, capture_output=True, text=True, timeout=300,
            check=False)
        assert done.returncode == 0, done.stderr
        assert server.requests[0]["auth"] == f"Bearer {secret}"  # it was sent, to the server
        server.status_always = 401
        refused = subprocess.run(
            [*BEAM_INDEX, "index", str(src), "--output", str(tmp_path / "out2"), "--embedder",
             "openai", "--embedding-url", server.url, "--embedding-model", "m",
             "--embedding-dim", "32", "--api-key-env", "MY_KEY"], env=env,
            capture_output=True, text=True, timeout=300, check=False)
    assert refused.returncode == 1
    stats = json.loads(stats_path.read_text())
    assert stats["failed_files"] == 1  # the poisoned file: its reason is recorded
    written = [done.stdout, done.stderr, refused.stdout, refused.stderr, stats_path.read_text()]
    written += [p.read_text(errors="replace") for p in (tmp_path / "out").rglob("*.json")]
    assert not [text for text in written if secret in text]


def test_an_output_the_user_cannot_write_fails_in_one_line_and_keeps_the_snapshot(world_tmp):
    src = make_tree(world_tmp / "src", {"a.py": code_file("a", 10)})
    out = world_tmp / "out"
    live = _indexed(src, out)  # as root; the folder stays root's, 0755
    _grow(src, files=2, lines=20)
    done = run_cli("index", src, "--output", out, "-q", user="nobody")
    assert done.returncode == 1, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "cannot write to output" in lines[0], done.stderr
    assert (out / CURRENT_FILE).read_text() == live and verify_index(out) == []
