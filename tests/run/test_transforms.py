"""TestPipeline + assert_that tests of each composite transform."""

import glob
import threading

import apache_beam as beam
import numpy as np
import pyarrow.parquet as pq
import pytest
from apache_beam.testing.test_pipeline import TestPipeline
from apache_beam.testing.util import assert_that, equal_to
from conftest import (
    PoisonEmbedder,
    SlowEmbedder,
    block_chunks,
    code_file,
    listed_tree,
    make_tree,
)

from beam_pipeline.chunking import chunk_text
from beam_pipeline.chunking.transform import ChunkFiles
from beam_pipeline.embedders import HashingEmbedder
from beam_pipeline.embedding.transform import EmbedChunks
from beam_pipeline.layout.schema import FAILED, INDEXED, SKIPPED
from beam_pipeline.run.pipeline import IndexFiles, IndexFilesConfig, ReadFileList
from beam_pipeline.run.progress import ProgressChannel, ProgressTracker
from beam_pipeline.runtime.link import RunLink
from beam_pipeline.source.discover import FileEntry, discover_to_file
from beam_pipeline.source.text import ChunkerConfig


def pipeline():
    return TestPipeline(runner="FnApiRunner")


def entries_of(root, names):
    return [FileEntry(n, (root / n).stat().st_size, (root / n).stat().st_mtime_ns) for n in names]


def test_chunk_files_emits_records_and_chunks(tmp_path):
    text = code_file("alpha", 60)
    make_tree(tmp_path, {"a.py": text, "empty.py": "", "bin.dat": b"\x00\x01\x02",
                         "bad.txt": bytes(range(1, 32)) * 10 + b"\xff\x80"})
    names = ["a.py", "empty.py", "bin.dat", "bad.txt", "gone.py"]
    config = ChunkerConfig(str(tmp_path), 200, 30, 1 << 20)
    cut = chunk_text(text, 200, 30)
    expected_chunks = [("a.py", [(c.index, c.text) for c in cut])]
    with pipeline() as p:
        entries = p | beam.Create(entries_of(tmp_path, names[:-1]) + [FileEntry("gone.py", 1, 0)])
        out = entries | ChunkFiles(config)
        statuses = out.files | beam.MapTuple(
            lambda path, r: (path, r.status, r.total_chunks, r.error and r.error.split(":")[0]))
        assert_that(statuses, equal_to([
            ("a.py", INDEXED, len(cut), None),
            ("empty.py", INDEXED, 0, None),
            ("bin.dat", SKIPPED, 0, "binary"),
            ("bad.txt", SKIPPED, 0, "undecodable"),
            ("gone.py", FAILED, 0, "FileNotFoundError"),
        ]), label="records")
        # One element per file that has chunks.
        assert_that(out.chunks, equal_to(expected_chunks), label="chunks")


def per_file(chunks):
    """(path, index, text) triples → ChunkFile's elements, (path, [(index, text), …])."""
    files: dict = {}
    for path, index, text in chunks:
        files.setdefault(path, []).append((index, text))
    return list(files.items())


def test_embed_chunks_isolates_a_poisoned_chunk_and_batches_across_files():
    chunks = [(f"f{i}.py", j, f"def f{i}_{j}(): pass") for i in range(5) for j in range(3)]
    chunks[7] = ("f2.py", 1, "POISON here")
    with pipeline() as p:
        out = p | beam.Create(per_file(chunks)) | EmbedChunks(PoisonEmbedder(), batch_size=100)
        assert_that(out.errors | beam.MapTuple(lambda path, e: (path, e[0], "poisoned" in e[1])),
                    equal_to([("f2.py", 1, True)]), label="errors")
        embedded = out.vectors | beam.FlatMapTuple(
            lambda path, block: [(p, i, len(v)) for p, i, v in block_chunks(path, block)])
        assert_that(embedded, equal_to([(path, j, 16 * 4) for path, j, text in chunks
                                        if "POISON" not in text]), label="vectors")


BATCH_SIZES_SEEN: list[int] = []


class RecordingEmbedder(PoisonEmbedder):
    """Records batch sizes in this module (the in-memory runner shares the process)."""

    def embed(self, texts):
        BATCH_SIZES_SEEN.append(len(texts))
        return super().embed(texts)


def test_embed_batches_honour_batch_size_across_and_within_files():
    BATCH_SIZES_SEEN.clear()
    # 23 one-chunk files and one of 14 chunks: 37 chunks, so 7 full batches and one of 2.
    chunks = [(f"f{i}.py", 0, f"x{i} = {i}") for i in range(23)]
    chunks += [("big.py", j, f"y{j} = {j}") for j in range(14)]
    with pipeline() as p:
        out = (p | beam.Create(per_file(chunks), reshuffle=False)
                 | EmbedChunks(RecordingEmbedder(), 5))
        embedded = out.vectors | beam.FlatMapTuple(lambda path, block: [(path, i) for i in block[0]])
        assert_that(embedded, equal_to([(path, i) for path, i, _ in chunks]))
    assert sorted(BATCH_SIZES_SEEN, reverse=True) == [5] * 7 + [2]


def test_index_files_is_atomic_per_file(tmp_path):
    src = make_tree(tmp_path / "src", {
        "good_a.py": code_file("good_a", 30),
        "poisoned.py": code_file("victim", 15) + "# POISON\n" + code_file("victim_tail", 15),
        "good_b.py": code_file("good_b", 30),
        "empty.py": "",
    })
    staging = tmp_path / "staging"
    staging.mkdir()
    listing = tmp_path / "files.jsonl"
    discover_to_file(src, listing)
    config = ChunkerConfig(str(src), 300, 45, 1 << 20)
    with pipeline() as p:
        # One batch holds chunks of all three files: the poisoned one must fail alone.
        out = (p | ReadFileList(str(listing))
                 | IndexFiles(IndexFilesConfig(config, PoisonEmbedder(), batch_size=1000,
                                               staging_dir=str(staging))))
        outcome = out.results | beam.Map(lambda r: (r.path, r.status))
        assert_that(outcome, equal_to([("good_a.py", INDEXED), ("poisoned.py", FAILED),
                                       ("good_b.py", INDEXED), ("empty.py", INDEXED)]))
    rows = pq.read_table(glob.glob(str(staging / "part-*.parquet"))).to_pydict()
    assert set(rows["path"]) == {"good_a.py", "good_b.py"}
    for path in ("good_a.py", "good_b.py"):
        expected = chunk_text((src / path).read_text(), 300, 45)
        got = sorted((i, s, e) for p_, i, s, e in zip(rows["path"], rows["chunk_index"],
                                                       rows["line_start"], rows["line_end"])
                     if p_ == path)
        assert got == [(c.index, c.line_start, c.line_end) for c in expected]
    files = pq.read_table(staging / "files.parquet").to_pydict()
    failed = files["error"][files["path"].index("poisoned.py")]
    assert "chunk" in failed and "poisoned input" in failed


def test_vectors_in_shards_equal_the_embedder_output(tmp_path):
    src = make_tree(tmp_path / "src", {"m.py": code_file("mod", 40)})
    staging = tmp_path / "staging"
    staging.mkdir()
    listing = tmp_path / "files.jsonl"
    discover_to_file(src, listing)
    embedder = HashingEmbedder(64)
    with pipeline() as p:
        _ = (p | ReadFileList(str(listing))
               | IndexFiles(IndexFilesConfig(ChunkerConfig(str(src), 500, 75, 1 << 20), embedder,
                                             7, str(staging))))
    table = pq.read_table(glob.glob(str(staging / "part-*.parquet"))).sort_by("chunk_index")
    vectors = np.array(table["vector"].to_pylist(), dtype=np.float32)
    np.testing.assert_allclose(vectors, embedder.embed(table["content"].to_pylist()), rtol=1e-6)


@pytest.mark.parametrize("batch_size", [0, -3])
def test_invalid_batch_size_is_refused(batch_size):
    with pytest.raises(ValueError):
        EmbedChunks(HashingEmbedder(), batch_size=batch_size)


def test_the_pipeline_reports_progress_events_to_the_launcher(tmp_path):
    src = make_tree(tmp_path / "src", {f"f{i}.py": code_file(f"f{i}", 10 * i) for i in range(6)})
    staging = tmp_path / "staging"
    staging.mkdir()
    listing = tmp_path / "files.jsonl"
    discover_to_file(src, listing)
    done = []
    tracker = ProgressTracker(total_files=6, on_file_done=done.append)
    expected_chunks = sum(len(chunk_text((src / f"f{i}.py").read_text(), 300, 45))
                          for i in range(6))
    with ProgressChannel(tracker) as channel, pipeline() as p:
        _ = (p | ReadFileList(str(listing))
               | IndexFiles(IndexFilesConfig(ChunkerConfig(str(src), 300, 45, 1 << 20),
                                             HashingEmbedder(), 4, str(staging),
                                             RunLink(channel.address, key=channel.key))))
    assert sorted(done) == [f"f{i}.py" for i in range(6)]  # f0.py is empty: done at chunking
    assert tracker.files_done == 6
    assert tracker.chunks_cut == tracker.chunks_embedded == expected_chunks
    assert tracker.files_assembled == 6 and tracker.rows_written == expected_chunks
    assert channel.dropped == tracker.dropped == 0


class CountingSlowEmbedder(SlowEmbedder):
    """Records how many of its calls were in flight at once (the test runs in-process, so the
    DoFn's copy shares this class's counters)."""

    lock = threading.Lock()
    in_flight = 0
    most = 0

    def embed(self, texts):
        cls = type(self)
        with cls.lock:
            cls.in_flight += 1
            cls.most = max(cls.most, cls.in_flight)
        try:
            return super().embed(texts)
        finally:
            with cls.lock:
                cls.in_flight -= 1


def test_embed_concurrency_overlaps_slow_calls_and_keeps_results():
    chunks = [(f"f{i % 5}.py", i, f"def f{i}(): return {i}") for i in range(40)]
    most = {}
    for threads in (1, 4):
        CountingSlowEmbedder.most = 0
        with pipeline() as p:
            out = (p | beam.Create(per_file(chunks), reshuffle=False)
                     | EmbedChunks(CountingSlowEmbedder(0.15), batch_size=2, concurrency=threads))
            assert_that(out.vectors | beam.FlatMapTuple(
                lambda path, block: [(p, i, len(v)) for p, i, v in block_chunks(path, block)]),
                equal_to([(path, i, 384 * 4) for path, i, _ in chunks]))
        most[threads] = CountingSlowEmbedder.most
    # Counted, not timed: a loaded machine stretches wall time, never the overlap.
    assert most[1] == 1 and most[4] >= 3, most


def test_embed_concurrency_still_isolates_a_poisoned_chunk():
    chunks = [(f"f{i}.py", 0, "POISON" if i == 7 else f"x{i} = {i}") for i in range(16)]
    with pipeline() as p:
        out = (p | beam.Create(per_file(chunks), reshuffle=False)
                 | EmbedChunks(ThreadSafePoison(), batch_size=3, concurrency=3))
        assert_that(out.errors | beam.MapTuple(lambda path, e: path), equal_to(["f7.py"]),
                    label="errors")
        assert_that(out.vectors | beam.FlatMapTuple(lambda path, block: [path] * len(block[0])),
                    equal_to([f"f{i}.py" for i in range(16) if i != 7]), label="vectors")


class ThreadSafePoison(PoisonEmbedder):
    parallel_calls = True


def test_write_shards_writes_whole_files_sorted_and_reports_every_shard(tmp_path):
    from beam_pipeline.layout.records import FileRecord
    from beam_pipeline.store.rows import build_rows
    from beam_pipeline.store.write import WriteShards

    embedder = HashingEmbedder(8)
    batches = []
    for i in reversed(range(40)):  # arrive out of path order, as after the per-file grouping
        text = code_file(f"m{i}", 3 + i % 7)
        chunks = chunk_text(text, 120, 20)
        record = FileRecord(f"pkg/m{i:02}.py", len(text), 0, f"{i:064x}", len(chunks))
        batches.append(build_rows(record, chunks, embedder.embed([c.text for c in chunks]), 8))
    expected_rows = sum(b.num_rows for b in batches)
    with pipeline() as p:
        shards = p | beam.Create(batches, reshuffle=False) | WriteShards(str(tmp_path), 8,
                                                                           rows_per_shard=50)
        assert_that(shards | beam.Map(lambda s: s["rows"]) | beam.CombineGlobally(sum),
                    equal_to([expected_rows]))
    files = sorted(tmp_path.glob("part-*.parquet"))
    assert len(files) >= expected_rows // 60  # several shards, each about 50 rows
    seen = []
    for shard in files:
        table = pq.read_table(shard)
        paths = table["path"].to_pylist()
        assert paths == sorted(paths)  # sorted by path, chunks of a file together in order
        assert table.num_rows < 50 + max(b.num_rows for b in batches)
        seen += sorted(set(paths))
    assert sorted(seen) == sorted(f"pkg/m{i:02}.py" for i in range(40))  # each file in one shard


def test_a_shard_buffer_of_small_files_holds_few_arrow_batches_and_writes_them_sorted(tmp_path):
    """Issue 35: each one-row file's batch cost ~16 KB of objects; 100,000 small files held
    hundreds of MB in the shard buffers. Small files' batches are combined as they come."""
    from beam_pipeline.layout.records import FileRecord
    from beam_pipeline.store.rows import COMPACT_BATCHES, ShardBuffer, build_rows

    embedder = HashingEmbedder(8)
    rng = np.random.default_rng(7)
    buffer = ShardBuffer(str(tmp_path), 8, rows_per_shard=10**6)
    sizes = {}
    for i in rng.permutation(1000):  # out of path order, as after the per-file grouping
        lines = 40 if i % 100 == 0 else 1  # a few files of many rows among one-row files
        text = code_file(f"m{i}", lines)
        chunks = chunk_text(text, 60, 10) if lines > 1 else chunk_text(text, 10**4, 0)
        sizes[f"pkg/m{i:04}.py"] = len(chunks)
        record = FileRecord(f"pkg/m{i:04}.py", len(text), 0, f"{i:064x}", len(chunks))
        buffer.append(build_rows(record, chunks, embedder.embed([c.text for c in chunks]), 8))
        assert buffer.batches <= 10 + 1000 // COMPACT_BATCHES + COMPACT_BATCHES
    assert buffer.batches <= 10 + 1000 // COMPACT_BATCHES + COMPACT_BATCHES - 1
    shard = buffer.flush()
    assert shard["files"] == 1000 and shard["rows"] == sum(sizes.values())
    table = pq.read_table(tmp_path / shard["path"])
    keys = list(zip(table["path"].to_pylist(), table["chunk_index"].to_pylist()))
    assert keys == sorted(keys)  # by path, each file's rows together and in chunk order
    assert keys == [(path, index) for path in sorted(sizes) for index in range(sizes[path])]
    assert buffer.take() is None


def test_read_file_list_gives_the_discovered_entries(tmp_path):
    src = make_tree(tmp_path / "src", {f"d{i % 3}/f{i}.py": code_file(f"f{i}", 2)
                                       for i in range(9)})
    listing = tmp_path / "files.jsonl"
    discover_to_file(src, listing)
    expected = [FileEntry.from_json(line) for line in listing.read_text().splitlines()]
    assert len(expected) == 9
    with pipeline() as p:
        assert_that(p | ReadFileList(str(listing)), equal_to(expected))


def test_reuse_known_vectors_splits_known_from_missing(tmp_path):
    from beam_pipeline.embedding.journal import text_key
    from beam_pipeline.embedding.reuse import ReuseKnownVectors, write_reuse_table

    known = {"a = 1": np.arange(4, dtype=np.float32), "c = 3": np.ones(4, dtype=np.float32)}
    table = str(tmp_path / "reuse.parquet")
    keys = b"".join(text_key(text) for text in known)
    assert write_reuse_table(table, 4, journal=[(keys, np.stack(list(known.values())).tobytes())]) == 2
    chunks = [("f.py", 0, "a = 1"), ("f.py", 1, "b = 2"), ("f.py", 2, "c = 3"), ("g.py", 0, "d = 4")]
    with pipeline() as p:
        out = p | beam.Create(per_file(chunks), reshuffle=False) | ReuseKnownVectors(table)
        assert_that(out.vectors | beam.MapTuple(
            lambda path, block: (path, block[0], np.frombuffer(block[1], np.float32).tolist())),
            equal_to([("f.py", [0, 2], [0.0, 1.0, 2.0, 3.0, 1.0, 1.0, 1.0, 1.0])]),
            label="reused")
        assert_that(out.missing, equal_to([("f.py", [(1, "b = 2")]), ("g.py", [(0, "d = 4")])]),
                    label="missing")


def test_assemble_files_groups_a_files_parts_all_or_nothing(tmp_path):
    from beam_pipeline.store.assemble import AssembleFiles, AssemblyInputs

    src = make_tree(tmp_path, {"good.py": code_file("good", 30),
                               "poisoned.py": code_file("bad", 20) + "# POISON\n",
                               "empty.py": ""})
    config = ChunkerConfig(str(tmp_path), 300, 45, 1 << 20)
    good_chunks = len(chunk_text((src / "good.py").read_text(), 300, 45))
    with pipeline() as p:
        entries = p | beam.Create(entries_of(src, ["good.py", "poisoned.py", "empty.py"]))
        chunked = entries | ChunkFiles(config)
        embedded = chunked.chunks | EmbedChunks(PoisonEmbedder(), batch_size=1)
        assembled = AssemblyInputs(chunked.files, embedded.vectors, embedded.errors) \
            | AssembleFiles(config, 16)
        assert_that(assembled.results | beam.Map(lambda r: (r.path, r.status)),
                    equal_to([("good.py", INDEXED), ("poisoned.py", FAILED),
                              ("empty.py", INDEXED)]), label="results")
        # Rows only for the whole file that embedded; none of the failed one's.
        assert_that(assembled.rows | beam.FlatMap(lambda batch: batch["path"].to_pylist()),
                    equal_to(["good.py"] * good_chunks), label="rows")


def test_index_files_outputs_are_named_and_the_old_keys_still_answer(tmp_path):
    src, staging, listing = listed_tree(
        tmp_path, {f"f{i}.py": code_file(f"f{i}", 20) for i in range(4)})
    config = IndexFilesConfig(ChunkerConfig(str(src), 300, 45, 1 << 20), HashingEmbedder(8), 16,
                              str(staging))
    chunks = sum(len(chunk_text((src / f"f{i}.py").read_text(), 300, 45)) for i in range(4))
    with pytest.raises(ValueError, match="batch size"):
        IndexFiles(IndexFilesConfig(config.chunker, config.embedder, 0, str(staging)))
    with pytest.warns(DeprecationWarning, match="IndexFilesConfig"):  # the old arguments
        assert IndexFiles(config.chunker, config.embedder, 16, str(staging)).config == config
    with pipeline() as p:
        indexed = p | ReadFileList(str(listing)) | IndexFiles(config)
        assert indexed._fields == ("results", "shards", "summary")
        with pytest.warns(DeprecationWarning, match=r"\.shards"):
            assert indexed["shards"] is indexed.shards
        assert_that(indexed.results | beam.Map(lambda r: r.status),
                    equal_to([INDEXED] * 4), label="results")
        assert_that(indexed.shards | beam.Map(lambda s: s["files"]) | beam.CombineGlobally(sum),
                    equal_to([4]), label="shards")
        # One summary, written once, naming every file and every shard's rows.
        assert_that(indexed.summary | beam.Map(
            lambda s: (s["files"], sum(shard["rows"] for shard in s["shards"]))),
            equal_to([(4, chunks)]), label="summary")
