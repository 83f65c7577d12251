"""`watch`: the index follows the tree through file events, one atomic snapshot per group of
changes, the walk's rules applied to each path. Timing stays in the benchmark; these tests
wait for commits, never for a deadline."""

import queue
import shutil
import threading

import pyarrow.parquet as pq
import pytest
from conftest import code_file, make_tree

from beam_pipeline.layout.schema import FILES_TABLE
from beam_pipeline.run.indexing import RunRequest
from beam_pipeline.run.watch import change_set, watch_index
from beam_pipeline.search import Index
from beam_pipeline.source.discover import PathRules
from beam_pipeline.store.verify import verify_index

WAIT_S = 120  # a loaded machine is slow, never wrong


class Watcher:
    """watch_index on a thread; each commit's line arrives on `lines`."""

    def __init__(self, src, out):
        self.lines: queue.Queue = queue.Queue()
        self.stop = threading.Event()
        self.error: list[BaseException] = []
        self.thread = threading.Thread(target=self._run, args=(src, out), daemon=True)

    def _run(self, src, out):
        try:
            watch_index(src, out, request=RunRequest(keep=2, prune_grace_s=0),
                        stop=self.stop, say=self.lines.put)
        except BaseException as exc:  # noqa: BLE001 - reported by the test
            self.error.append(exc)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        self.thread.join(WAIT_S)
        assert not self.thread.is_alive() and not self.error, self.error

    def next_line(self) -> str:
        try:
            return self.lines.get(timeout=WAIT_S)
        except queue.Empty:
            pytest.fail(f"no commit within {WAIT_S} s: {self.error}")

    def until(self, condition) -> int:
        """Wait for commits until `condition()` holds; how many it took."""
        commits = 0
        while not condition():
            line = self.next_line()
            assert "committed" in line or "up to date" in line, line
            commits += 1
        return commits


def indexed_paths(out) -> set[str]:
    index = Index.open(out)
    table = pq.read_table(out / "snapshots" / index.snapshot_id / FILES_TABLE, columns=["path"])
    return set(table["path"].to_pylist())


def fts(out, text) -> list[str]:
    return [hit["path"] for hit in Index.open(out).search(text, k=5, mode="fts")]


def test_watch_follows_create_modify_delete_and_rename(tmp_path):
    src = make_tree(tmp_path / "src", {"a.py": "def alpha_before(): pass\n",
                                       "b.py": code_file("b", 5), "pkg/c.py": code_file("c", 5),
                                       ".gitignore": "*.tmp\n"})
    out = tmp_path / "out"
    with Watcher(src, out) as watcher:
        assert "committed" in watcher.next_line()  # the first catch-up run
        assert indexed_paths(out) == {"a.py", "b.py", "pkg/c.py", ".gitignore"}

        (src / "new.py").write_text("def brand_new_function(): pass\n")
        (src / "scratch.tmp").write_text("ignored by .gitignore\n")
        watcher.until(lambda: "new.py" in indexed_paths(out))
        assert fts(out, "brand_new_function")[:1] == ["new.py"]

        (src / "a.py").write_text("def alpha_after(): pass\n")
        watcher.until(lambda: fts(out, "alpha_after")[:1] == ["a.py"])
        assert fts(out, "alpha_before") == []  # its old content is gone

        (src / "b.py").unlink()
        watcher.until(lambda: "b.py" not in indexed_paths(out))

        (src / "pkg/c.py").rename(src / "pkg/d.py")
        watcher.until(lambda: "pkg/d.py" in indexed_paths(out)
                      and "pkg/c.py" not in indexed_paths(out))

        shutil.rmtree(src / "pkg")  # a folder goes, and all in it
        watcher.until(lambda: not any(p.startswith("pkg/") for p in indexed_paths(out)))
        assert indexed_paths(out) == {"a.py", "new.py", ".gitignore"}  # no scratch.tmp
        assert verify_index(out) == []


def test_a_burst_of_500_files_makes_a_few_commits(tmp_path):
    src = make_tree(tmp_path / "src", {"seed.py": code_file("seed", 3)})
    out = tmp_path / "out"
    with Watcher(src, out) as watcher:
        watcher.next_line()
        make_tree(src / "burst", {f"m{i}.py": code_file(f"m{i}", 3) for i in range(500)})
        commits = watcher.until(lambda: len(indexed_paths(out)) == 501)
        assert commits <= 5, commits
        assert verify_index(out) == []


def test_editors_atomic_saves_end_as_an_in_place_write_would(tmp_path):
    # Editors rarely write in place: vim renames the file away and writes a new one, JetBrains
    # writes a temporary file and renames it over, `sed -i` likewise. Each leaves short-lived
    # paths in the events; the index must end as a fresh `index` of the tree would.
    import os
    import subprocess

    from beam_pipeline import run_index

    src = make_tree(tmp_path / "src", {f"m{i}.py": code_file(f"m{i}", 3) for i in range(4)})
    out = tmp_path / "out"
    with Watcher(src, out) as watcher:
        watcher.next_line()
        (src / "4913").write_text("")  # vim's probe, then the rename-away save
        (src / "4913").unlink()
        os.rename(src / "m1.py", src / "m1.py~")
        (src / "m1.py").write_text(code_file("vim_saved", 2))
        (src / "m1.py~").unlink()
        watcher.until(lambda: fts(out, "vim_saved_1") == ["m1.py"])

        temporary, old = src / "m2.py___jb_tmp___", src / "m2.py___jb_old___"
        temporary.write_text(code_file("jetbrains_saved", 2))  # JetBrains' safe write
        os.rename(src / "m2.py", old)
        os.rename(temporary, src / "m2.py")
        old.unlink()
        watcher.until(lambda: fts(out, "jetbrains_saved_1") == ["m2.py"])

        subprocess.run(["sed", "-i", "s/m3_1/sed_saved/", str(src / "m3.py")], check=True)
        watcher.until(lambda: fts(out, "sed_saved") == ["m3.py"])

        for i in range(5):  # saved five times in a row
            (src / "m0.py").write_text(code_file(f"save{i}", 2))
        watcher.until(lambda: fts(out, "save4_1") == ["m0.py"])
        assert fts(out, "m1_1") == fts(out, "m2_1") == fts(out, "save3_1") == []
        assert verify_index(out) == []
    run_index(src, tmp_path / "fresh", quiet=True)
    assert indexed_paths(out) == indexed_paths(tmp_path / "fresh")


def test_a_change_set_is_the_tree_as_it_is_now(tmp_path):
    src = make_tree(tmp_path / "src", {"keep.py": "x = 1\n", ".gitignore": "out/\n",
                                       "new/one.py": "x = 1\n", "new/two.py": "x = 1\n",
                                       "out/gen.py": "x = 1\n", "node_modules/m.js": "x\n"})
    rules = PathRules(src)
    changes = change_set(str(src), [str(src / p) for p in (
        "keep.py", "gone.py", "new", "out/gen.py", "node_modules/m.js", "old_folder")], rules)
    assert changes.files == ("keep.py", "new/one.py", "new/two.py")  # a new folder's files
    assert changes.removed == ("gone.py", "old_folder")
    assert not changes.rules_changed
    assert change_set(str(src), [str(src / ".gitignore")], rules).rules_changed
    assert not change_set(str(src), [str(tmp_path / "elsewhere.py"), str(src)], rules)


def test_a_source_that_disappears_is_an_error_not_a_spin(tmp_path):
    from beam_pipeline.errors import SourceError

    src = make_tree(tmp_path / "src", {"a.py": code_file("a", 3)})
    watcher = Watcher(src, tmp_path / "out")
    watcher.thread.start()
    assert "committed" in watcher.next_line()
    shutil.rmtree(src)
    watcher.thread.join(WAIT_S)
    assert not watcher.thread.is_alive()
    assert len(watcher.error) == 1 and isinstance(watcher.error[0], SourceError)
    assert "is gone" in str(watcher.error[0]) and verify_index(tmp_path / "out") == []


def test_a_moved_git_head_is_caught_up_with_even_without_file_events(tmp_path):
    import subprocess

    src = make_tree(tmp_path / "src", {"a.py": code_file("a", 3)})
    git = ["git", "-C", str(src), "-c", "user.name=t", "-c", "user.email=t@t"]
    subprocess.run([*git, "init", "-q"], check=True)
    subprocess.run([*git, "add", "-A"], check=True)
    subprocess.run([*git, "commit", "-q", "-m", "one"], check=True)
    with Watcher(src, tmp_path / "out") as watcher:
        assert "committed" in watcher.next_line()
        # HEAD moves; no file the index watches changes (.git/ is excluded).
        subprocess.run([*git, "commit", "-q", "--allow-empty", "-m", "two"], check=True)
        assert "up to date" in watcher.next_line()  # a walk ran, and found nothing new


def _start_cli_watch(src, out):
    import subprocess
    import sys

    return subprocess.Popen([sys.executable, "-m", "beam_pipeline", "watch", str(src),
                             "--output", str(out)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def _read_until(stream, text: str) -> str:
    seen = []
    for line in stream:
        seen.append(line)
        if text in line:
            return "".join(seen)
    pytest.fail(f"{text!r} never came: {''.join(seen)[-2000:]}")


def test_ctrl_c_stops_after_the_commit_in_progress(tmp_path):
    import signal

    src = make_tree(tmp_path / "src", {"a.py": code_file("a", 3)})
    process = _start_cli_watch(src, tmp_path / "out")
    try:
        _read_until(process.stderr, "committed")
        process.send_signal(signal.SIGINT)
        assert process.wait(WAIT_S) == 0
        assert "stopping after the commit in progress" in process.stderr.read()
    finally:
        process.kill()
    assert verify_index(tmp_path / "out") == []


def test_a_killed_watch_leaves_the_last_snapshot_sound_and_index_catches_up(tmp_path):
    import time

    from beam_pipeline import run_index

    src = make_tree(tmp_path / "src", {"a.py": code_file("a", 3)})
    out = tmp_path / "out"
    process = _start_cli_watch(src, out)
    try:
        _read_until(process.stderr, "committed")
        make_tree(src / "many", {f"m{i}.py": code_file(f"m{i}", 20) for i in range(300)})
        time.sleep(1.5)  # the change set's commit is under way (or done): either is fine
        process.kill()  # SIGKILL
        process.wait(WAIT_S)
    finally:
        process.kill()
    assert verify_index(out) == []
    stats = run_index(src, out)
    assert stats.committed or stats.up_to_date
    assert len(indexed_paths(out)) == 301 and verify_index(out) == []


def test_a_quiet_tree_is_recorded_as_caught_up(tmp_path):
    import time

    from beam_pipeline.store.status import index_status

    src = make_tree(tmp_path / "src", {"a.py": code_file("a", 3)})
    out = tmp_path / "out"
    with Watcher(src, out) as watcher:
        watcher.next_line()
        (src / "b.py").write_text(code_file("b", 3))
        watcher.until(lambda: "b.py" in indexed_paths(out))
        deadline = time.monotonic() + WAIT_S
        while index_status(str(out))["caught_up_at"] is None:  # after the next quiet check
            assert time.monotonic() < deadline
            time.sleep(0.2)
        status = index_status(str(out))
        assert status["snapshot"] == Index.open(out).snapshot_id
        assert status["run_in_progress"] is None
