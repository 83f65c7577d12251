"""The three shapes the benchmark compares, each run in a process of its own.

- `sequential`: the story's old shape. Chunk every file first on one thread, then submit every
  chunk as its own embedding call to a pool of `--threads` threads, then write.
- `threadpool`: the replaced parallel shape. A pool of `--threads` threads over whole files,
  each chunking its file, embedding all its chunks in one call and writing its rows.
- `beam`: our pipeline through its public API, `HighThroughputProcessor`.

All three use the same chunker (`load_chunks` with `--chunker`, by default that of a new
index), embedder instance per process (shared by the
threads: one HTTP connection pool for the remote one), row builder and shard writer.

    python -m benchmarks.shapes SHAPE SOURCE OUT --files LIST --embedder hashing \\
        [--embedding-url URL] [--chunker syntax] [--threads 8] [--batch-size 64] [--started EPOCH] [BEAM FLAGS…]

Prints one JSON line: files, failed, chunks, bytes and `first_progress_s`, the moment the first
file was finished (embedded) counted from `--started` (the parent's spawn time).
"""

from __future__ import annotations

import argparse
import atexit
import gc
import json
import os
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from beam_pipeline.chunking import DEFAULT_CHUNK_SIZE, default_overlap
from beam_pipeline.chunking.cut import load_chunks
from beam_pipeline.embedders import DEFAULT_EMBEDDER, Embedder, get_embedder
from beam_pipeline.layout.records import FileRecord
from beam_pipeline.source.discover import DEFAULT_MAX_FILE_SIZE
from beam_pipeline.source.text import CHUNKERS, DEFAULT_CHUNKER, ChunkerConfig, FileSkipped
from beam_pipeline.store.rows import ShardBuffer, build_rows

FAKE_MODEL = "fake"
DIM = 384


def make_embedder(name: str, url: str | None) -> Embedder:
    if name == "openai":
        return get_embedder("openai", dim=DIM, base_url=url, model=FAKE_MODEL)
    return get_embedder(name)


class Outcome:
    """Counts and the first-finished moment, from any thread."""

    def __init__(self, started: float):
        self.started = started
        self.first_progress_s: float | None = None
        self.files = self.failed = self.chunks = self.bytes = 0
        self._lock = threading.Lock()

    def file_done(self, chunks: int, size: int) -> None:
        with self._lock:
            if self.first_progress_s is None:
                self.first_progress_s = time.time() - self.started
            self.files += 1
            self.chunks += chunks
            self.bytes += size

    def file_failed(self) -> None:
        with self._lock:
            self.failed += 1


def _chunked(config: ChunkerConfig, rel: str):
    """(FileRecord, chunks) or None for a file the indexer would skip or fail."""
    try:
        st = os.stat(os.path.join(config.root, rel))
        digest, _, chunks = load_chunks(config, rel)
    except (OSError, FileSkipped):
        return None
    return FileRecord(rel, st.st_size, st.st_mtime_ns, digest, len(chunks)), chunks


def sequential(config, files, embedder, threads, writer: ShardBuffer, outcome: Outcome) -> None:
    prepared = []
    for rel in files:  # every file chunked before anything is embedded
        item = _chunked(config, rel)
        if item is None:
            outcome.file_failed()
        else:
            prepared.append(item)
    with ThreadPoolExecutor(threads) as pool:  # one call per chunk
        futures = [[pool.submit(embedder.embed, [c.text]) for c in chunks]
                   for _, chunks in prepared]
        vectors = []
        for (record, chunks), pending in zip(prepared, futures):
            rows = [f.result()[0] for f in pending]
            outcome.file_done(len(chunks), record.size)
            vectors.append(rows)
    for (record, chunks), rows in zip(prepared, vectors):
        if chunks:
            writer.add(build_rows(record, chunks, _stack(rows), embedder.dim))
    writer.flush()


def threadpool(config, files, embedder, threads, writer: ShardBuffer, outcome: Outcome) -> None:
    lock = threading.Lock()

    def one_file(rel: str) -> None:
        item = _chunked(config, rel)
        if item is None:
            outcome.file_failed()
            return
        record, chunks = item
        if chunks:
            vectors = embedder.embed([c.text for c in chunks])  # the whole file, one call
            batch = build_rows(record, chunks, vectors, embedder.dim)
            with lock:
                writer.add(batch)
        outcome.file_done(len(chunks), record.size)

    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(one_file, files))
    writer.flush()


def beam(source, out, files, embedder, chunker, threads, batch_size, flags,
         outcome: Outcome) -> None:
    from beam_pipeline import HighThroughputProcessor

    def callback(current, total, path, info=None, concurrent_files=None, slot_tracker=None):
        if total and current and outcome.first_progress_s is None:
            outcome.first_progress_s = time.time() - outcome.started

    processor = HighThroughputProcessor(source, out, embedder, chunker=chunker,
                                        pipeline_args=flags)
    stats = processor.process_files_high_throughput(files, threads, batch_size, callback)
    outcome.files, outcome.failed = stats.files_processed, stats.failed_files
    outcome.chunks, outcome.bytes = stats.chunks_created, stats.total_size


def _stack(rows):
    import numpy as np

    return np.stack(rows).astype(np.float32, copy=False)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.shapes")
    parser.add_argument("shape", choices=("sequential", "threadpool", "beam"))
    parser.add_argument("source", type=Path)
    parser.add_argument("out", type=Path)
    parser.add_argument("--files", type=Path, required=True, help="relative paths, one a line")
    parser.add_argument("--embedder", default=DEFAULT_EMBEDDER)
    parser.add_argument("--embedding-url")
    parser.add_argument("--chunker", choices=CHUNKERS, default=DEFAULT_CHUNKER)
    parser.add_argument("--threads", type=int, default=8)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--started", type=float, default=None, help="parent's spawn time")
    args, flags = parser.parse_known_args(argv)
    # As `beam-index` does (cli.entry): the collector is frozen at exit rather than left to
    # free Beam's objects one by one, a program's choice the library no longer makes for it.
    atexit.register(gc.freeze)
    outcome = Outcome(args.started or time.time())
    files = args.files.read_text(encoding="utf-8").splitlines()
    embedder = make_embedder(args.embedder, args.embedding_url)
    source = str(args.source.resolve())
    if args.shape == "beam":
        beam(source, args.out, files, embedder, args.chunker, args.threads, args.batch_size, flags, outcome)
    else:
        embedder.load()  # as a worker's setup() does: the model load is part of every shape
        args.out.mkdir(parents=True, exist_ok=True)
        size = DEFAULT_CHUNK_SIZE
        config = ChunkerConfig(source, size, default_overlap(size), DEFAULT_MAX_FILE_SIZE,
                               chunker=args.chunker)
        run = sequential if args.shape == "sequential" else threadpool
        run(config, files, embedder, args.threads, ShardBuffer(str(args.out), embedder.dim),
            outcome)
    print(json.dumps({"files": outcome.files, "failed": outcome.failed, "chunks": outcome.chunks,
                      "bytes": outcome.bytes, "first_progress_s": outcome.first_progress_s}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
