"""How `beam-index search` finds a `serve` of the same OUT: the server advertises itself in
OUT/.serve (its URL, pid, host, and the name of its token's variable) and holds an exclusive
lock on that file for its life; a search that finds the file locked, written on this host,
asks that server. A server killed at any moment releases the lock with its process, so a
stale file is never believed. Local OUT only (an object store has no lock). The standard
library only: a search that uses a server does not import the search stage at all.

Example::

    with advertise("index", "http://127.0.0.1:8765", token_env=None):
        ...                               # serving
    found = find_server("index")          # {"url": …, …} while it serves, else None
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import socket
from collections.abc import Iterator

from ..source.discover import is_url

log = logging.getLogger(__name__)

SERVE_FILE = ".serve"


@contextlib.contextmanager
def advertise(out: str, url: str, token_env: str | None) -> Iterator[bool]:
    """Advertise the server at `url` in OUT/.serve while the block runs; yields whether it
    is advertised (not for an object store, nor when another server already is)."""
    if is_url(out) or not os.path.isdir(out):
        yield False
        return
    path = os.path.join(out, SERVE_FILE)
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o644)
    except OSError as exc:  # a read-only OUT (someone else's index) is served all the same
        log.warning("cannot advertise in %s (%s): searches will not find this server", path,
                    exc.strerror or exc)
        yield False
        return
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            log.warning("another server already serves %s: searches will not find this one",
                        out)
            yield False
            return
        record = {"url": url, "pid": os.getpid(), "host": socket.gethostname(),
                  "token_env": token_env}
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps(record).encode(), 0)
        try:
            yield True
        finally:
            os.ftruncate(fd, 0)  # the lock goes with the descriptor
    finally:
        os.close(fd)


def find_server(out: str) -> dict | None:
    """The record of the server advertising OUT now, on this host; None when there is none."""
    if is_url(out):
        return None
    try:
        fd = os.open(os.path.join(out, SERVE_FILE), os.O_RDONLY | os.O_NOFOLLOW)
    except OSError:
        return None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
            return None  # nobody holds it: no server (or a killed one's leftover)
        except BlockingIOError:
            pass
        try:
            record = json.loads(os.pread(fd, 4096, 0))
        except ValueError:
            return None  # being written
    finally:
        os.close(fd)
    if not isinstance(record, dict) or record.get("host") != socket.gethostname() \
            or not str(record.get("url", "")).startswith("http://"):
        return None
    return record
