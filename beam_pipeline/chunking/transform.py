"""ChunkFile: read one file, hash it, decode it, cut it into chunks.

Outputs: the main output is one `(path, FileRecord)` per file (its expected chunk count, or the
reason it was skipped or failed); the `chunks` output carries each file's chunks as one element,
`(path, [(chunk_index, text), …])`: Beam's per-element cost is paid per file, not per chunk.
A bad file never raises: it becomes a record with its reason.
"""

from __future__ import annotations

from typing import NamedTuple

import apache_beam as beam

from ..layout.records import FileRecord
from ..lexical.feed import FeedLink
from ..runtime import counters
from ..runtime.link import CHUNKED, RunLink
from ..runtime.outputs import by_name
from ..source.discover import FileEntry
from ..source.text import (  # noqa: F401 - ChunkerConfig is found here too
    ChunkerConfig,
    FileSkipped,
    OutsideRootError,
    describe_os_error,
    load_text,
    read_source,
)
from .cut import cut, load_chunks  # noqa: F401 - load_chunks is found here too
from .fixed import spans_of

CHUNKS = "chunks"


class ChunkFile(beam.DoFn):
    """FileEntry → (path, FileRecord) and, tagged `chunks`, (path, [(index, text), …])."""

    def __init__(self, config: ChunkerConfig, progress: RunLink | None = None,
                 lexicon: FeedLink | None = None):
        self.config = config
        self.progress = progress or RunLink(None)
        self.lexicon = lexicon  # the launcher's lexical index, fed as files are cut (lexfeed)
        self.legacy = counters.counter(counters.LEGACY_ENCODING)

    def setup(self):
        self.progress.setup()
        if self.lexicon is not None:
            self.lexicon.setup()

    def process(self, entry: FileEntry):
        self.progress.checkpoint()
        record = FileRecord(entry.path, entry.size, entry.mtime_ns)
        chunks = []
        try:
            digest, decoded = load_text(self.config, entry.path)
            chunks, fallback = cut(self.config, entry.path, decoded.text)
        except FileSkipped as exc:
            record = record.skipped(exc.reason)
        except OSError as exc:
            record = record.failed(describe_os_error(exc))
        else:
            record = FileRecord(entry.path, entry.size, entry.mtime_ns, digest, len(chunks),
                                spans=spans_of(chunks))
            if decoded.legacy:
                self.legacy.inc()
            if fallback is not None:
                counters.fallback_counter(fallback).inc()
        self.progress.send({"k": CHUNKED, "p": entry.path, "n": len(chunks), "b": entry.size})
        yield entry.path, record
        if chunks:
            texts = [(c.index, c.text) for c in chunks]
            if self.lexicon is not None:
                self.lexicon.send(entry.path, record.file_hash, texts)
            yield beam.pvalue.TaggedOutput(CHUNKS, (entry.path, texts))

    def finish_bundle(self):
        if self.lexicon is not None:
            self.lexicon.flush()
        self.progress.flush()

    def teardown(self):
        if self.lexicon is not None:
            self.lexicon.close()
        self.progress.close()


class ChunkedFiles(NamedTuple):
    """ChunkFiles' outputs."""

    files: beam.PCollection  # (path, FileRecord): every file, cut, skipped or failed
    chunks: beam.PCollection  # (path, [(index, text), …]): one element per file with chunks

    __getitem__ = by_name


class ChunkFiles(beam.PTransform):
    """PCollection[FileEntry] → ChunkedFiles(files, chunks).

    Example::

        chunked = entries | ChunkFiles(ChunkerConfig("/repo", 1000, 150, 1 << 20))
        chunked.chunks | …
    """

    def __init__(self, config: ChunkerConfig, progress: RunLink | None = None,
                 lexicon: FeedLink | None = None):
        super().__init__()
        self.config = config
        self.progress = progress
        self.lexicon = lexicon

    def expand(self, entries):
        outputs = entries | "ChunkFile" >> beam.ParDo(
            ChunkFile(self.config, self.progress, self.lexicon)
        ).with_outputs(CHUNKS, main="files")
        return ChunkedFiles(outputs.files, outputs[CHUNKS])
