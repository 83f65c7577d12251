"""The indexing pipeline as composite transforms, and `run_index`, which runs and commits it.

    discover ─► ReadFileList ─► ChunkFiles ─► EmbedChunks ─► AssembleFiles ─► WriteShards
                                      └──── file records ─────────┘      └─► WriteFilesTable
    then, in the launcher: CommitSnapshot (manifest + CURRENT), once, last.

Example (a TestPipeline can run the same transforms)::

    with beam.Pipeline() as p:
        out = (p | ReadFileList("/tmp/files.jsonl")
                 | IndexFiles(config, HashingEmbedder(), batch_size=64, staging_dir="/tmp/stage"))

    stats = run_index("path/to/repo", "path/to/index")
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

import apache_beam as beam
from apache_beam.options.pipeline_options import PipelineOptions

from . import commit
from . import stats as stats_mod
from .assemble import AssembleFiles
from .chunk import ChunkerConfig, ChunkFiles
from .chunking import default_overlap
from .discover import DEFAULT_MAX_FILE_SIZE, FileEntry, discover_to_file
from .embed import EmbedChunks
from .embedders import Embedder, get_embedder
from .options import DEFAULT_BATCH_SIZE, DEFAULT_DIM, IndexOptions, select_runner
from .progress import ProgressChannel, ProgressDisplay, ProgressSender, ProgressTracker
from .schema import SCHEMA_VERSION
from .stats import ProcessingStats
from .write import WriteFilesTable, WriteShards

log = logging.getLogger(__name__)

FILE_LIST = "_discovered.jsonl"
CHUNKER_NAME = "fixed-chars"


class NothingCommitted(Exception):
    """The run finished but produced nothing that may be committed (e.g. every file failed)."""

    def __init__(self, message: str, stats: ProcessingStats):
        super().__init__(message)
        self.stats = stats


class ReadFileList(beam.PTransform):
    """The discovered file list (JSON lines) → PCollection[FileEntry], spread over workers."""

    def __init__(self, list_path: str):
        super().__init__()
        self.list_path = list_path

    def expand(self, pbegin):
        return (
            pbegin
            | "ReadList" >> beam.io.ReadFromText(self.list_path)
            | "Parse" >> beam.Map(FileEntry.from_json)
            # One small list file is one bundle; reshuffling lets every worker chunk files.
            | "Spread" >> beam.Reshuffle()
        )


class IndexFiles(beam.PTransform):
    """FileEntry → staged shards + files.parquet; returns {"results", "shards", "summary"}."""

    def __init__(self, config: ChunkerConfig, embedder: Embedder, batch_size: int,
                 staging_dir: str, progress: ProgressSender | None = None):
        super().__init__()
        self.config = config
        self.embedder = embedder
        self.batch_size = batch_size
        self.staging_dir = staging_dir
        self.progress = progress

    def expand(self, entries):
        dim = self.embedder.dim
        chunked = entries | "Chunk" >> ChunkFiles(self.config, self.progress)
        embedded = chunked["chunks"] | "Embed" >> EmbedChunks(
            self.embedder, self.batch_size, self.progress)
        assembled = {
            "files": chunked["files"],
            "vectors": embedded["vectors"],
            "errors": embedded["errors"],
        } | "Assemble" >> AssembleFiles(self.config, dim, self.progress)
        shards = assembled["rows"] | "Write" >> WriteShards(
            self.staging_dir, dim, progress=self.progress)
        summary = (assembled["results"], shards) | "Finalize" >> WriteFilesTable(self.staging_dir)
        return {"results": assembled["results"], "shards": shards, "summary": summary}


@dataclass(frozen=True)
class IndexSettings:
    """Everything that shapes the index; resolved from IndexOptions or keyword arguments."""

    embedder: Embedder
    chunk_size: int
    chunk_overlap: int
    batch_size: int
    max_file_size: int

    def fingerprint(self) -> dict:
        return {
            "chunker": {"name": CHUNKER_NAME, "size": self.chunk_size,
                        "overlap": self.chunk_overlap},
            "embedder": self.embedder.fingerprint(),
            "schema_version": SCHEMA_VERSION,
        }

    @classmethod
    def from_options(cls, options: IndexOptions | argparse.Namespace) -> IndexSettings:
        """From `PipelineOptions.view_as(IndexOptions)` or the CLI's parsed arguments."""
        return cls.create(options.embedder, chunk_size=options.chunk_size,
                          chunk_overlap=options.chunk_overlap, batch_size=options.batch_size,
                          max_file_size=options.max_file_size,
                          embedding_dim=options.embedding_dim)

    @classmethod
    def create(cls, embedder: str | Embedder = "hashing", *, chunk_size: int = 1000,
               chunk_overlap: int | None = None, batch_size: int = DEFAULT_BATCH_SIZE,
               max_file_size: int = DEFAULT_MAX_FILE_SIZE,
               embedding_dim: int = DEFAULT_DIM) -> IndexSettings:
        if isinstance(embedder, str):
            embedder = get_embedder(embedder, dim=embedding_dim)
        overlap = default_overlap(chunk_size) if chunk_overlap is None else chunk_overlap
        if chunk_size < 1 or not 0 <= overlap < chunk_size:
            raise ValueError(f"need chunk size ≥ 1 and 0 ≤ overlap < size, "
                             f"got size {chunk_size}, overlap {overlap}")
        if batch_size < 1:
            raise ValueError(f"batch size must be at least 1, got {batch_size}")
        if max_file_size < 0:
            raise ValueError(f"max file size must be ≥ 0, got {max_file_size}")
        return cls(embedder, chunk_size, overlap, batch_size, max_file_size)


def run_index(
    source: str | os.PathLike,
    output: str | os.PathLike,
    settings: IndexSettings | None = None,
    *,
    pipeline_options: PipelineOptions | Sequence[str] | None = None,
    progress_stream: TextIO | None = None,
    quiet: bool = True,
) -> ProcessingStats:
    """Index `source` into `output` and commit a new snapshot; returns the run's stats.

    Raises NotADirectoryError for a bad source, commit.OutputError for an unusable output and
    NothingCommitted when the run produced nothing committable (its stats attached).
    """
    settings = settings or IndexSettings.create()
    if not isinstance(pipeline_options, PipelineOptions):
        pipeline_options = PipelineOptions(list(pipeline_options or []))
    root, out = Path(source).resolve(), Path(output).absolute()
    if not root.is_dir():
        raise NotADirectoryError(f"source is not a directory: {source}")
    stats = ProcessingStats(start_time=time.time())
    commit.prepare_output(out)
    snapshot_id = commit.new_snapshot_id()
    staging = commit.create_staging(out, snapshot_id)
    tracker = ProgressTracker()
    tracker.set_stage("discovering")
    try:
        with ProgressChannel(tracker) as channel, _display(tracker, progress_stream, quiet):
            discovery = discover_to_file(
                root, staging / FILE_LIST, max_file_size=settings.max_file_size,
                on_progress=lambda found: setattr(tracker, "total_files", found))
            tracker.total_files = discovery.files
            tracker.set_stage("running")
            result = _run_pipeline(root, staging, settings, pipeline_options,
                                   ProgressSender(channel.address))
            stats.add_counters(stats_mod.sum_counters(result))
            stats.add_skips(discovery.skipped)
            summary = commit.staged_summary(staging)
            stats.failures = commit.staged_failures(staging)
            if stats.files_processed == 0 and stats.failed_files > 0:
                stats.end_time = time.time()
                raise NothingCommitted(
                    f"every file failed ({stats.failed_files}); nothing committed", stats)
            tracker.set_stage("committing")
            (staging / FILE_LIST).unlink()
            stats.snapshot_id = snapshot_id
            stats.committed = True
            stats.end_time = time.time()
            run_stats = {k: v for k, v in stats.to_dict().items() if k != "failures"}
            manifest = commit.build_manifest(
                snapshot_id, settings.fingerprint(), summary, stats.failures, run_stats,
                {"root": str(root)})
            commit.commit_snapshot(out, staging, manifest)
            tracker.set_stage("done")
    except BaseException:
        stats.committed = False
        commit.discard_staging(staging)
        raise
    return stats


def _display(tracker: ProgressTracker, stream: TextIO | None, quiet: bool):
    return contextlib.nullcontext() if quiet else ProgressDisplay(tracker, stream)


def _run_pipeline(root: Path, staging: Path, settings: IndexSettings,
                  options: PipelineOptions, progress: ProgressSender):
    config = ChunkerConfig(str(root), settings.chunk_size, settings.chunk_overlap,
                           settings.max_file_size)
    pipeline = beam.Pipeline(runner=select_runner(options), options=options)
    _ = (
        pipeline
        | "ReadFileList" >> ReadFileList(str(staging / FILE_LIST))
        | "IndexFiles" >> IndexFiles(config, settings.embedder, settings.batch_size,
                                     str(staging), progress)
    )
    result = pipeline.run()
    result.wait_until_finish()
    return result


__all__ = ["IndexFiles", "IndexOptions", "IndexSettings", "NothingCommitted", "ReadFileList",
           "run_index"]
