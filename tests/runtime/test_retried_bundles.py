"""Distributed runners retry bundles (Dataflow retries a failed bundle, Flink and Spark restart
tasks). No runner here retries, so this drives the real DoFns by hand through two attempts of
each bundle, the first failing midway, keeping only what the successful attempt emitted, as a
runner does; then the real commit. What the failed attempts wrote (shards, a spill file, event
files) must reach neither the snapshot nor the stats."""

import collections
import os

import pyarrow as pa
from apache_beam.internal import pickler
from apache_beam.pvalue import TaggedOutput
from apache_beam.utils.windowed_value import WindowedValue
from conftest import code_file, make_tree

from beam_pipeline.chunking.transform import ChunkFile
from beam_pipeline.embedders import HashingEmbedder
from beam_pipeline.embedding.transform import BatchChunks, EmbedBatch
from beam_pipeline.layout.schema import SHARD_PREFIX
from beam_pipeline.run.progress import EventFileChannel, ProgressTracker, RunLink
from beam_pipeline.run.stats import contradictions, output_counters
from beam_pipeline.runtime.event_files import EVENTS_DIR
from beam_pipeline.search import Index
from beam_pipeline.source import storage
from beam_pipeline.source.discover import FileEntry, discover_to_file
from beam_pipeline.source.text import ChunkerConfig
from beam_pipeline.store import commit
from beam_pipeline.store.assemble import AssembleFile
from beam_pipeline.store.spill import SPILL_DIR, SpillVectorsFn
from beam_pipeline.store.verify import verify_index
from beam_pipeline.store.write import WriteShardsFn, write_staging_summary

DIM = 32


class WorkerDied(Exception):
    pass


def attempt(template, elements, fail_after=None):
    """One attempt of a bundle on a fresh copy of the DoFn (as a worker gets one): outputs by
    tag ("main" or the tag), or WorkerDied after `fail_after` elements."""
    fn = pickler.loads(pickler.dumps(template))
    fn.setup()
    if hasattr(fn, "start_bundle"):
        fn.start_bundle()
    outputs = collections.defaultdict(list)

    def take(items):
        for item in items or ():
            value = item.value if isinstance(item, WindowedValue) else item
            if isinstance(value, TaggedOutput):
                outputs[value.tag].append(value.value)
            else:
                outputs["main"].append(value)

    try:
        for i, element in enumerate(elements):
            if i == fail_after:
                raise WorkerDied(f"attempt died after {i} elements")
            take(fn.process(element))
        if hasattr(fn, "finish_bundle"):
            take(fn.finish_bundle())
    finally:
        fn.teardown()
    return outputs


def retried(template, elements, fail_after):
    """The first attempt fails midway (its outputs are lost); the retry succeeds."""
    try:
        attempt(template, elements, fail_after)
    except WorkerDied:
        pass
    else:
        raise AssertionError("the first attempt was meant to fail")
    return attempt(template, elements)


def test_only_the_successful_attempts_reach_the_snapshot_and_the_stats(tmp_path):
    src = make_tree(tmp_path / "src", {f"m{i}.py": code_file(f"m{i}", 12 + 5 * i)
                                       for i in range(6)})
    out = str(tmp_path / "out")
    commit.prepare_output(out)
    snapshot_id = commit.new_snapshot_id()
    staging = commit.create_staging(out, snapshot_id)
    listing = tmp_path / "files.jsonl"
    discover_to_file(src, listing)
    entries = [FileEntry.from_json(line) for line in listing.read_text().splitlines()]
    config = ChunkerConfig(str(src), 300, 45, 1 << 20)
    link = RunLink(None, events_dir=storage.join(staging, EVENTS_DIR))
    embedder = HashingEmbedder(DIM)

    # Stage 1, fused as a runner fuses it: chunk, batch, embed, spill.
    chunked = retried(ChunkFile(config, link), entries, fail_after=4)
    batches = retried(BatchChunks(8), chunked["chunks"], fail_after=2)["main"]
    embedded = retried(EmbedBatch(embedder, link), batches, fail_after=3)
    spill = storage.join(staging, SPILL_DIR)
    spilled = retried(SpillVectorsFn(spill), embedded["main"], fail_after=3)["main"]
    assert len(os.listdir(spill)) == 2  # the failed attempt's file is there, unreferenced

    # The per-file grouping takes the successful attempts' outputs.
    grouped = {entry.path: {"files": [], "vectors": [], "errors": []} for entry in entries}
    for path, record in chunked["main"]:
        grouped[path]["files"].append(record)
    for path, block in spilled:
        grouped[path]["vectors"].append(block)

    # Stage 2: assemble and write, one shard a file, the first attempt dying after 3 shards.
    assembled = retried(AssembleFile(config, DIM, link), sorted(grouped.items()), fail_after=4)
    written = retried(WriteShardsFn(staging, DIM, rows_per_shard=1, progress=link),
                      assembled["rows"], fail_after=3)["main"]
    assert len(written) == 6
    staged = [n for n in storage.list_names(staging) if n.startswith(SHARD_PREFIX)]
    assert len(staged) > 6  # shards of the failed attempt are in staging too

    # The launcher's side, as run_index does it: only the pipeline's record of its shards.
    write_staging_summary(assembled["main"], written, staging)
    shards = commit.staged_summary(staging)["shards"]
    records = storage.read_parquet(storage.join(staging, "files.parquet"))
    outputs = output_counters(records, shards)
    assert contradictions(outputs) == []
    assert outputs["files_processed"] == 6 and outputs["shards_written"] == 6
    tracker = ProgressTracker(total_files=6)
    channel = EventFileChannel(tracker, storage.join(staging, EVENTS_DIR))
    channel.close()  # reads what the workers wrote: both attempts' events
    assert channel.events > 0 and tracker.files_done == 6  # each file counted once
    storage.delete_tree(spill)
    storage.delete_tree(storage.join(staging, EVENTS_DIR))
    manifest = commit.build_manifest(snapshot_id, {"embedder": {"dim": DIM}}, shards,
                                     commit.staged_counts(staging), [], [], {},
                                     {"root": str(src)})
    commit.commit_snapshot(out, staging, manifest)

    snapshot = Index.open(out)
    assert sorted(os.listdir(snapshot.directory)) == sorted(
        ["files.parquet", "manifest.json", *[s["path"] for s in shards]])
    rows = pa.concat_tables(storage.read_parquet(snapshot.shard_path(s))
                            for s in snapshot.shards)
    assert rows.num_rows == outputs["chunks_created"]
    assert verify_index(out) == []  # no duplicated ids, every file exactly once
