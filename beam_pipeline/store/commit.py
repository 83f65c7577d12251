"""CommitSnapshot: the single last step that makes a staged snapshot live.

Order matters: the staged files are fsynced with their folders (local disks), the manifest
is written into the staging folder, the folder is renamed into `snapshots/<id>` (atomic on one
local filesystem; object by object on an object store, where nothing names the new folder
yet), and only then is `CURRENT` replaced atomically. A reader following `CURRENT` therefore
sees the old snapshot or the whole new one, never a part, after a killed process or a power
cut alike.

Paths are strings through `storage` (Beam's FileSystems), so OUT may be gs://, s3://, ….
"""

from __future__ import annotations

import datetime as dt
import json
import os
import secrets
import shutil
from pathlib import Path
from typing import Any

from ..errors import OutputError
from ..layout.schema import (
    CURRENT_FILE,
    FAILED,
    FILES_TABLE,
    FORMAT_VERSION,
    INDEXED,
    MANIFEST_FILE,
    SCHEMA_VERSION,
    SHARD_PREFIX,
    SKIPPED,
    SNAPSHOTS_DIR,
    STAGED_SUMMARY,
    STAGING_DIR,
    STALE,
)
from ..runtime.faults import fault_point
from ..source import storage


def new_snapshot_id(now: dt.datetime | None = None) -> str:
    """Sortable UTC timestamp plus a random suffix, e.g. 20261128T175512.123Z-3f9a1c."""
    now = now or dt.datetime.now(dt.UTC)
    return now.strftime("%Y%m%dT%H%M%S.") + f"{now.microsecond // 1000:03d}Z-{secrets.token_hex(3)}"


def prepare_output(out: str) -> None:
    """Create OUT if needed; refuse a file or a symlink (it could point anywhere), or a scheme
    Beam has no filesystem for."""
    if not storage.is_local(out):
        try:
            storage.check_scheme(out)
        except ValueError as exc:
            raise OutputError(f"cannot write to output {out}: {exc} (install the Beam extra "
                              "for it, e.g. apache-beam[gcp] or apache-beam[aws])") from None
        return
    out = Path(out)
    if out.is_symlink():
        raise OutputError(f"output {out} is a symlink; give the real folder")
    if out.exists() and not out.is_dir():
        raise OutputError(f"output {out} exists and is not a folder")
    try:
        (out / STAGING_DIR).mkdir(parents=True, exist_ok=True)
        (out / SNAPSHOTS_DIR).mkdir(exist_ok=True)
    except OSError as exc:
        raise OutputError(f"cannot write to output {out}: {exc.strerror or exc}") from exc
    if not os.access(out / STAGING_DIR, os.W_OK | os.X_OK):
        raise OutputError(f"cannot write to output {out}: permission denied")


def create_staging(out: str, snapshot_id: str) -> str:
    staging = storage.join(out, STAGING_DIR, snapshot_id)
    if storage.is_local(staging):
        os.mkdir(staging)
    return staging


def discard_staging(staging: str) -> None:
    storage.delete_tree(staging)


def read_manifest(snapshot_dir: str) -> dict:
    """A snapshot's manifest (raises OSError when it is missing, ValueError when unreadable)."""
    return json.loads(storage.read_bytes(storage.join(snapshot_dir, MANIFEST_FILE)))


def read_current(out: str) -> str | None:
    try:
        return storage.read_bytes(storage.join(out, CURRENT_FILE)).decode("utf-8").strip() or None
    except FileNotFoundError:
        return None


def build_manifest(snapshot_id: str, fingerprint: dict, shards: list[dict], counts: dict,
                   failures: list[dict], stale: list[dict], stats: dict, source: dict,
                   previous: str | None = None, embedder_config: dict | None = None,
                   lexical: dict | None = None, ann: dict | None = None,
                   files_table: storage.Stored | None = None) -> dict[str, Any]:
    """The snapshot's manifest. Every file of the snapshot is named in it with its size and
    sha256 (the shards', lexical and approximate index's entries; `files_table` for
    files.parquet), which `verify` recomputes."""
    manifest = {
        "format_version": FORMAT_VERSION,
        "schema_version": SCHEMA_VERSION,
        "snapshot_id": snapshot_id,
        "previous_snapshot": previous,
        "created_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "fingerprint": fingerprint,
        "embedder_config": embedder_config or {},
        "source": source,
        "files_table": FILES_TABLE,
        **({"files_table_bytes": files_table.bytes, "files_table_sha256": files_table.sha256}
           if files_table is not None else {}),
        "shards": sorted(shards, key=lambda s: s["path"]),
        "counts": {**counts, "rows": sum(s["rows"] for s in shards)},
        "failures": failures,
        "stale": stale,
        "stats": stats,
    }
    if lexical is not None:
        manifest["lexical"] = lexical
    if ann is not None:
        manifest["ann"] = ann
    return manifest


def stored(path: str) -> storage.Stored:
    """A file's size and sha256 as the manifest records them."""
    return storage.Stored(storage.size(path), storage.sha256(path))


def staged_counts(staging: str) -> dict[str, int]:
    """Files by status in the staged files.parquet (the whole tree's, after a merge)."""
    status = storage.read_parquet(storage.join(staging, FILES_TABLE), columns=["status"])["status"]
    by_status = {item["values"]: item["counts"] for item in status.value_counts().to_pylist()}
    return {"files": len(status), **{f"files_{s}": by_status.get(s, 0)
                                     for s in (INDEXED, FAILED, SKIPPED, STALE)}}


def clear_staging(out: str) -> None:
    """Remove what killed runs left in OUT/.staging; only call while holding the output lock."""
    if not storage.is_local(out):
        storage.delete_tree(storage.join(out, STAGING_DIR))
        return
    for leftover in (Path(out) / STAGING_DIR).iterdir():
        if leftover.is_dir() and not leftover.is_symlink():
            shutil.rmtree(leftover, ignore_errors=True)
        else:
            leftover.unlink(missing_ok=True)


def staged_summary(staging: str, also_keep: set[str] = frozenset()) -> dict:
    """The pipeline's record of what it staged; stray shards of retried bundles are removed.

    `also_keep` names shards staged outside the pipeline (rows carried forward).
    """
    summary = json.loads(storage.read_bytes(storage.join(staging, STAGED_SUMMARY)))
    keep = {s["path"] for s in summary["shards"]} | also_keep
    for name in storage.list_names(staging):
        if name.startswith(SHARD_PREFIX) and name not in keep:
            storage.delete(storage.join(staging, name))
    return summary


def staged_failures(staging: str) -> list[dict]:
    table = storage.read_parquet(storage.join(staging, FILES_TABLE),
                                 columns=["path", "status", "error"],
                                 filters=[("status", "=", FAILED)])
    return [{"path": p, "reason": e} for p, e in zip(table["path"].to_pylist(),
                                                       table["error"].to_pylist())]


def commit_snapshot(out: str, staging: str, manifest: dict) -> str:
    """Write the manifest, move staging into snapshots/, then flip CURRENT. Returns the snapshot."""
    snapshot_id = manifest["snapshot_id"]
    storage.delete(storage.join(staging, STAGED_SUMMARY))
    # Shards, files.parquet and the indexes reach the disk before the manifest names them:
    # the page cache writes files back in any order, and a power cut must not leave CURRENT
    # naming a snapshot whose shards are empty.
    storage.sync_tree(staging)
    storage.write_bytes(storage.join(staging, MANIFEST_FILE),
                        (json.dumps(manifest, indent=2, sort_keys=False) + "\n").encode())
    storage.sync_folder(staging)
    target = storage.join(out, SNAPSHOTS_DIR, snapshot_id)
    storage.move_tree(staging, target)
    fault_point("before-current")
    storage.write_bytes(storage.join(out, CURRENT_FILE), (snapshot_id + "\n").encode())
    storage.sync_folder(out)
    return target
