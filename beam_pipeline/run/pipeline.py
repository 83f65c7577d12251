"""The indexing pipeline as composite transforms, and `run_pipeline`, which runs it once
(`indexing.run_index` plans, calls it when there is work, and commits).

    discover ─► ReadFileList ─► ChunkFiles ─► EmbedChunks ─► SpillVectors ─► AssembleFiles
                                      └──── file records ──────────────────────────┘
    AssembleFiles ─► WriteShards ─► WriteFilesTable
    then, in the launcher: CommitSnapshot (manifest + CURRENT), once, last.

Example (a TestPipeline can run the same transforms)::

    with beam.Pipeline() as p:
        out = (p | ReadFileList("/tmp/files.jsonl")
                 | IndexFiles(config, HashingEmbedder(), batch_size=64, staging_dir="/tmp/stage"))

    stats = run_index("path/to/repo", "path/to/index")
"""

from __future__ import annotations

import atexit
import gc
import time

import apache_beam as beam
from apache_beam.options.pipeline_options import PipelineOptions
from apache_beam.runners.runner import PipelineState

from .. import _moved
from ..chunking.transform import ChunkFiles
from ..embedders import Embedder
from ..embedding.journal import JournalSpec
from ..embedding.reuse import MISSING, ReuseKnownVectors
from ..embedding.transform import EmbedChunks
from ..lexical.feed import FeedLink
from ..runtime.cancel import CancelToken
from ..runtime.link import RunLink
from ..source import storage
from ..source.discover import FileEntry
from ..source.text import ChunkerConfig
from ..store.assemble import AssembleFiles
from ..store.spill import SpillVectors
from ..store.write import WriteFilesTable, WriteShards
from . import runners
from .options import IndexOptions, embed_processes
from .settings import IndexSettings

# Beam's import leaves ~140,000 objects on the collector's lists, and the interpreter's last
# collections at exit walk and free them one by one: `python -c "import apache_beam"` exits in
# 150 ms, in 22 ms with them frozen first. A process that ran a pipeline (the compatibility
# face's caller, a worker) leaves them to the OS instead. What this gives up: finalizers of
# objects that are garbage in a reference cycle at exit, which Python never promises to run.
# (The CLI on a local runner skips the teardown altogether: cli.entry.)
atexit.register(gc.freeze)


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


class IndexFiles(beam.PTransform):
    """FileEntry → staged shards + files.parquet; returns {"results", "shards", "summary"}.

    `spill_dir` must be a folder every worker shares (runners.Placement.local), else None.
    """

    def __init__(self, config: ChunkerConfig, embedder: Embedder, batch_size: int,
                 staging_dir: str, progress: RunLink | None = None,
                 reuse_table: str | None = None, embed_concurrency: int = 1,
                 embed_processes: int = 0, spill_dir: str | None = None,
                 journal: JournalSpec | None = None, lexicon: FeedLink | None = None):
        super().__init__()
        self.config = config
        self.embedder = embedder
        self.batch_size = batch_size
        self.staging_dir = staging_dir
        self.progress = progress
        self.reuse_table = reuse_table  # previous vectors by chunk text (re-indexing)
        self.embed_concurrency = embed_concurrency
        self.embed_processes = embed_processes
        # A folder on a disk every worker shares (the local modes only), or None: the vectors
        # then travel in the runner's shuffle.
        self.spill_dir = spill_dir
        self.journal = journal  # the resume journal the embedding workers append to
        self.lexicon = lexicon  # the launcher's lexical index, fed as files are cut (local)

    def expand(self, entries):
        dim = self.embedder.dim
        chunked = entries | "Chunk" >> ChunkFiles(self.config, self.progress, self.lexicon)
        to_embed, vectors = chunked["chunks"], []
        if self.reuse_table:
            known = to_embed | "ReuseKnown" >> ReuseKnownVectors(self.reuse_table, self.progress)
            to_embed = known[MISSING]
            vectors.append(known["vectors"])
        embedded = to_embed | "Embed" >> EmbedChunks(
            self.embedder, self.batch_size, self.progress, self.embed_concurrency,
            self.embed_processes, self.journal)
        vectors.append(embedded["vectors"])
        blocks = vectors[0] if len(vectors) == 1 else vectors | "AllVectors" >> beam.Flatten()
        if self.spill_dir is not None:
            blocks = blocks | "SpillVectors" >> SpillVectors(self.spill_dir)
        assembled = {
            "files": chunked["files"], "vectors": blocks, "errors": embedded["errors"],
        } | "Assemble" >> AssembleFiles(self.config, dim, self.progress)
        shards = assembled["rows"] | "Write" >> WriteShards(
            self.staging_dir, dim, progress=self.progress)
        summary = (assembled["results"], shards) | "Finalize" >> WriteFilesTable(
            self.staging_dir, self.progress)
        return {"results": assembled["results"], "shards": shards, "summary": summary}


def run_pipeline(config: ChunkerConfig, staging: str, todo: str, settings: IndexSettings,
                 options: PipelineOptions, progress: RunLink, reuse: str | None,
                 spill_dir: str | None, cancel: CancelToken, journal: JournalSpec | None = None,
                 lexicon: FeedLink | None = None):
    """Build and run the pipeline over the `todo` list into `staging`; its result once done
    (raises when it failed, or when a cancel stopped it)."""
    pipeline = beam.Pipeline(runner=runners.select_runner(options), options=options)
    _ = (
        pipeline
        | "ReadFileList" >> ReadFileList(todo, progress)
        | "IndexFiles" >> IndexFiles(config, settings.embedder, settings.batch_size,
                                     staging, progress, reuse_table=reuse,
                                     embed_concurrency=settings.embed_concurrency,
                                     embed_processes=embed_processes(
                                         options, settings.embed_processes,
                                         settings.embedder.gil_bound),
                                     spill_dir=spill_dir, journal=journal, lexicon=lexicon)
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
        raise RuntimeError(f"the pipeline ended in state {state}")
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
        raise RuntimeError(f"the job ended in state {state} (its messages outlived "
                           "--job_server_timeout)")
    return state


__all__ = ["IndexFiles", "IndexOptions", "IndexSettings", "ReadFileList", "run_pipeline"]

# The launcher's names, importable from here before the launcher and the pipeline stopped
# importing each other.
__getattr__ = _moved.names("beam_pipeline.pipeline", {name: "run.indexing" for name in (
    "NothingCommitted", "RunRequest", "StatsMismatch", "run_index", "spill_folder")})
