"""Helper processes for GIL-bound embedders (embedding.EmbedderProcesses, --embed-processes)."""

import logging
import os
import subprocess
import sys

import apache_beam as beam
import numpy as np
import pytest
from apache_beam.options.pipeline_options import PipelineOptions
from apache_beam.testing.test_pipeline import TestPipeline
from apache_beam.testing.util import assert_that, equal_to
from conftest import PoisonEmbedder

from beam_pipeline.embedders import HashingEmbedder
from beam_pipeline.embedding.calls import EmbedderProcesses
from beam_pipeline.embedding.transform import EmbedChunks
from beam_pipeline.run.options import embed_processes

CHUNKS = [(f"f{i}.py", j, f"def func_{i}_{j}(value): return value * {j}")
          for i in range(12) for j in range(7)]


def batches(size=5):
    return [CHUNKS[i:i + size] for i in range(0, len(CHUNKS), size)]


class HelperPids(HashingEmbedder):
    """Answers with its process id in every vector's first component."""

    def embed(self, texts):
        vectors = super().embed(texts)
        vectors[:, 0] = os.getpid()
        return vectors


class DiesInHelper(HashingEmbedder):
    """Kills its own process on the second call, but only inside a helper process."""

    def __init__(self, dim=64):
        super().__init__(dim)
        self.launcher = os.getpid()

    def __getstate__(self):
        return {**super().__getstate__(), "launcher": self.launcher}

    def __setstate__(self, state):
        super().__setstate__(state)
        self.launcher = state["launcher"]
        self.calls = 0

    def embed(self, texts):
        self.calls = getattr(self, "calls", 0) + 1
        if os.getpid() != self.launcher and self.calls == 2:
            os._exit(3)
        return super().embed(texts)


class GilBoundPoison(PoisonEmbedder):
    gil_bound = True


def test_helpers_embed_exactly_what_the_embedder_does_in_process():
    expected = HashingEmbedder(64)
    with EmbedderProcesses(HashingEmbedder(64), count=2) as helpers:
        for batch in batches():
            outcomes, calls, seconds = helpers.embed(batch)
            assert calls == 1 and seconds > 0
            got = np.frombuffer(b"".join(outcomes), np.float32).reshape(len(batch), 64)
            np.testing.assert_array_equal(got, expected.embed([t for _, _, t in batch]))


def test_batches_run_in_other_processes_and_the_helpers_exit_on_close():
    helpers = EmbedderProcesses(HelperPids(16), count=2)
    processes = [h.process for h in helpers._helpers]
    pids = set()
    for batch in batches():
        outcomes, _, _ = helpers.embed(batch)
        pids |= {int(np.frombuffer(o, np.float32)[0]) for o in outcomes}
    helpers.close()
    assert os.getpid() not in pids and pids <= {p.pid for p in processes}
    assert [p.poll() for p in processes] == [0, 0]


class SlowHelperPids(HelperPids):
    """HelperPids that takes 0.2 s a call, so that submitted batches queue up."""

    def embed(self, texts):
        import time

        time.sleep(0.2)
        return super().embed(texts)


@pytest.mark.parametrize("fill_first, expected", [(3, [0, 0, 0, 1]), (1, [0, 1, 0, 1])])
def test_the_first_helper_is_filled_before_the_next(fill_first, expected):
    """With `fill_first` 3 the first helper takes three queued batches before the second gets
    one (one token cache while one helper keeps up); with 1, queued batches alternate."""
    with EmbedderProcesses(SlowHelperPids(16), count=2, fill_first=fill_first) as helpers:
        pids = [h.process.pid for h in helpers._helpers]
        futures = [helpers.submit(batch) for batch in batches()[:4]]
        answered = [int(np.frombuffer(f.result()[0][0], np.float32)[0]) for f in futures]
    assert [pids.index(pid) for pid in answered] == expected


def test_a_helper_that_dies_loses_no_chunk(caplog):
    expected = HashingEmbedder(64)
    with caplog.at_level(logging.WARNING), EmbedderProcesses(DiesInHelper(64), 1) as helpers:
        results = [helpers.embed(batch) for batch in batches()]
    assert "embedding helper process" in caplog.text and "exit status 3" in caplog.text
    for batch, (outcomes, _, _) in zip(batches(), results):
        got = np.frombuffer(b"".join(outcomes), np.float32).reshape(len(batch), 64)
        np.testing.assert_array_equal(got, expected.embed([t for _, _, t in batch]))


def test_a_helper_that_cannot_start_falls_back_to_this_process(monkeypatch, caplog):
    monkeypatch.setattr(sys, "executable", "/nonexistent/python")
    with caplog.at_level(logging.WARNING), EmbedderProcesses(HashingEmbedder(32), 2) as helpers:
        outcomes, calls, _ = helpers.embed(CHUNKS[:3])
    assert "cannot start an embedding helper process (FileNotFoundError" in caplog.text
    assert calls == 1 and len(outcomes) == 3 and all(isinstance(o, bytes) for o in outcomes)


def test_an_embedder_pickle_cannot_send_is_embedded_in_this_process(caplog):
    class Local(HashingEmbedder):  # a class inside a function: plain pickle refuses it
        gil_bound = True

    with caplog.at_level(logging.WARNING), EmbedderProcesses(Local(32), 1) as helpers:
        outcomes, calls, _ = helpers.embed(CHUNKS[:3])
    assert "cannot start an embedding helper process (AttributeError" in caplog.text
    assert calls == 1 and len(outcomes) == 3


def test_embed_chunks_with_helpers_isolates_a_poisoned_chunk_like_in_process():
    chunks = [(f"f{i}.py", [(0, "POISON" if i == 7 else f"x{i} = {i}"), (1, f"y{i} = 1")])
              for i in range(10)]

    with TestPipeline(runner="FnApiRunner") as p:
        out = (p | beam.Create(chunks, reshuffle=False)
                 | EmbedChunks(GilBoundPoison(), batch_size=4, processes=2))
        assert_that(out.errors | beam.MapTuple(lambda path, e: (path, e[0])),
                    equal_to([("f7.py", 0)]), label="errors")
        assert_that(out.vectors | beam.FlatMapTuple(
            lambda path, block: [(path, i) for i in block[0]]),
            equal_to([(f"f{i}.py", j) for i in range(10) for j in (0, 1) if (i, j) != (7, 0)]),
            label="vectors")


@pytest.mark.parametrize("flags, asked, gil_bound, expected", [
    ([], 3, True, 3),
    ([], 0, True, 0),
    ([], None, False, 0),
    ([], None, True, len(os.sched_getaffinity(0))),
    (["--direct_running_mode=multi_threading"], None, True, len(os.sched_getaffinity(0))),
    (["--direct_running_mode=multi_processing"], None, True, 0),
    (["--runner=PortableRunner"], None, True, 0),
])
def test_how_many_helpers_a_run_gets(flags, asked, gil_bound, expected):
    assert embed_processes(PipelineOptions(flags), asked, gil_bound) == expected


def test_negative_helper_counts_are_refused():
    with pytest.raises(ValueError):
        EmbedChunks(HashingEmbedder(), batch_size=4, processes=-1)


def test_batches_queue_behind_a_busy_helper_and_answer_in_order():
    expected = HashingEmbedder(64)
    with EmbedderProcesses(HashingEmbedder(64), count=2) as helpers:
        futures = [helpers.submit(batch) for batch in batches(3)]  # all queued at once
        assert max(h.queued for h in helpers._helpers) > 1
        for batch, future in zip(batches(3), futures):
            outcomes, _, _ = future.result(timeout=30)
            got = np.frombuffer(b"".join(outcomes), np.float32).reshape(len(batch), 64)
            np.testing.assert_array_equal(got, expected.embed([t for _, _, t in batch]))


def test_batches_queued_to_a_helper_that_dies_are_embedded_here(caplog):
    expected = HashingEmbedder(64)
    with caplog.at_level(logging.WARNING), EmbedderProcesses(DiesInHelper(64), 1) as helpers:
        futures = [helpers.submit(batch) for batch in batches()]
        results = [future.result(timeout=30) for future in futures]
    assert "exit status 3" in caplog.text
    for batch, (outcomes, _, _) in zip(batches(), results):
        got = np.frombuffer(b"".join(outcomes), np.float32).reshape(len(batch), 64)
        np.testing.assert_array_equal(got, expected.embed([t for _, _, t in batch]))


@pytest.mark.parametrize("module", ["beam_pipeline.embedding.calls", "beam_pipeline.lexical.feed"])
def test_a_helper_module_starts_clean(module):
    """`python -m` of a helper runs it once: a package that imported it first would make runpy
    warn on every helper's stderr (and through the terminal's progress bars)."""
    done = subprocess.run([sys.executable, "-W", "error::RuntimeWarning", "-m", module],
                          capture_output=True, text=True, timeout=120, check=False)
    assert "RuntimeWarning" not in done.stderr
    assert "IndexError" in done.stderr  # it got as far as reading its (missing) arguments


def test_a_small_run_starts_no_helper():
    from beam_pipeline.run.flags import SMALL_RUN_FILES

    options = PipelineOptions([])
    assert embed_processes(options, None, True, SMALL_RUN_FILES - 1) == 0
    assert embed_processes(options, None, True, SMALL_RUN_FILES) == len(os.sched_getaffinity(0))
    assert embed_processes(options, 2, True, 1) == 2  # asked for: always
