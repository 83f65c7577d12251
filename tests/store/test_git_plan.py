"""A git work tree's plan comes from git's index: content-grade decisions, no file reads of
ours, and git running read-only."""

import hashlib
import os
import subprocess

import pyarrow.parquet as pq
import pytest
from conftest import code_file, make_tree

from beam_pipeline import IndexSettings, run_index
from beam_pipeline.layout.schema import FILES_TABLE
from beam_pipeline.search import Index
from beam_pipeline.source.gitindex import read_git_state

GIT_ENV = {**os.environ, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t",
           "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@t"}


def git(root, *args) -> str:
    return subprocess.run(["git", "-C", str(root), *args], check=True, env=GIT_ENV,
                          capture_output=True, text=True).stdout


@pytest.fixture
def repo(tmp_path):
    src = make_tree(tmp_path / "src", {f"pkg/m{i}.py": code_file(f"m{i}", 20) for i in range(8)})
    git(src, "init", "-q")
    git(src, "add", ".")
    git(src, "commit", "-qm", "first")
    return src


def index(src, out, **request):
    return run_index(src, out, IndexSettings.create("hashing", chunk_size=300), **request)


def files_record(out) -> dict:
    idx = Index.open(out)
    table = pq.read_table(os.path.join(idx.directory, FILES_TABLE))
    return dict(zip(table["path"].to_pylist(), table["git_blob"].to_pylist()))


def tree_state(root) -> dict:
    """Every path under root (git's own folder too) with its bytes' hash and its mtime."""
    state = {}
    for folder, _, names in os.walk(root):
        for name in names:
            path = os.path.join(folder, name)
            with open(path, "rb") as fh:
                state[path] = (hashlib.sha256(fh.read()).hexdigest(), os.stat(path).st_mtime_ns)
    return state


def test_git_blob_ids_are_recorded_for_tracked_unmodified_files_only(repo, tmp_path):
    (repo / "untracked.py").write_text(code_file("u", 5))
    (repo / "pkg/m3.py").write_text(code_file("edited", 5))  # tracked, modified
    index(repo, tmp_path / "out")
    blobs = files_record(tmp_path / "out")
    assert blobs["untracked.py"] is None and blobs["pkg/m3.py"] is None
    for i in (0, 1, 7):
        expected = git(repo, "hash-object", f"pkg/m{i}.py").strip()
        assert blobs[f"pkg/m{i}.py"] == expected


def test_touched_files_with_the_same_content_are_unchanged_without_reading_them(repo, tmp_path):
    out = tmp_path / "out"
    index(repo, out)
    later = os.stat(repo / "pkg/m0.py").st_mtime_ns + 5_000_000_000
    for i in range(8):
        os.utime(repo / f"pkg/m{i}.py", ns=(later, later))  # a checkout, a build tool's touch
    with_git = index(repo, out)
    assert (with_git.files_changed, with_git.files_unchanged) == (0, 8)
    assert with_git.chunks_embedded == 0
    # The new mtimes are recorded: size+mtime alone would now agree too.
    assert index(repo, out, git=False).up_to_date


def test_an_edit_that_keeps_size_and_mtime_is_found_by_git(repo, tmp_path):
    out = tmp_path / "out"
    index(repo, out)
    path = repo / "pkg/m2.py"
    before = os.stat(path)
    text = path.read_text()
    path.write_text(text.replace("m2_1(", "m2_X("))  # same size
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))  # and the same mtime
    assert index(repo, out, dry_run=True, git=False).files_changed == 0, \
        "size and mtime cannot see this edit"
    stats = index(repo, out)
    assert (stats.files_changed, stats.files_unchanged) == (1, 7)
    assert Index.open(out).search("m2_X", k=1)[0]["path"] == "pkg/m2.py"


def test_git_runs_read_only(repo, tmp_path):
    out = tmp_path / "out"
    index(repo, out)
    for i in range(8):  # stat-dirty entries: git compares them and would like to refresh
        os.utime(repo / f"pkg/m{i}.py", ns=(1, 1))
    (repo / "pkg/m5.py").write_text(code_file("changed", 3))
    before = tree_state(repo)
    index(repo, out)
    index(repo, out)
    assert tree_state(repo) == before, "SOURCE, .git/index included, is never written"


def test_an_older_record_without_blob_ids_is_decided_by_stat_then_gets_them(repo, tmp_path):
    out = tmp_path / "out"
    index(repo, out, git=False)
    assert set(files_record(out).values()) == {None}
    (repo / "pkg/m1.py").write_text(code_file("new", 4))
    stats = index(repo, out)
    assert (stats.files_changed, stats.files_unchanged) == (1, 7)
    blobs = files_record(out)
    assert blobs["pkg/m0.py"] == git(repo, "hash-object", "pkg/m0.py").strip()
    assert blobs["pkg/m1.py"] is None  # modified against git's index


def test_a_subfolder_of_a_work_tree_and_a_tree_outside_git(repo, tmp_path):
    state = read_git_state(str(repo / "pkg"))
    assert set(state.blobs) == {f"m{i}.py" for i in range(8)}
    assert state.commit == git(repo, "rev-parse", "HEAD").strip()
    plain = make_tree(tmp_path / "plain", {"a.py": "x = 1\n"})
    assert read_git_state(str(plain)) is None


def test_a_repository_cannot_make_indexing_run_its_programs(repo, tmp_path):
    """Finding 4 of issue 37: a clean filter named by the repository's .gitattributes and
    config ran as the indexing user when git compared the work tree. Nothing runs now."""
    witness = tmp_path / "pwned.txt"
    (repo / ".gitattributes").write_text("*.py filter=evil\n")
    git(repo, "config", "filter.evil.clean", f"sh -c 'id > {witness}; cat'")
    git(repo, "config", "core.fsmonitor", f"sh -c 'id > {witness}.fsmonitor'")
    out = tmp_path / "out"
    witness.unlink(missing_ok=True)  # `git add` above may run it: that is git's, not ours
    index(repo, out)
    later = os.stat(repo / "pkg/m0.py").st_mtime_ns + 5_000_000_000
    for i in range(8):  # stat-dirty: comparing them is where git would run the filter
        os.utime(repo / f"pkg/m{i}.py", ns=(later, later))
    (repo / "pkg/m1.py").write_text(code_file("edited", 4))
    stats = index(repo, out)
    assert not list(tmp_path.glob("pwned.txt*")) and not list(repo.rglob("pwned*"))
    # Decided in-process all the same: the touched files (and .gitattributes) are unchanged,
    # the edit is found.
    assert (stats.files_changed, stats.files_unchanged) == (1, 8)
