"""Vector blocks and spill files: vectors wait on local disk, references cross the grouping."""

import glob
import os

import numpy as np
import pyarrow.parquet as pq
import pytest
from apache_beam.testing.test_pipeline import TestPipeline
from conftest import code_file, listed_tree, make_tree

from beam_pipeline import run_index
from beam_pipeline.embedders import HashingEmbedder
from beam_pipeline.layout.schema import SNAPSHOTS_DIR, STAGING_DIR
from beam_pipeline.run.pipeline import IndexFiles, IndexFilesConfig, ReadFileList
from beam_pipeline.source.text import ChunkerConfig
from beam_pipeline.store import spill
from beam_pipeline.store.assemble import gather_vectors

DIM = 8


def rows(*values):
    return np.array([[v] * DIM for v in values], dtype=np.float32)


def test_spilled_blocks_read_back_exactly(tmp_path):
    writer = spill.SpillWriter(str(tmp_path / "spill"))
    refs = [writer.write(rows(i, i + 0.5).tobytes()) for i in range(5)]
    writer.close()
    assert os.path.getsize(writer.path) == 5 * 2 * DIM * 4
    reader = spill.SpillReader()
    for i, ref in reversed(list(enumerate(refs))):
        got = spill.block_rows(ref, 2, DIM, reader)
        np.testing.assert_array_equal(np.frombuffer(got, np.float32).reshape(2, DIM),
                                      rows(i, i + 0.5))
    reader.close()


def test_a_truncated_spill_file_is_an_error_not_short_vectors(tmp_path):
    writer = spill.SpillWriter(str(tmp_path))
    ref = writer.write(rows(1, 2, 3).tobytes())
    writer.close()
    os.truncate(writer.path, 2 * DIM * 4)
    with pytest.raises(OSError, match="truncated: 64 of 96 bytes"):
        spill.SpillReader().read(ref, 3 * DIM * 4)


def test_the_reader_keeps_a_bounded_number_of_files_open(tmp_path, monkeypatch):
    monkeypatch.setattr(spill, "_OPEN_FILES", 2)
    refs = []
    for i in range(5):
        writer = spill.SpillWriter(str(tmp_path))
        refs.append(writer.write(rows(i).tobytes()))
        writer.close()
    reader = spill.SpillReader()
    for i in [0, 1, 2, 3, 4, 0, 4]:
        assert np.frombuffer(reader.read(refs[i], DIM * 4), np.float32)[0] == i
        assert len(reader._fds) <= 2
    reader.close()
    assert not reader._fds


def test_gather_puts_inline_and_spilled_blocks_in_chunk_order(tmp_path):
    writer = spill.SpillWriter(str(tmp_path))
    spilled = writer.write(rows(3, 1).tobytes())
    writer.close()
    blocks = [([4, 2], rows(40, 20).tobytes()), ([3, 1], spilled), ([0], rows(0).tobytes())]
    matrix = gather_vectors(blocks, 5, DIM, spill.SpillReader())
    np.testing.assert_array_equal(matrix[:, 0], [0, 1, 20, 3, 40])


def test_index_files_on_a_local_staging_folder_moves_vectors_through_spill_files(tmp_path):
    src, staging, listing = listed_tree(
        tmp_path, {f"m{i}.py": code_file(f"mod{i}", 40) for i in range(4)})
    embedder = HashingEmbedder(64)
    with TestPipeline(runner="FnApiRunner") as p:
        _ = (p | ReadFileList(str(listing))
               | IndexFiles(IndexFilesConfig(ChunkerConfig(str(src), 500, 75, 1 << 20), embedder,
                                             7, str(staging),
                                             spill_dir=str(staging / spill.SPILL_DIR))))
    table = pq.read_table(glob.glob(str(staging / "part-*.parquet"))).sort_by(
        [("path", "ascending"), ("chunk_index", "ascending")])
    spilled = glob.glob(str(staging / spill.SPILL_DIR / "*.f32"))
    assert spilled and sum(os.path.getsize(f) for f in spilled) == table.num_rows * 64 * 4
    vectors = np.array(table["vector"].to_pylist(), dtype=np.float32)
    np.testing.assert_array_equal(vectors, embedder.embed(table["content"].to_pylist()))


def test_a_committed_snapshot_holds_no_spill_files(tmp_path):
    src = make_tree(tmp_path / "src", {f"f{i}.py": code_file(f"f{i}", 30) for i in range(5)})
    stats = run_index(src, tmp_path / "out")
    snapshot = tmp_path / "out" / SNAPSHOTS_DIR / stats.snapshot_id
    assert stats.files_processed == 5 and not (snapshot / spill.SPILL_DIR).exists()
    assert not any((tmp_path / "out" / STAGING_DIR).iterdir())
