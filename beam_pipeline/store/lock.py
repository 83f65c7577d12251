"""OutputLock: one run at a time per output folder.

An exclusive `flock` on `OUT/.lock`, held for the whole run. The kernel drops it when the owning
process dies, so a lock left by a killed run is never "stale" in a way that needs guessing: the
next run simply acquires it, and knows from the owner record left in the file that the previous
run did not finish (its staging leftovers are then safe to remove). Object stores have no
such lock: `output_lock` warns there, and the user's scheduler must not overlap runs.

Example::

    with OutputLock(Path("index")) as lock:
        if lock.previous_owner:
            print("taking over after", lock.previous_owner)
"""

from __future__ import annotations

import contextlib
import datetime as dt
import fcntl
import json
import logging
import os
import socket
from pathlib import Path
from typing import Self

from ..errors import OutputError
from ..source import storage

log = logging.getLogger(__name__)

LOCK_FILE = ".lock"


class LockedError(OutputError):
    """Another run holds the output folder."""


class OutputLock:
    def __init__(self, out: Path):
        self.path = out / LOCK_FILE
        self._fd: int | None = None
        self.previous_owner: dict | None = None  # set when a killed run left its record

    def acquire(self) -> None:
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            owner = _read_owner(fd)
            os.close(fd)
            who = (f"pid {owner.get('pid')} on {owner.get('host')}, started {owner.get('started')}"
                   if owner else "another process")
            raise LockedError(f"{self.path.parent} is being indexed by another run ({who}); "
                              "try again when it has finished") from None
        self.previous_owner = _read_owner(fd)
        record = {"pid": os.getpid(), "host": socket.gethostname(),
                  "started": dt.datetime.now(dt.UTC).isoformat(timespec="seconds")}
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps(record).encode(), 0)
        self._fd = fd

    def release(self) -> None:
        if self._fd is None:
            return
        # An empty file means "released cleanly"; a record left behind means a run died.
        os.ftruncate(self._fd, 0)
        os.close(self._fd)
        self._fd = None

    def __enter__(self) -> Self:
        self.acquire()
        return self

    def __exit__(self, *exc) -> None:
        self.release()


def _read_owner(fd: int) -> dict | None:
    try:
        data = os.pread(fd, 4096, 0)
        return json.loads(data) if data.strip() else None
    except (OSError, ValueError):
        return None


class _NoLock(contextlib.nullcontext):
    previous_owner = None

    def __enter__(self) -> Self:
        return self


def running(out: str) -> dict | None:
    """The record of the run holding a local OUT now ({} when it left none), or None when no
    run holds it (or OUT is on an object store, where there is no lock)."""
    if not storage.is_local(out):
        return None
    try:
        fd = os.open(Path(out) / LOCK_FILE, os.O_RDONLY | os.O_NOFOLLOW)
    except OSError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return _read_owner(fd) or {}
    finally:
        os.close(fd)  # closing drops a lock this took
    return None


def output_lock(out: str) -> OutputLock | _NoLock:
    """The lock for OUT: a real one on a local folder; none (with a warning) elsewhere."""
    if storage.is_local(out):
        return OutputLock(Path(out))
    log.warning("%s is not a local folder: there is no lock against a concurrent run; "
                "schedule one run at a time for this output", out)
    return _NoLock()
