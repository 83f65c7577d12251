"""The indexing pipeline as composite transforms, and `run_pipeline`, which runs it once
(`indexing.run_index` plans, calls it when there is work, and commits).

    discover ─► ReadFileList ─► ChunkFiles ─► EmbedChunks ─► SpillVectors ─► AssembleFiles
                                      └──── file records ──────────────────────────┘
    AssembleFiles ─► WriteShards ─► WriteFilesTable
    then, in the launcher: CommitSnapshot (manifest + CURRENT), once, last.

Example (a TestPipeline can run the same transforms)::

    config = IndexFilesConfig(chunker_config, HashingEmbedder(), batch_size=64,
                              staging_dir="/tmp/stage")
    with beam.Pipeline() as p:
        indexed = p | ReadFileList("/tmp/files.jsonl") | IndexFiles(config)
        indexed.results | …
"""

from __future__ import annotations

import time
import warnings
from dataclasses import dataclass
from typing import NamedTuple

import apache_beam as beam
from apache_beam.options.pipeline_options import PipelineOptions
from apache_beam.runners.runner import PipelineState

from .. import _moved
from ..chunking.transform import ChunkFiles
from ..embedders import Embedder
from ..embedding.journal import JournalSpec
from ..embedding.reuse import ReuseKnownVectors
from ..embedding.transform import EmbedChunks
from ..errors import RunError, UsageError
from ..lexical.feed import FeedLink
from ..runtime.cancel import CancelToken
from ..runtime.link import RunLink
from ..runtime.outputs import by_name
from ..source import storage
from ..source.discover import FileEntry
from ..source.text import ChunkerConfig
from ..store.assemble import AssembleFiles, AssemblyInputs
from ..store.spill import SpillVectors
from ..store.write import WriteFilesTable, WriteShards
from . import runners
from .options import IndexOptions
from .settings import IndexSettings


class ReadListFn(beam.DoFn):
    """A list file's path → its FileEntries, read through FileSystems with the run's options."""

    def __init__(self, progress: RunLink | None = None):
        self.progress = progress or RunLink(None)

    def setup(self):
        self.progress.setup()

    def process(self, list_path: str):
        for line in storage.read_lines(list_path):
            if line:
                yield FileEntry.from_json(line)


class ReadFileList(beam.PTransform):
    """The discovered file list (JSON lines) → PCollection[FileEntry], spread over workers.

    Read by our own DoFn rather than ReadFromText: on a worker whose runner did not set up
    FileSystems (a Python worker pool), Beam's own source would not know OUT's credentials.
    """

    def __init__(self, list_path: str, progress: RunLink | None = None):
        super().__init__()
        self.list_path = list_path
        self.progress = progress

    def expand(self, pbegin):
        return (
            pbegin
            | "ListPath" >> beam.Create([self.list_path])
            | "ReadList" >> beam.ParDo(ReadListFn(self.progress))
            # One list file is one bundle; reshuffling lets every worker chunk files.
            | "Spread" >> beam.Reshuffle()
        )


@dataclass(frozen=True)
class IndexFilesConfig:
    """Everything IndexFiles is given: one value the launcher builds and Beam pickles.

    Args:
      chunker: how files are read and cut (ChunkerConfig).
      embedder: the embedder; `batch_size` chunks per call, across files.
      staging_dir: the snapshot's staging folder, where shards and files.parquet go.
      progress: the DoFns' link to the launcher (progress, cancel, filesystem options).
      reuse_table: the previous snapshot's vectors by chunk text (re-indexing), or None.
      embed_concurrency: embedding calls in flight per worker.
      embed_processes: helper processes that embed beside a worker (GIL-bound embedders).
      spill_dir: a folder on a disk every worker shares (runners.Placement.local) where
        vectors wait for their file's grouping; None sends them through the runner's shuffle.
      journal: the resume journal the embedding workers append to, or None.
      lexicon: the launcher's lexical index, fed as files are cut (local modes), or None.
    """

    chunker: ChunkerConfig
    embedder: Embedder
    batch_size: int
    staging_dir: str
    progress: RunLink | None = None
    reuse_table: str | None = None
    embed_concurrency: int = 1
    embed_processes: int = 0
    spill_dir: str | None = None
    journal: JournalSpec | None = None
    lexicon: FeedLink | None = None


class IndexedFiles(NamedTuple):
    """IndexFiles' outputs."""

    results: beam.PCollection  # FileRecord: each file's outcome
    shards: beam.PCollection  # dict: each staged shard (path, rows, files, bytes, sha256)
    summary: beam.PCollection  # dict: the files table written, once, with every shard

    __getitem__ = by_name


class IndexFiles(beam.PTransform):
    """FileEntry → staged shards + files.parquet: IndexedFiles(results, shards, summary).

    Example (a TestPipeline runs it as the launcher does)::

        config = IndexFilesConfig(ChunkerConfig("/repo", 1000, 150, 1 << 20),
                                  HashingEmbedder(), batch_size=64, staging_dir="/tmp/stage")
        with beam.Pipeline() as p:
            indexed = p | ReadFileList("/tmp/files.jsonl") | IndexFiles(config)
    """

    def __init__(self, config: IndexFilesConfig, *args, **kwargs):
        super().__init__()
        if not isinstance(config, IndexFilesConfig):  # the 11 arguments it took before
            warnings.warn("IndexFiles(chunker, embedder, batch_size, staging_dir, …) is "
                          "deprecated: give it one IndexFilesConfig", DeprecationWarning,
                          stacklevel=2)
            config = IndexFilesConfig(config, *args, **kwargs)
        elif args or kwargs:
            raise TypeError("IndexFiles takes one IndexFilesConfig")
        if config.batch_size < 1:
            raise UsageError(f"batch size must be at least 1, got {config.batch_size}")
        self.config = config

    def expand(self, entries):
        c = self.config
        dim = c.embedder.dim
        chunked = entries | "Chunk" >> ChunkFiles(c.chunker, c.progress, c.lexicon)
        to_embed, vectors = chunked.chunks, []
        if c.reuse_table:
            known = to_embed | "ReuseKnown" >> ReuseKnownVectors(c.reuse_table, c.progress)
            to_embed = known.missing
            vectors.append(known.vectors)
        embedded = to_embed | "Embed" >> EmbedChunks(
            c.embedder, c.batch_size, c.progress, c.embed_concurrency, c.embed_processes,
            c.journal)
        vectors.append(embedded.vectors)
        blocks = vectors[0] if len(vectors) == 1 else vectors | "AllVectors" >> beam.Flatten()
        if c.spill_dir is not None:
            blocks = blocks | "SpillVectors" >> SpillVectors(c.spill_dir)
        assembled = AssemblyInputs(chunked.files, blocks, embedded.errors) \
            | "Assemble" >> AssembleFiles(c.chunker, dim, c.progress)
        shards = assembled.rows | "Write" >> WriteShards(c.staging_dir, dim, progress=c.progress)
        summary = (assembled.results, shards) | "Finalize" >> WriteFilesTable(
            c.staging_dir, c.progress)
        return IndexedFiles(assembled.results, shards, summary)


def run_pipeline(config: IndexFilesConfig, todo: str, options: PipelineOptions,
                 cancel: CancelToken):
    """Build and run the pipeline over the `todo` list; its result once done (raises when it
    failed, or when a cancel stopped it)."""
    pipeline = beam.Pipeline(runner=runners.select_runner(options), options=options)
    _ = (
        pipeline
        | "ReadFileList" >> ReadFileList(todo, config.progress)
        | "IndexFiles" >> IndexFiles(config)
    )
    # The in-process engine returns from run() when it is done; other runners return at once,
    # and a cancel then also asks the runner to cancel the job.
    result = pipeline.run()
    with cancel.also_calls(result.cancel):
        try:
            state = _wait(result)
        except KeyboardInterrupt:
            cancel.cancel(wait=True)
            raise
    if state not in (None, PipelineState.DONE):
        raise RunError(f"the pipeline ended in state {state}")
    return result


_POLL_S = 1.0


def _wait(result):
    """The job's final state; raises with the runner's reason when it failed.

    Beam's portable runner opens the job's state and message streams with the job server's
    request timeout (--job_server_timeout, 300 s by default) as their deadline, so waiting on
    them for a longer job ends in DEADLINE_EXCEEDED while the job goes on. So the state is
    polled until the job ends; then Beam's own wait collects the outcome and the failure
    message, which only a job that outlived the deadline goes without.
    """
    import grpc

    while not PipelineState.is_terminal(state := result.state):
        time.sleep(_POLL_S)
    try:
        return result.wait_until_finish()
    except grpc.RpcError as exc:
        if exc.code() != grpc.StatusCode.DEADLINE_EXCEEDED:
            raise
    if state != PipelineState.DONE:
        raise RunError(f"the job ended in state {state} (its messages outlived "
                       "--job_server_timeout)")
    return state


__all__ = ["IndexFiles", "IndexFilesConfig", "IndexOptions", "IndexSettings", "IndexedFiles",
           "ReadFileList", "run_pipeline"]

# The launcher's names, importable from here before the launcher and the pipeline stopped
# importing each other.
__getattr__ = _moved.names("beam_pipeline.pipeline", {name: "run.indexing" for name in (
    "NothingCommitted", "RunRequest", "StatsMismatch", "run_index", "spill_folder")})
