"""What git already knows about a work tree: content hashes of unchanged files, without reading
them.

git's index holds a blob id (a hash of the content) for every tracked file, and git finds the
files whose work-tree content differs from it by their stat data, reading only those whose stat
changed. So for a tracked file git reports unmodified, the index's blob id is the content's
hash, and comparing it with the blob id recorded at the last run gives `--checksum`-grade
decisions with no file read of ours. Untracked files (and anything git cannot vouch for) are
decided as before, by size and mtime.

git runs read-only: `GIT_OPTIONAL_LOCKS=0` (it never refreshes its index on disk), no
filesystem monitor (`core.fsmonitor` is a program a repository's config could name), and
nothing is written into SOURCE. A tree that is not a git work tree, a git that is missing or
refuses the repository (another owner: safe.directory) all give None, and the run falls back
to stat data.

Example::

    state = read_git_state("/src/repo")     # None outside git
    state.blobs["pkg/mod.py"]               # 'f2ad6c76f0115a6ba5b00456a849810e7ec0af20'
    state.unchanged("pkg/mod.py", recorded)   # True, False, or None (git cannot say)
"""

from __future__ import annotations

import logging
import os
import subprocess
from dataclasses import dataclass, field

from .discover import is_url

log = logging.getLogger(__name__)

_REGULAR_MODES = {"100644", "100755"}  # not symlinks (120000) nor submodules (160000)
_TIMEOUT_S = 120


@dataclass
class GitState:
    commit: str | None  # HEAD (None in a repository without commits)
    # path relative to SOURCE → blob id, for tracked regular files whose work-tree content
    # matches the index (git's own stat check; files whose stat changed are compared by git)
    blobs: dict[str, str] = field(default_factory=dict)
    # tracked regular files whose work tree differs from the index: path → the index's blob id
    # (not the content's: only "the content is not this blob" is known)
    modified: dict[str, str] = field(default_factory=dict)

    def unchanged(self, path: str, recorded_blob: str | None) -> bool | None:
        """Is `path`'s content the one recorded as `recorded_blob`? None when git cannot say."""
        if recorded_blob is None:
            return None
        blob = self.blobs.get(path)
        if blob is not None:
            return blob == recorded_blob
        if self.modified.get(path) == recorded_blob:
            return False  # edited since the recorded content was staged
        return None


def _git(root: str, *args: str) -> subprocess.CompletedProcess | None:
    env = {**os.environ, "GIT_OPTIONAL_LOCKS": "0", "GIT_TERMINAL_PROMPT": "0", "LC_ALL": "C"}
    try:
        return subprocess.run(["git", "-C", root, "-c", "core.fsmonitor=false", *args],
                              capture_output=True, env=env, timeout=_TIMEOUT_S, check=False)
    except (OSError, subprocess.SubprocessError):
        return None


def git_commit(root: str) -> str | None:
    """HEAD of the git work tree at `root`, if it is one (and git is installed)."""
    if is_url(root):
        return None
    proc = _git(str(root), "rev-parse", "--verify", "-q", "HEAD")
    if proc is None or proc.returncode != 0:
        return None
    return proc.stdout.decode().strip() or None


def read_git_state(root: str) -> GitState | None:
    """The blob ids git vouches for under `root` (paths relative to it), or None outside git."""
    if is_url(root):
        return None
    staged = _git(str(root), "ls-files", "--stage", "-z")
    if staged is None or staged.returncode != 0:
        if staged is not None and b"dubious ownership" in staged.stderr:
            log.warning("git refuses %s (another user owns it); deciding changes by size and "
                        "mtime", root)
        return None
    modified = _git(str(root), "ls-files", "--modified", "-z")
    if modified is None or modified.returncode != 0:
        return None
    dirty = set(modified.stdout.split(b"\0"))
    state = GitState(git_commit(root))
    for record in staged.stdout.split(b"\0"):
        if not record:
            continue
        meta, _, path = record.partition(b"\t")
        mode, blob, stage = meta.decode().split()
        if mode in _REGULAR_MODES and stage == "0":
            (state.modified if path in dirty else state.blobs)[os.fsdecode(path)] = blob
    return state
