"""SpillVectors: embedded vectors wait in local spill files; only references cross the grouping.

The per-file grouping (AssembleFiles) is a shuffle. On the local runners it is held in the
launcher's memory and every byte in it is encoded, copied and decoded several times: for the
stdlib, 58 MB of float32 vectors became ~0.85 s of a 5.5 s run and most of its page faults,
and a large repository's vectors would all sit in RAM at once. When the staging folder is local
(the local runners, where every worker shares this disk), each embedding bundle appends its
vectors to one spill file under `staging/_spill/` and the grouping carries only
`(spill file, offset)`. On an object store the vectors stay in the shuffle, which a distributed
runner is built for.

A vector block is one file's vectors from one batch: `(indices, rows)`, where `rows` is the
float32 rows in `indices` order, either inline bytes or a reference `(spill path, offset)`.
A spill file is closed before its bundle commits, so a reader after the grouping always finds
it whole; a retried bundle writes a new file, and the folder is deleted before the commit.

Example::

    spilled = vectors | SpillVectors("/tmp/index/.staging/20261129T.../_spill")
"""

from __future__ import annotations

import collections
import os
import uuid

import apache_beam as beam

from ..layout.schema import SPILL_DIR  # noqa: F401 - where the pipeline's callers find it

_OPEN_FILES = 64  # spill files a reader keeps open (one per embedding bundle)


class SpillWriter:
    """Appends blocks of vector bytes to one new file; `write` returns the block's reference."""

    def __init__(self, directory: str):
        self.path = os.path.join(directory, f"{uuid.uuid4().hex}.f32")
        self._directory = directory
        self._file = None
        self._offset = 0

    def write(self, rows: bytes) -> tuple[str, int]:
        if self._file is None:
            os.makedirs(self._directory, exist_ok=True)
            # Kept open across writes; close() closes it.
            self._file = open(self.path, "wb", buffering=1 << 20)  # noqa: SIM115
        ref = (self.path, self._offset)
        self._file.write(rows)
        self._offset += len(rows)
        return ref

    def close(self) -> None:
        """Flush to the OS (no fsync: a crash discards the whole staging folder)."""
        if self._file is not None:
            self._file.close()
            self._file = None


class SpillReader:
    """Reads blocks back by reference, keeping the most recently used spill files open."""

    def __init__(self):
        self._fds: collections.OrderedDict[str, int] = collections.OrderedDict()

    def read(self, ref: tuple[str, int], size: int) -> bytes:
        path, offset = ref
        fd = self._fds.pop(path, None)
        if fd is None:
            fd = os.open(path, os.O_RDONLY)
            while len(self._fds) >= _OPEN_FILES:
                os.close(self._fds.popitem(last=False)[1])
        self._fds[path] = fd
        data = os.pread(fd, size, offset)
        if len(data) != size:
            raise OSError(f"spill file {path} is truncated: {len(data)} of {size} bytes "
                          f"at offset {offset}")
        return data

    def close(self) -> None:
        while self._fds:
            os.close(self._fds.popitem()[1])


def block_rows(rows: bytes | tuple[str, int], count: int, dim: int,
               reader: SpillReader) -> bytes:
    """A block's float32 rows as bytes, whether inline or spilled."""
    if isinstance(rows, bytes):
        return rows
    return reader.read(rows, count * dim * 4)


class SpillVectorsFn(beam.DoFn):
    """(path, (indices, bytes)) → (path, (indices, (spill path, offset)))."""

    def __init__(self, directory: str):
        self.directory = directory

    def start_bundle(self):
        self._writer = SpillWriter(self.directory)

    def process(self, element):
        path, (indices, rows) = element
        yield path, (indices, self._writer.write(rows))

    def finish_bundle(self):
        # Before the bundle commits: whoever reads a reference after the grouping finds the
        # whole file.
        self._writer.close()

    def teardown(self):
        writer = getattr(self, "_writer", None)
        if writer is not None:
            writer.close()


class SpillVectors(beam.PTransform):
    """Vector blocks with inline rows → the same blocks with rows in spill files."""

    def __init__(self, directory: str):
        super().__init__()
        self.directory = directory

    def expand(self, blocks):
        return blocks | "Spill" >> beam.ParDo(SpillVectorsFn(self.directory))
