"""AssembleFiles: the per-file barrier that makes a file's rows all-or-nothing.

The file's record, its vector blocks and its chunk errors meet in one CoGroupByKey by path.
No chunk text crosses the grouping (its input is buffered in memory by the FnApiRunner), and on
a local staging folder no vectors either, only references into spill files (spill.py); the
file is read again and, after checking its hash (which also catches a file that changed during
the run), sliced at the spans ChunkFile recorded (a few bytes a chunk in the record): no chunker
runs twice. A file becomes rows only when every chunk is present and embedded; otherwise
it becomes one failure record with the reason.
"""

from __future__ import annotations

from dataclasses import replace
from typing import NamedTuple

import apache_beam as beam
import numpy as np

from ..chunking.fixed import cut_at
from ..layout.records import FileRecord
from ..layout.schema import FAILED, SKIPPED
from ..runtime import counters
from ..runtime.link import ASSEMBLED, RunLink
from ..runtime.outputs import by_name
from ..source.text import ChunkerConfig, FileSkipped, describe_os_error, load_text
from .rows import build_rows
from .spill import SpillReader, block_rows

ROWS = "rows"


def check_complete(record: FileRecord, blocks: list, errors: list) -> str | None:
    """The reason a file cannot be written, or None when every chunk is embedded."""
    if errors:
        index, reason = min(errors)
        more = f" (and {len(errors) - 1} more chunks)" if len(errors) > 1 else ""
        return f"chunk {index}: {reason}{more}"
    indices = sorted(index for block_indices, _ in blocks for index in block_indices)
    if indices != list(range(record.total_chunks)):
        return f"{len(set(indices))} of {record.total_chunks} chunks embedded"
    return None


def gather_vectors(blocks: list, total: int, dim: int, reader: SpillReader) -> np.ndarray:
    """The file's vector blocks as one (total, dim) float32 matrix in chunk order."""
    matrix = np.empty((total, dim), dtype=np.float32)
    for indices, rows in blocks:
        data = block_rows(rows, len(indices), dim, reader)
        matrix[indices] = np.frombuffer(data, dtype=np.float32).reshape(len(indices), dim)
    return matrix


class AssembleFile(beam.DoFn):
    """(path, {"files", "vectors", "errors"}) → FileRecord; tagged `rows`: pa.RecordBatch."""

    def __init__(self, config: ChunkerConfig, dim: int, progress: RunLink | None = None):
        self.config = config
        self.dim = dim
        self.progress = progress or RunLink(None)
        self.processed = counters.counter(counters.FILES_PROCESSED)
        self.failed = counters.counter(counters.FAILED_FILES)
        self.total_size = counters.counter(counters.TOTAL_SIZE)
        # Counted here, for written files only: a failed file's chunks were never indexed.
        self.chunks_created = counters.counter(counters.CHUNKS_CREATED)

    def process(self, element):
        self.progress.checkpoint()
        path, groups = element
        records = list(groups["files"])
        if not records:  # vectors without a file record cannot happen in one pipeline
            raise ValueError(f"no file record for {path!r}")
        record, rows = self._assemble(records[0], list(groups["vectors"]),
                                      list(groups["errors"]))
        record = replace(record, spans=None)  # files.parquet's rows are gathered: keep them small
        if record.status == SKIPPED:
            counters.skip_counter(record.error).inc()
        elif record.status == FAILED:
            self.failed.inc()
        else:
            self.processed.inc()
            self.total_size.inc(record.size)
            self.chunks_created.inc(record.total_chunks)
        self.progress.send({"k": ASSEMBLED, "n": 1})
        if rows is not None:
            yield beam.pvalue.TaggedOutput(ROWS, rows)
        yield record

    def setup(self):
        self.progress.setup()
        self._spilled = SpillReader()

    def finish_bundle(self):
        self._spilled.close()  # the next bundle may read other spill files
        self.progress.flush()

    def _assemble(self, record: FileRecord, blocks: list, errors: list):
        if not record.success:
            return record, None
        reason = check_complete(record, blocks, errors)
        if reason is not None:
            return record.failed(reason), None
        if record.total_chunks == 0:
            return record, None
        try:
            digest, decoded = load_text(self.config, record.path)
        except OSError as exc:
            return record.failed(f"unreadable at assembly: {describe_os_error(exc)}"), None
        except FileSkipped as exc:
            return record.failed(f"file changed during indexing ({exc.reason})"), None
        if digest != record.file_hash:
            return record.failed("file changed during indexing"), None
        chunks = cut_at(decoded.text, record.spans)
        matrix = gather_vectors(blocks, record.total_chunks, self.dim, self._spilled)
        return record, build_rows(record, chunks, matrix, self.dim)

    def teardown(self):
        self._spilled.close()
        self.progress.close()


class AssemblyInputs(NamedTuple):
    """What AssembleFiles groups by path."""

    files: beam.PCollection  # (path, FileRecord)
    vectors: beam.PCollection  # (path, vectors block, or a reference to its spill file)
    errors: beam.PCollection  # (path, (index, reason))


class AssembledFiles(NamedTuple):
    """AssembleFiles' outputs."""

    results: beam.PCollection  # FileRecord: each file's outcome, for the files table
    rows: beam.PCollection  # pyarrow.RecordBatch: a whole file's rows, or none

    __getitem__ = by_name


class AssembleFiles(beam.PTransform):
    """AssemblyInputs(files, vectors, errors) → AssembledFiles(results, rows): a file's
    record, vectors and errors grouped by path, its rows all or nothing."""

    def __init__(self, config: ChunkerConfig, dim: int, progress: RunLink | None = None):
        super().__init__()
        self.config = config
        self.dim = dim
        self.progress = progress

    def expand(self, keyed):
        outputs = (
            keyed._asdict()  # CoGroupByKey tags a dict's values by key
            | "GroupByPath" >> beam.CoGroupByKey()
            | "AssembleFile" >> beam.ParDo(
                AssembleFile(self.config, self.dim, self.progress)
            ).with_outputs(ROWS, main="results")
        )
        return AssembledFiles(outputs.results, outputs[ROWS])
