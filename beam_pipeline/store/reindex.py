"""Re-indexing: compare the tree with the live snapshot and carry unchanged files forward.

The plan is made in the launcher from stat data alone (size + mtime against the previous
snapshot's files.parquet). Only added and changed files go through the pipeline. Afterwards
the rows of unchanged files — and the old rows of changed files whose re-embedding failed, now
marked `stale` — are copied into the new snapshot at Arrow level (a whole shard whose every row
is kept is hard-linked, or copied where links are impossible: server-side on an object store),
so every snapshot stays self-contained and pruning old ones never breaks the live one.

Example::

    previous = load_previous(out)
    reason = rebuild_reason(previous, fingerprint, full=False)   # None → incremental
    plan = plan_changes(discovered_list, todo_list, previous if reason is None else None)
"""

from __future__ import annotations

import datetime as dt
import hashlib
import os
import re
import time
import uuid
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from ..errors import OutputError
from ..layout.schema import (
    FILES_TABLE,
    GIT_BLOB,
    INDEXED,
    PRUNE_GRACE_S,
    SHARD_PREFIX,
    SKIPPED,
    SNAPSHOTS_DIR,
    STALE,
    write_table,
)
from ..runtime.faults import fault_point
from ..search.reader import IndexReadError, shard_names
from ..source import storage
from ..source.discover import FileEntry, is_url, join_url, read_store_object
from ..source.gitindex import GitState
from .commit import read_current, read_manifest
from .rows import DEFAULT_ROWS_PER_SHARD

_SNAPSHOT_ID = re.compile(r"^\d{8}T\d{6}\.\d{3}Z-[0-9a-f]{6}$")


class CorruptSnapshotError(OutputError):
    """The live snapshot cannot be used as the base of an incremental run."""


@dataclass
class Previous:
    snapshot_id: str
    directory: str
    manifest: dict
    # path → (size, mtime_ns, status, file_hash, git_blob) of every file the snapshot knows
    files: dict[str, tuple[int, int, str, str | None, str | None]]


def load_previous(out: str) -> Previous | None:
    snapshot_id = read_current(out)
    if snapshot_id is None:
        return None
    directory = storage.join(out, SNAPSHOTS_DIR, snapshot_id)
    try:
        manifest = read_manifest(directory)
        # What a run carries forward is checked against the base's hashes as it is read:
        # an altered file must not pass into the next snapshot under a fresh hash.
        raw = storage.read_checked(storage.join(directory, FILES_TABLE),
                                   manifest.get("files_table_sha256"))
        table = _with_git_column(pq.ParquetFile(pa.BufferReader(raw)).read())
    except (OSError, ValueError, pa.ArrowException) as exc:
        raise CorruptSnapshotError(f"live snapshot {snapshot_id} is unreadable ({exc}); "
                                   "run with --full to rebuild") from exc
    try:
        shard_names(manifest)
    except IndexReadError as exc:
        raise CorruptSnapshotError(f"snapshot {snapshot_id}: {exc}; run with --full to "
                                   "rebuild") from None
    columns = ("path", "size", "mtime_ns", "status", "file_hash", GIT_BLOB)
    path, *record = (table[name].to_pylist() for name in columns)
    return Previous(snapshot_id, directory, manifest, dict(zip(path, zip(*record))))


def _with_git_column(table: pa.Table) -> pa.Table:
    """A files table of an older snapshot gets its (null) git_blob column."""
    if GIT_BLOB in table.column_names:
        return table
    return table.append_column(GIT_BLOB, pa.nulls(table.num_rows, pa.string()))


def rebuild_reason(previous: Previous | None, fingerprint: dict, full: bool) -> str | None:
    """Why this run must rebuild from scratch, or None when it can re-index incrementally."""
    if full:
        return "--full given"
    if previous is None:
        return "no previous snapshot"
    old = previous.manifest.get("fingerprint")
    if old != fingerprint:
        return f"fingerprint changed: {_fingerprint_diff(old or {}, fingerprint)}"
    return None


def _fingerprint_diff(old: dict, new: dict, prefix: str = "") -> str:
    changes = []
    for key in sorted(set(old) | set(new)):
        a, b = old.get(key), new.get(key)
        if isinstance(a, dict) and isinstance(b, dict):
            inner = _fingerprint_diff(a, b, f"{prefix}{key}.")
            if inner:
                changes.append(inner)
        elif a != b:
            changes.append(f"{prefix}{key} {a} → {b}")
    return ", ".join(changes)


@dataclass
class Plan:
    added: int = 0
    changed: int = 0
    unchanged: int = 0
    deleted: int = 0
    carry: set[str] = field(default_factory=set)  # unchanged: rows and record carried forward
    # changed files with rows in the previous snapshot: kept (stale) if re-embedding fails
    replaceable: set[str] = field(default_factory=set)
    # --checksum: unchanged content under a new mtime; the record takes the new mtime
    touched: dict[str, int] = field(default_factory=dict)

    @property
    def to_process(self) -> int:
        return self.added + self.changed

    @property
    def has_changes(self) -> bool:
        return bool(self.added or self.changed or self.deleted)

    def describe(self) -> str:
        return (f"{self.added} added, {self.changed} changed, {self.unchanged} unchanged, "
                f"{self.deleted} deleted")


def plan_changes(discovered: Path, todo: Path, previous: Previous | None,
                 checksum_root: str | None = None, subset: bool = False,
                 git: GitState | None = None, removed: Collection[str] = ()) -> Plan:
    """Stream the discovered list; write the files to (re)process to `todo`.

    A file is unchanged when git vouches for its content (`git`: the blob id in git's index
    equals the recorded one, no file read); else when its size and mtime equal the recorded
    ones, or — with `checksum_root` (`--checksum`) — when its size and sha256 do. With
    `subset` the list is an explicit selection: every listed file is re-indexed, the files
    under a `removed` path (a file, or a folder) that are not listed are deleted, and every
    other file the previous snapshot knows is carried forward.
    """
    plan = Plan()
    seen: set[str] = set()
    with open(discovered, encoding="ascii") as src, open(todo, "w", encoding="ascii") as dst:
        for line in src:
            entry = FileEntry.from_json(line)
            seen.add(entry.path)
            old = previous.files.get(entry.path) if previous else None
            if old is None:
                plan.added += 1
            # A file that failed last time is retried even when unchanged.
            elif (not subset and old[2] in (INDEXED, SKIPPED)
                  and _unchanged(entry, old, checksum_root, git)):
                plan.unchanged += 1
                plan.carry.add(entry.path)
                if old[1] != entry.mtime_ns:
                    plan.touched[entry.path] = entry.mtime_ns
                continue
            else:
                plan.changed += 1
                if old[2] in (INDEXED, STALE):
                    plan.replaceable.add(entry.path)
            dst.write(line)
    if previous and subset:
        rest = [path for path in previous.files if path not in seen]
        gone = _under(removed, previous.files)
        plan.carry = {path for path in rest if not gone(path)}
        plan.unchanged = len(plan.carry)
        plan.deleted = len(rest) - len(plan.carry)
    elif previous:
        plan.deleted = sum(1 for path in previous.files if path not in seen)
    return plan


def _under(removed: Collection[str], known: Collection[str]) -> Callable[[str], bool]:
    """Whether a path is one of `removed` or inside one of them: a removed path the index
    knows as a file is that file, any other a folder (one `startswith` over all of them)."""
    files = {gone for gone in removed if gone in known}
    folders = tuple(gone.rstrip("/") + "/" for gone in removed if gone not in files)
    return lambda path: path in files or path.startswith(folders)


def _unchanged(entry: FileEntry, old: tuple, checksum_root: str | None,
               git: GitState | None) -> bool:
    said = git.unchanged(entry.path, old[4]) if git is not None else None
    if said is not None:
        return said
    if checksum_root is None:
        return old[:2] == (entry.size, entry.mtime_ns)
    if old[0] != entry.size or old[3] is None:
        return False
    try:
        return file_sha256(checksum_root, entry.path) == old[3]
    except OSError:
        return False


def file_sha256(root: str, rel: str) -> str:
    """The sha256 of a source file's bytes, read in the launcher (local, or a URL root through
    Beam's FileSystems: one GET per file; discovery's size limit bounds it)."""
    if is_url(root):
        return hashlib.sha256(read_store_object(join_url(root, rel), -1)).hexdigest()
    with open(os.path.join(root, rel), "rb") as fh:
        return hashlib.file_digest(fh, "sha256").hexdigest()


def _path_filter(table: pa.Table, paths: set[str]) -> pa.Array:
    return pc.is_in(table["path"], value_set=pa.array(sorted(paths), pa.string()))


# Each run writes at least one shard: a watch's one-file commits (one more shard each) or a
# distributed runner's bundles leave many small ones, and every shard is a file that each
# commit lists and each search opens. Carrying merges shards of fewer than SMALL_SHARD_ROWS
# kept rows into shards of about DEFAULT_ROWS_PER_SHARD once MERGE_SHARDS of them exist.
SMALL_SHARD_ROWS = DEFAULT_ROWS_PER_SHARD // 8
MERGE_SHARDS = 8


@dataclass(frozen=True, eq=False)
class _Kept:
    """The rows of one previous shard that a run carries."""

    entry: dict  # the previous manifest's shard entry
    source: str
    keep: pa.Array  # a mask over the shard's rows
    rows: int
    files: int

    @property
    def whole(self) -> bool:
        return self.rows == len(self.keep)


def carry_rows(previous: Previous, paths: set[str], staging: str,
               claim: Callable[[str], None] | None = None) -> list[dict]:
    """Copy the rows of `paths` from the previous snapshot's shards into `staging`; the new
    shards' records. Shards left with few rows are merged (SMALL_SHARD_ROWS, MERGE_SHARDS).

    `claim` hears each new shard's name before the shard exists (the lexical index skips
    rows it already holds)."""
    if not paths:
        return []
    wanted = pa.array(sorted(paths), pa.string())
    kept = []
    for shard in previous.manifest["shards"]:
        source = storage.join(previous.directory, shard["path"])
        shard_paths = storage.read_parquet(source, columns=["path"])["path"]
        keep = pc.is_in(shard_paths, value_set=wanted)
        rows = pc.sum(keep).as_py() or 0
        if rows:
            files = pc.count_distinct(shard_paths.filter(keep)).as_py()
            kept.append(_Kept(shard, source, keep, rows, files))
    small = [piece for piece in kept if piece.rows < SMALL_SHARD_ROWS]
    if len(small) < MERGE_SHARDS:
        small = []
    shards = []
    for piece in kept:
        if piece in small:
            continue
        if piece.whole:
            shards.append(_link(piece, staging, claim))
        else:
            shards.append(_write(_read_kept(previous, piece), staging, claim))
        fault_point("mid-carry")
    shards.extend(_merge(previous, small, staging, claim))
    return shards


def _link(piece: _Kept, staging: str, claim: Callable[[str], None] | None) -> dict:
    name = _shard_name(claim)
    target = storage.join(staging, name)
    storage.link_or_copy(piece.source, target)
    # The previous manifest's hash, not the file's now: a copy of an altered shard must fail
    # verify here too.
    digest = piece.entry.get("sha256") or storage.sha256(target)
    return {"path": name, "rows": piece.rows, "files": piece.files,
            "bytes": storage.size(target), "sha256": digest}


def _merge(previous: Previous, pieces: list[_Kept], staging: str,
           claim: Callable[[str], None] | None) -> list[dict]:
    """Small shards' kept rows as few shards, each of whole files sorted by path."""
    shards, tables, rows = [], [], 0
    for i, piece in enumerate(pieces):
        tables.append(_read_kept(previous, piece))
        rows += piece.rows
        if rows >= DEFAULT_ROWS_PER_SHARD or i == len(pieces) - 1:
            merged = pa.concat_tables(tables, promote_options="default").sort_by(
                [("path", "ascending"), ("chunk_index", "ascending")])
            shards.append(_write(merged, staging, claim))
            fault_point("mid-carry")
            tables, rows = [], 0
    return shards


def _read_kept(previous: Previous, piece: _Kept) -> pa.Table:
    try:
        raw = storage.read_checked(piece.source, piece.entry.get("sha256"))
    except storage.AlteredFile as exc:
        raise CorruptSnapshotError(f"snapshot {previous.snapshot_id}: {exc}; run with "
                                   "--full to rebuild") from None
    return pq.ParquetFile(pa.BufferReader(raw)).read().filter(piece.keep)


def _write(table: pa.Table, staging: str, claim: Callable[[str], None] | None) -> dict:
    name = _shard_name(claim)
    stored = write_table(table, storage.join(staging, name))
    return {"path": name, "rows": table.num_rows,
            "files": pc.count_distinct(table["path"]).as_py(), "bytes": stored.bytes,
            "sha256": stored.sha256}


def _shard_name(claim: Callable[[str], None] | None) -> str:
    name = f"{SHARD_PREFIX}{uuid.uuid4().hex}.parquet"
    if claim is not None:
        claim(name)
    return name


def merge_files_table(staging: str, previous: Previous | None, plan: Plan,
                      git: GitState | None = None) -> dict[str, str]:
    """Rewrite staging's files.parquet as the whole tree's; returns the stale files' reasons.

    Records of unchanged files come from the previous snapshot; a changed file whose
    re-embedding failed keeps its previous record, with status `stale` and the new reason.
    Every other record gets git's blob id of this run (null where git vouched for nothing).
    Without a previous snapshot only the blob ids are filled in.
    """
    new = storage.read_parquet(storage.join(staging, FILES_TABLE))
    if previous is None:
        if git is not None:
            write_table(_set_git_blobs(new, git), storage.join(staging, FILES_TABLE))
        return {}
    failed = new.filter(pc.equal(new["status"], "failed"))
    stale = {p: e for p, e in zip(failed["path"].to_pylist(), failed["error"].to_pylist())
             if p in plan.replaceable}
    old = _with_git_column(storage.read_parquet(storage.join(previous.directory, FILES_TABLE)))
    carried = old.filter(_path_filter(old, plan.carry))
    if plan.touched:
        mtimes = [plan.touched.get(p, m) for p, m in zip(carried["path"].to_pylist(),
                                                          carried["mtime_ns"].to_pylist())]
        carried = carried.set_column(carried.schema.get_field_index("mtime_ns"), "mtime_ns",
                                     pa.array(mtimes, pa.int64()))
    kept_old = old.filter(_path_filter(old, set(stale)))
    if kept_old.num_rows:
        errors = pa.array([stale[p] for p in kept_old["path"].to_pylist()], pa.string())
        kept_old = kept_old.set_column(kept_old.schema.get_field_index("status"), "status",
                                       pa.array([STALE] * kept_old.num_rows, pa.string()))
        kept_old = kept_old.set_column(kept_old.schema.get_field_index("error"), "error", errors)
    fresh = new.filter(pc.invert(_path_filter(new, set(stale))))
    current = pa.concat_tables([fresh, carried.cast(new.schema)])
    if git is not None:
        current = _set_git_blobs(current, git)
    merged = pa.concat_tables([current, kept_old.cast(new.schema)])
    write_table(merged.sort_by("path"), storage.join(staging, FILES_TABLE))
    return stale


def _set_git_blobs(table: pa.Table, git: GitState) -> pa.Table:
    blobs = [git.blobs.get(path) for path in table["path"].to_pylist()]
    return table.set_column(table.schema.get_field_index(GIT_BLOB), GIT_BLOB,
                            pa.array(blobs, pa.string()))


def prune_snapshots(out: str, keep: int, live: str, grace_s: float = PRUNE_GRACE_S,
                    now: float | None = None) -> list[str]:
    """Remove the snapshots older than the `keep` newest (never the live one) that have been
    superseded for at least `grace_s` seconds; returns those removed. The rest wait for a
    later run's prune."""
    root = storage.join(out, SNAPSHOTS_DIR)
    ids = [name for name in storage.list_names(root) if _SNAPSHOT_ID.match(name)
           and (not storage.is_local(root) or Path(root, name).is_dir())]
    now = time.time() if now is None else now
    committed = {snapshot_id: _committed_at(root, snapshot_id) for snapshot_id in ids}
    doomed = prunable(ids, committed, keep, live, grace_s, now)
    for snapshot_id in doomed:
        storage.delete_tree(storage.join(root, snapshot_id))
        fault_point("mid-prune")
    return doomed


def prunable(ids: Sequence[str], committed: dict[str, float | None], keep: int, live: str,
             grace_s: float, now: float) -> list[str]:
    """Which of `ids` (snapshot ids, oldest first) go: those past the `keep` newest, but the
    live one, whose successor was committed at least `grace_s` before `now`. `committed` is
    each snapshot's commit time, None for a folder with no readable manifest: a run killed
    before its commit, which no reader ever saw (it goes at once) and which superseded
    nothing (it is skipped when looking for a snapshot's successor)."""
    ids = sorted(ids)
    doomed = []
    for at, snapshot_id in enumerate(ids[:max(0, len(ids) - keep)]):
        if snapshot_id == live:
            continue
        if committed[snapshot_id] is None:
            doomed.append(snapshot_id)
            continue
        successor = next((committed[later] for later in ids[at + 1:]
                          if committed[later] is not None), None)
        if successor is not None and now - successor >= grace_s:
            doomed.append(snapshot_id)
    return doomed


def _committed_at(root: str, snapshot_id: str) -> float | None:
    """When a snapshot was committed (its manifest's created_at), or None without one."""
    try:
        manifest = read_manifest(storage.join(root, snapshot_id))
        return dt.datetime.fromisoformat(manifest["created_at"]).timestamp()
    except (OSError, ValueError, KeyError, TypeError):
        return None
