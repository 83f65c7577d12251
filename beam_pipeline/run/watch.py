"""watch_index: the index follows SOURCE as its files change.

Design: micro-batches through the batch pipeline, in one warm process. The OS's file events
(watchfiles: inotify, FSEvents, ReadDirectoryChangesW; Rust) are grouped until the tree is quiet
for `step_ms` (or for at most `debounce_ms`), turned into a change set — files to re-index,
paths gone — by the walk's own rules (discover.PathRules: excludes, secrets, every .gitignore
on the way), and given to `run_index` as `RunRequest(files=…, removed=…)`: no walk, the same
transforms as `index`, one atomic snapshot per group, the rest carried forward. Events that
arrive while a commit runs wait in the watcher and make the next group, so a burst (a `git
checkout` of 2,000 files) becomes one or a few commits and a file saved three times during a
commit is embedded once. Beam is imported once and the embedder object lives across commits.

Why not a streaming pipeline: Beam's Python SDK runs unbounded pipelines only on runners with
streaming support (Dataflow, Flink, Prism's partial support); the DirectRunner's in-process
engine, the default here, runs bounded pipelines only, and the per-file grouping that makes a
file's rows all or nothing needs windows and triggers there. A micro-batch is that grouping's
bounded case, committed exactly as `index` commits.

Example::

    stop = threading.Event()
    watch_index("repo", "index", stop=stop, say=print)   # until stop.set()
"""

from __future__ import annotations

import dataclasses
import logging
import os
import threading
import time
from collections.abc import Callable, Iterable

from ..errors import SourceError, UsageError
from ..source.discover import (
    SECRET_FILES,
    PathRules,
    is_url,
    iter_source_files,
    relative_to_root,
)
from ..source.gitindex import git_commit
from ..store.commit import read_current
from ..store.status import record_caught_up
from .indexing import RunRequest, run_index, source_root
from .settings import IndexSettings
from .stats import ProcessingStats

log = logging.getLogger(__name__)

STEP_MS = 100  # the tree quiet this long ends a group of events
DEBOUNCE_MS = 1_000  # a group of events is never held longer
# How often, with no events, the loop checks that SOURCE is there and where git's HEAD is: a
# branch switch is caught up with even if the OS dropped its events (an overflowing queue).
CHECK_S = 2.0


@dataclasses.dataclass(frozen=True)
class ChangeSet:
    """What a group of file events asks of the index."""

    files: tuple[str, ...]  # to (re)index: created, modified, moved here
    removed: tuple[str, ...]  # gone: files, or folders with all under them
    rules_changed: bool  # a .gitignore changed: what is indexed may change anywhere

    def __bool__(self) -> bool:
        return bool(self.files or self.removed or self.rules_changed)


def change_set(root: str, paths: Iterable[str], rules: PathRules) -> ChangeSet:
    """The change set of the paths that file events named, as the tree is now: a path that
    exists is to index (a folder: every file in it the walk would index), one that does not is
    gone; paths the walk would skip are left out."""
    files: set[str] = set()
    removed: set[str] = set()
    rules_changed = False
    for path in paths:
        rel = relative_to_root(root, path)
        if rel in ("", ".") or rel.startswith("../") or os.path.isabs(rel):
            continue  # the root itself, or outside it
        if rel.rsplit("/", 1)[-1] == ".gitignore":
            rules_changed = True
            continue
        if rules.skip_reason(rel) is not None:
            continue
        full = os.path.join(root, rel)
        if os.path.isdir(full) and not os.path.islink(full):
            # A folder created or moved here brings its files; no event names them.
            files.update(f"{rel}/{entry.path}" for entry in iter_source_files(full)
                         if rules.skip_reason(f"{rel}/{entry.path}") is None)
        elif os.path.lexists(full):
            files.add(rel)
        else:
            removed.add(rel)
    return ChangeSet(tuple(sorted(files)), tuple(sorted(removed)), rules_changed)


def watch_index(
    source: str | os.PathLike,
    output: str | os.PathLike,
    settings: IndexSettings | None = None,
    request: RunRequest | None = None,
    *,
    pipeline_options=None,
    stop: threading.Event | None = None,
    say: Callable[[str], None] = print,
    step_ms: int = STEP_MS,
    debounce_ms: int = DEBOUNCE_MS,
) -> int:
    """Bring `output` up to date with `source`, then commit each group of file changes as it
    comes, until `stop` is set; returns the number of snapshots committed.

    Args:
      source: a local folder (file events exist only for local paths).
      output: the index folder or URL.
      settings: as for run_index.
      request: as for run_index; its `files` and `removed` are this loop's to set.
      pipeline_options: as for run_index.
      stop: set it to end the loop (after the commit in progress).
    Raises SourceError when SOURCE disappears (the last snapshot stays live).
      say: receives one line per commit.
      step_ms, debounce_ms: how events are grouped (watchfiles' step and debounce).
    """
    import watchfiles

    if is_url(source):
        raise UsageError(f"watch needs a local SOURCE (file events), not {source}")
    root = source_root(source)
    settings = settings or IndexSettings.create()
    request = request or RunRequest()
    stop = stop or threading.Event()
    commits = 0

    def run(changes: ChangeSet | None, first: bool = False) -> bool:
        nonlocal commits
        started = time.monotonic()
        if changes is None or changes.rules_changed:  # walk once: the rules themselves moved
            asked = dataclasses.replace(request, files=None, removed=None)
        else:
            asked = dataclasses.replace(request, files=list(changes.files),
                                        removed=list(changes.removed))
        if not first:  # one line per commit says it; no bars, no plan line each time
            asked = dataclasses.replace(asked, quiet=True, announce=log.debug)
        stats = run_index(root, output, settings, asked, pipeline_options=pipeline_options)
        if stats.committed:
            commits += 1
        say(_commit_line(stats, time.monotonic() - started))
        # Whether the index now holds the tree as it is (a failed file keeps old rows).
        return (stats.committed or stats.up_to_date) and not stats.failed_files

    head = git_commit(root)
    failed = not run(None, first=True)
    rules = PathRules(root, secret_files=() if settings.include_secrets else SECRET_FILES)
    checked = time.monotonic()
    for events in watchfiles.watch(root, watch_filter=None, step=step_ms, debounce=debounce_ms,
                                   stop_event=stop, raise_interrupt=False,
                                   yield_on_timeout=True, rust_timeout=int(CHECK_S * 1000)):
        _check_source(root)
        changes = change_set(root, (path for _, path in events), rules)
        if not events or time.monotonic() - checked >= CHECK_S:
            checked = time.monotonic()
            now = git_commit(root)
            if now != head:  # a checkout, a reset, a pull: walk once, whatever was heard
                log.info("git HEAD moved (%s → %s): catching up with the tree", head, now)
                head = now
                changes = ChangeSet((), (), rules_changed=True)
            elif not events and not failed:  # the tree is quiet and every change is in
                record_caught_up(os.fspath(output), read_current(os.fspath(output)))
        if changes.rules_changed:
            rules.forget()
        if changes and not stop.is_set():
            try:
                failed = not run(changes)
            except Exception:
                _check_source(root)  # gone during the run: say that, not what it broke
                raise
    return commits


def _check_source(root: str) -> None:
    if not os.path.isdir(root):
        raise SourceError(f"SOURCE {root} is gone; watch stops (the last snapshot stays live)")


def _commit_line(stats: ProcessingStats, seconds: float) -> str:
    when = time.strftime("%H:%M:%S")
    if stats.up_to_date:
        return f"{when} up to date (snapshot {stats.snapshot_id})"
    if not stats.committed:
        return f"{when} nothing committed ({stats.failed_files} files failed)"
    failed = f", {stats.failed_files} failed (their previous rows kept)" \
        if stats.failed_files else ""
    return (f"{when} committed {stats.snapshot_id}: {stats.files_added} added, "
            f"{stats.files_changed} changed, {stats.files_deleted} deleted, "
            f"{stats.chunks_embedded} chunks embedded{failed}, {seconds * 1000:.0f} ms")
