"""How current an index is: its live snapshot, when a run last caught up with SOURCE, and
whether a run holds it now (what `beam-index status` prints, so a stale index is visible).

A run that ends committed or up to date records when, in `OUT/.caught-up` (JSON: `at`, ISO
time, and `snapshot`); `watch` records it again each time it finds the tree quiet. It is not
part of any snapshot and nothing but status reads it.

Example::

    index_status("./index")
    # {"snapshot": "2026…", "committed_at": "…", "caught_up_at": "…", "files": 30, "rows": 519,
    #  "run_in_progress": None}
"""

from __future__ import annotations

import datetime as dt
import json

from ..layout.schema import SNAPSHOTS_DIR
from ..source import storage
from .commit import read_current, read_manifest
from .lock import running

CAUGHT_UP_FILE = ".caught-up"


def record_caught_up(out: str, snapshot_id: str) -> None:
    """OUT was up to date with SOURCE at this moment, as snapshot `snapshot_id`."""
    record = {"at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
              "snapshot": snapshot_id}
    storage.write_bytes(storage.join(out, CAUGHT_UP_FILE), json.dumps(record).encode())


def index_status(out: str) -> dict:
    """The live snapshot (id, when committed, files and rows), when a run last caught up, and
    the record of a run holding OUT now (None when none, or unknown on an object store)."""
    snapshot = read_current(out)
    status = {"output": out, "snapshot": snapshot, "committed_at": None, "files": None,
              "rows": None, "caught_up_at": None, "run_in_progress": running(out)}
    if snapshot is None:
        return status
    try:
        manifest = read_manifest(storage.join(out, SNAPSHOTS_DIR, snapshot))
        status.update(committed_at=manifest.get("created_at"),
                      files=manifest.get("counts", {}).get("files_indexed"),
                      rows=manifest.get("counts", {}).get("rows"))
    except (OSError, ValueError):
        pass
    try:
        caught = json.loads(storage.read_bytes(storage.join(out, CAUGHT_UP_FILE)))
        if caught.get("snapshot") == snapshot:
            status["caught_up_at"] = caught.get("at")
    except (OSError, ValueError, AttributeError):
        pass
    return status
