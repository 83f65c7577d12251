"""The resume journal: what a run has embedded, kept until a commit has absorbed it.

A killed, cancelled or failed run loses its staging folder, but the vectors it paid for need
not be paid again. Each embedding worker appends what it embeds, batch by batch, to its own
segment under `OUT/.journal/<fingerprint key>/`, outside `.staging` (which every run clears)
and outside every snapshot (never visible through CURRENT). The next run with the same
fingerprint hands the journal's vectors to ReuseKnownVectors with the previous snapshot's, so
only chunks nobody embedded yet reach the embedder. A commit deletes the journal.

A segment is a sequence of blocks, each `header | keys | rows`: the header holds a magic, the
block's vector count, the dimension and a CRC-32 of the rest; a key is the 16-byte hash of a
chunk's text (text_key), the rows are float32. A reader keeps every whole block and stops
at the first torn or damaged one, so a process killed mid-write loses only that block. A block
from an attempt that a runner later retried is kept too: under one fingerprint a chunk text's
vector is the same whichever attempt computed it. Nothing in a segment is ever executed (no
pickle).

Locally a segment is one file per writer, appended and flushed to the OS after every batch
(it survives a killed process; `fsync=True` also survives power loss, at the cost the README
states). An object store cannot append: a writer there puts a new object when a batch arrives
at least `STORE_FLUSH_S` after the last one, and at the end of every bundle.

Example::

    folder = open_journal(out, fingerprint)              # the launcher, at the start of a run
    writer = JournalWriter(folder)                       # a worker
    writer.append(keys, rows)                            # after each embedded batch
    for keys, rows in read_blocks(folder, dim): ...      # the next run's launcher
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import struct
import time
import uuid
import zlib
from collections.abc import Iterator
from dataclasses import dataclass

from ..layout.schema import JOURNAL_DIR
from ..source import storage

log = logging.getLogger(__name__)

MAGIC = b"BPJ1"
_HEADER = struct.Struct("<4sIII")  # magic, vector count, dimension, CRC-32 of keys + rows
KEY_BYTES = 16
SEGMENT_SUFFIX = ".vj"
DEFAULT_MAX_MB = 2048
STORE_FLUSH_S = 1.0


@dataclass(frozen=True)
class JournalSpec:
    """Where a run's embedding workers journal, and how (pickled to the workers)."""

    folder: str
    max_bytes: int = DEFAULT_MAX_MB << 20
    fsync: bool = False


def text_key(text: str) -> bytes:
    """A chunk text's key: the first 16 bytes of its UTF-8 sha256."""
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).digest()[:KEY_BYTES]


def fingerprint_key(fingerprint: dict) -> str:
    """The journal folder's name for one fingerprint: vectors of another never mix in."""
    canonical = json.dumps(fingerprint, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()[:16]


def journal_root(out: str) -> str:
    return storage.join(out, JOURNAL_DIR)


def open_journal(out: str, fingerprint: dict) -> str:
    """This fingerprint's journal folder; other fingerprints' journals are deleted (their vectors
    cannot serve this index, and the live snapshot is about to have this fingerprint)."""
    root, key = journal_root(out), fingerprint_key(fingerprint)
    for name in storage.list_names(root):
        if name != key:
            storage.delete_tree(storage.join(root, name))
    folder = storage.join(root, key)
    storage.make_folder(folder)
    return folder


def clear(out: str) -> None:
    """After a commit: the snapshot holds every journaled vector it needs."""
    storage.delete_tree(journal_root(out))


def encode_block(keys: bytes, rows: bytes, dim: int) -> bytes:
    count = len(keys) // KEY_BYTES
    if len(keys) != count * KEY_BYTES or len(rows) != count * dim * 4:
        raise ValueError(f"a journal block needs {KEY_BYTES}-byte keys and {dim}-d float32 "
                         f"rows; got {len(keys)} key bytes and {len(rows)} row bytes")
    body = keys + rows
    return _HEADER.pack(MAGIC, count, dim, zlib.crc32(body)) + body


def decode_blocks(data: bytes, dim: int) -> Iterator[tuple[bytes, bytes]]:
    """(keys, rows) of each whole block in `data`, up to the first torn or damaged one.

    A block of another dimension ends the segment too: it cannot belong to this index."""
    offset, view = 0, memoryview(data)
    while offset + _HEADER.size <= len(data):
        magic, count, block_dim, crc = _HEADER.unpack_from(data, offset)
        end = offset + _HEADER.size + count * (KEY_BYTES + block_dim * 4)
        if magic != MAGIC or block_dim != dim or end > len(data):
            return
        body = view[offset + _HEADER.size:end]
        if zlib.crc32(body) != crc:
            return
        split = count * KEY_BYTES
        yield bytes(body[:split]), bytes(body[split:])
        offset = end


def segments(folder: str) -> list[tuple[str, int]]:
    """(path, size) of every segment, oldest first (names start with the writer's start time)."""
    if storage.is_local(folder):
        if not os.path.isdir(folder):
            return []
        found = [(entry.path, entry.stat().st_size) for entry in os.scandir(folder)
                 if entry.name.endswith(SEGMENT_SUFFIX)]
    else:
        found = [(path, size) for path, size, _ in storage.listing(folder)
                 if path.endswith(SEGMENT_SUFFIX)]
    return sorted(found, key=lambda item: os.path.basename(item[0]))


def trim(folder: str, max_bytes: int) -> list[str]:
    """Delete the oldest segments beyond `max_bytes` in all; returns those deleted."""
    found, total, kept = segments(folder), 0, 0
    for _, size in reversed(found):  # newest first: they are kept
        if total + size > max_bytes:
            break
        total += size
        kept += 1
    doomed = [path for path, _ in found[:len(found) - kept]]
    storage.delete_files(doomed)
    return doomed


def read_blocks(folder: str, dim: int) -> Iterator[tuple[bytes, bytes]]:
    """(keys, rows) of every whole block of every segment, oldest first."""
    for path, _ in segments(folder):
        try:
            data = storage.read_bytes(path)
        except FileNotFoundError:
            continue
        yield from decode_blocks(data, dim)


class JournalWriter:
    """One worker's segment. `append` after each embedded batch; `flush` at a bundle's end."""

    def __init__(self, spec: JournalSpec):
        self.spec = spec
        self._name = f"{time.time_ns():020d}-{uuid.uuid4().hex[:12]}"
        self._local = storage.is_local(spec.folder)
        self._file = None
        self._pending: list[bytes] = []  # object stores: blocks waiting for the next object
        self._objects = 0
        self._last_put = time.monotonic()
        self.bytes_written = 0
        self._full_logged = False

    def append(self, keys: bytes, rows: bytes, dim: int) -> None:
        if not keys:
            return
        block = encode_block(keys, rows, dim)
        if self.bytes_written + len(block) > self.spec.max_bytes:
            if not self._full_logged:
                log.warning("resume journal segment reached its cap (%d MB); later batches "
                            "of this worker are not journaled", self.spec.max_bytes >> 20)
                self._full_logged = True
            return
        self.bytes_written += len(block)
        if self._local:
            self._append_local(block)
            return
        self._pending.append(block)
        if time.monotonic() - self._last_put >= STORE_FLUSH_S:
            self.flush()

    def _append_local(self, block: bytes) -> None:
        if self._file is None:
            os.makedirs(self.spec.folder, exist_ok=True)
            path = os.path.join(self.spec.folder, self._name + SEGMENT_SUFFIX)
            self._file = open(path, "ab")  # noqa: SIM115 - closed by close()
        self._file.write(block)
        self._file.flush()  # in the OS once written: a killed process loses nothing of it
        if self.spec.fsync:
            os.fsync(self._file.fileno())

    def flush(self) -> None:
        """Object stores: put what waits as one new object (locally every block is written)."""
        if not self._pending:
            return
        data = b"".join(self._pending)
        self._pending = []
        self._objects += 1
        name = f"{self._name}-{self._objects:06d}{SEGMENT_SUFFIX}"
        storage.write_bytes(storage.join(self.spec.folder, name), data)
        self._last_put = time.monotonic()

    def close(self) -> None:
        self.flush()
        if self._file is not None:
            self._file.close()
            self._file = None
