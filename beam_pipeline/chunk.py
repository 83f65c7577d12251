"""ChunkFile: read one file, hash it, decode it, cut it into chunks.

Outputs: the main output is one `(path, FileRecord)` per file (its expected chunk count, or the
reason it was skipped or failed); the `chunks` output carries each file's chunks as one element,
`(path, [(chunk_index, text), …])`: Beam's per-element cost is paid per file, not per chunk.
A bad file never raises: it becomes a record with its reason.
"""

from __future__ import annotations

import hashlib
import os
import stat
from dataclasses import dataclass

import apache_beam as beam

from . import stats
from .chunking import UndecodableError, chunk_text, decode_source, is_binary
from .discover import FileEntry, is_url, join_url, read_store_object
from .progress import CHUNKED, RunLink
from .records import FileRecord

CHUNKS = "chunks"


class FileSkipped(Exception):
    """The file is not indexable text; `reason` is the skip reason counted in the stats."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class ChunkerConfig:
    root: str  # a local folder, or a URL the workers read through Beam's FileSystems
    chunk_size: int
    overlap: int
    max_file_size: int
    follow_symlinks: bool = False  # --follow-symlinks: read what a listed symlink points to


class OutsideRootError(OSError):
    """A listed path that does not lie inside the source root."""


def read_source(root: str, rel: str, max_size: int, follow_symlinks: bool = False) -> bytes:
    """Read a source file: on a URL root through Beam's FileSystems; on a local one as a regular
    file, without blocking on FIFOs and — unless `follow_symlinks` — without following a final
    symlink."""
    if os.path.isabs(rel) or ".." in rel.split("/") or is_url(rel):
        raise OutsideRootError(f"{rel} is outside the source root")
    if is_url(root):
        data = read_store_object(join_url(root, rel), max_size + 1)
        if len(data) > max_size:
            raise FileSkipped("too_large")
        return data
    flags = os.O_RDONLY | os.O_NONBLOCK | (0 if follow_symlinks else os.O_NOFOLLOW)
    fd = os.open(os.path.join(root, rel), flags)
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise FileSkipped("not_regular")
        with os.fdopen(fd, "rb", closefd=False) as fh:
            data = fh.read(max_size + 1)
    finally:
        os.close(fd)
    if len(data) > max_size:
        raise FileSkipped("too_large")
    return data


def load_chunks(config: ChunkerConfig, rel: str):
    """Bytes → (sha256 hex, Decoded, chunks). Raises OSError or FileSkipped."""
    data = read_source(config.root, rel, config.max_file_size, config.follow_symlinks)
    digest = hashlib.sha256(data).hexdigest()
    if is_binary(data):
        raise FileSkipped("binary")
    try:
        decoded = decode_source(data)
    except UndecodableError as exc:
        raise FileSkipped("undecodable") from exc
    return digest, decoded, chunk_text(decoded.text, config.chunk_size, config.overlap)


def describe_os_error(exc: OSError) -> str:
    if isinstance(exc, OutsideRootError):
        return str(exc)
    text = str(exc.strerror or exc).strip()
    return f"{type(exc).__name__}: {text.splitlines()[0] if text else ''}"


class ChunkFile(beam.DoFn):
    """FileEntry → (path, FileRecord) and, tagged `chunks`, (path, [(index, text), …])."""

    def __init__(self, config: ChunkerConfig, progress: RunLink | None = None):
        self.config = config
        self.progress = progress or RunLink(None)
        self.legacy = stats.counter(stats.LEGACY_ENCODING)

    def setup(self):
        self.progress.setup()

    def process(self, entry: FileEntry):
        self.progress.checkpoint()
        record = FileRecord(entry.path, entry.size, entry.mtime_ns)
        chunks = []
        try:
            digest, decoded, chunks = load_chunks(self.config, entry.path)
        except FileSkipped as exc:
            record = record.skipped(exc.reason)
        except OSError as exc:
            record = record.failed(describe_os_error(exc))
        else:
            record = FileRecord(entry.path, entry.size, entry.mtime_ns, digest, len(chunks))
            if decoded.legacy:
                self.legacy.inc()
        self.progress.send({"k": CHUNKED, "p": entry.path, "n": len(chunks), "b": entry.size})
        yield entry.path, record
        if chunks:
            yield beam.pvalue.TaggedOutput(CHUNKS, (entry.path, [(c.index, c.text) for c in chunks]))

    def finish_bundle(self):
        self.progress.flush()

    def teardown(self):
        self.progress.close()


class ChunkFiles(beam.PTransform):
    """PCollection[FileEntry] → {"files": (path, FileRecord),
    "chunks": (path, [(index, text), …])}."""

    def __init__(self, config: ChunkerConfig, progress: RunLink | None = None):
        super().__init__()
        self.config = config
        self.progress = progress

    def expand(self, entries):
        outputs = entries | "ChunkFile" >> beam.ParDo(
            ChunkFile(self.config, self.progress)
        ).with_outputs(CHUNKS, main="files")
        return {"files": outputs.files, "chunks": outputs[CHUNKS]}
