"""What git already knows about a work tree: content hashes of unchanged files, mostly without
reading them.

git's index holds, for every tracked file, a blob id (a hash of the content) and the stat data
the file had when that blob was taken. A file whose stat data still match (and that is not
"racily clean": changed within the index's own timestamp) has that blob as its content, with no
read at all; for the others the blob id is computed here, in-process, from the file's bytes
(`blob <size>\0<content>`, SHA-1, as git hashes it). Comparing it with the blob id recorded at
the last run gives `--checksum`-grade decisions. Untracked files (and anything that cannot be
vouched for) are decided as before, by size and mtime.

git only reads: `git ls-files --stage --debug` lists the index with its stat data, which runs
nothing of the repository's. Asking git to compare the work tree instead (`ls-files
--modified`) would run the repository's configured programs, a clean filter
(`filter.<name>.clean`, named by its .gitattributes) or a filesystem monitor, as the indexing
user. So a file that such a filter would change hashes differently here and is re-indexed: a
cost, never a wrong answer. Nothing is written into SOURCE (`GIT_OPTIONAL_LOCKS=0`). A tree
that is not a git work tree, a git that is missing or refuses the repository (another owner:
safe.directory) all give None, and the run falls back to stat data.

Example::

    state = read_git_state("/src/repo")     # None outside git
    state.blobs["pkg/mod.py"]               # 'f2ad6c76f0115a6ba5b00456a849810e7ec0af20'
    state.unchanged("pkg/mod.py", recorded)   # True, False, or None (git cannot say)
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import stat
import subprocess
from dataclasses import dataclass, field

from .discover import is_url

log = logging.getLogger(__name__)

_REGULAR_MODES = {b"100644", b"100755"}  # not symlinks (120000) nor submodules (160000)
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
    """The blob ids vouched for under `root` (paths relative to it), or None outside git."""
    if is_url(root):
        return None
    listed = _git(str(root), "ls-files", "--stage", "--debug", "-z")
    if listed is None or listed.returncode != 0:
        if listed is not None and b"dubious ownership" in listed.stderr:
            log.warning("git refuses %s (another user owns it); deciding changes by size and "
                        "mtime", root)
        return None
    index_path = _git(str(root), "rev-parse", "--git-path", "index")
    if index_path is None or index_path.returncode != 0:
        return None
    try:
        written = os.stat(os.path.join(root, os.fsdecode(index_path.stdout.strip())))
    except OSError:
        return None
    state = GitState(git_commit(root))
    _vouched(str(root), listed.stdout, written.st_mtime_ns, state)
    return state


# One entry of `git ls-files --stage --debug -z`: `mode blob stage\tpath\0`, then its cached
# stat data in five lines (ctime and mtime as seconds:nanoseconds).
_ENTRY = re.compile(rb"(\d+) ([0-9a-f]+) (\d)\t([^\0]*)\0"
                    rb"  ctime: (\d+):(\d+)\n  mtime: (\d+):(\d+)\n"
                    rb"  dev: (\d+)\tino: (\d+)\n  uid: (\d+)\tgid: (\d+)\n"
                    rb"  size: (\d+)\tflags: [0-9a-f]+\n")


def _vouched(root: str, listing: bytes, index_written_ns: int, state: GitState) -> None:
    """Each regular, merged entry's blob into `state.blobs` when the file's content is that
    blob, into `state.modified` when it is not: by the cached stat data when they match and
    are not racy (the file changed within the index's own timestamp), else by hashing the
    file. Files gone or not regular are left to the walk."""
    low = 0xFFFFFFFF  # the index keeps 32 bits of each
    for (mode, blob, stage, path, c_s, c_ns, m_s, m_ns, dev, ino, uid, gid,
         size) in _ENTRY.findall(listing):
        if mode not in _REGULAR_MODES or stage != b"0":
            continue
        name = os.fsdecode(path)
        full = os.path.join(root, name)
        try:
            st = os.lstat(full)
            if not stat.S_ISREG(st.st_mode):
                continue
            mtime = int(m_s) * 1_000_000_000 + int(m_ns)
            same = (mtime == st.st_mtime_ns and mtime < index_written_ns
                    and int(c_s) * 1_000_000_000 + int(c_ns) == st.st_ctime_ns
                    and (int(size), int(ino), int(dev), int(uid), int(gid))
                    == (st.st_size & low, st.st_ino & low, st.st_dev & low, st.st_uid & low,
                        st.st_gid & low))
            blob = blob.decode()
            if same or _blob_id(full, st.st_size) == blob:
                state.blobs[name] = blob
            else:
                state.modified[name] = blob
        except OSError:
            continue  # gone or unreadable: the walk decides


def _blob_id(path: str, size: int) -> str:
    """git's id of the file's content as a blob: SHA-1 of `blob <size>\0<content>`."""
    digest = hashlib.sha1(b"blob %d\0" % size, usedforsecurity=False)
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
