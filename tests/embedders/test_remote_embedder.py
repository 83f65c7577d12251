"""The OpenAI-compatible embedder against a fake server on 127.0.0.1, through the pipeline."""

import json
import re
import time
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
from conftest import code_file, make_tree, run_cli

from beam_pipeline import IndexSettings, run_index
from beam_pipeline.embedders import (
    DEFAULT_EMBEDDER,
    ConfigurationError,
    EmbeddingError,
    HashingEmbedder,
    OpenAIEmbedder,
)
from beam_pipeline.search import Index
from beam_pipeline.store.verify import verify_index
from beam_pipeline.testing.fake_embeddings import FakeEmbeddingServer

DIM = 64


@pytest.fixture
def server():
    with FakeEmbeddingServer(DIM) as fake:
        yield fake


def remote(server, **kw):
    options = {"backoff": 0.01, "max_backoff": 0.05, "timeout": 5.0, **kw}
    return OpenAIEmbedder(DIM, model="fake-embed", base_url=server.url, **options)


def small_tree(root, n=6, lines=30):
    return make_tree(root, {f"m{i}.py": code_file(f"m{i}", lines) for i in range(n)})


def index(tmp_path, embedder, concurrency=1, batch_size=8):
    settings = IndexSettings.create(embedder, chunk_size=300, batch_size=batch_size,
                                    embed_concurrency=concurrency)
    return run_index(tmp_path / "src", tmp_path / "out", settings)


def test_full_pipeline_through_the_server_gives_the_servers_vectors(tmp_path, server):
    small_tree(tmp_path / "src")
    stats = index(tmp_path, remote(server))
    assert stats.committed and stats.files_processed == 6 and stats.failed_files == 0
    idx = Index.open(tmp_path / "out")
    table = pq.read_table([str(idx.shard_path(s)) for s in idx.shards])
    expected = HashingEmbedder(DIM).embed(table["content"].to_pylist())
    np.testing.assert_allclose(np.array(table["vector"].to_pylist()), expected, atol=1e-6)
    assert stats.counters["embedder_calls"] == len(server.requests)
    # Every chunk, and the one text the launcher's probe sent before the pipeline.
    assert stats.counters["embedder_texts"] == stats.chunks_embedded + 1
    assert server.requests[0]["inputs"] == ["def probe():\n    return 'beam-index'\n"]
    assert {r["model"] for r in server.requests} == {"fake-embed"}
    assert stats.counters["embed_ms"] > 0


def test_429_with_retry_after_and_500s_are_retried(tmp_path, server):
    small_tree(tmp_path / "src", n=2)
    server.fail_next = [(429, {"Retry-After": "0.3"}), (500, {}), (503, {})]
    started = time.monotonic()
    stats = index(tmp_path, remote(server), batch_size=64)
    assert stats.files_processed == 2 and stats.failed_files == 0
    assert stats.counters["embedder_retries"] == 3
    assert time.monotonic() - started >= 0.3  # Retry-After was honoured


def test_timeouts_are_retried(tmp_path, server):
    small_tree(tmp_path / "src", n=1)
    server.hang_next, server.hang_seconds = 1, 1.5
    stats = index(tmp_path, remote(server, timeout=0.5), batch_size=64)
    assert stats.files_processed == 1 and stats.counters["embedder_retries"] >= 1


def test_a_poisoned_chunk_fails_only_its_file(tmp_path, server):
    small_tree(tmp_path / "src", n=5)
    (tmp_path / "src" / "m2.py").write_text(code_file("m2", 30) + "# POISON\n")
    stats = index(tmp_path, remote(server), batch_size=64)  # one batch spans every file
    assert stats.committed and stats.files_processed == 4 and stats.failed_files == 1
    assert stats.failures[0]["path"] == "m2.py" and "HTTP 400" in stats.failures[0]["reason"]
    assert stats.counters.get("embedder_retries", 0) == 0  # a 400 is not retried


def test_wrong_vector_counts_are_split_until_they_succeed(tmp_path, server):
    small_tree(tmp_path / "src", n=3)
    server.short_by_one_above = 1  # only single-text requests are answered correctly
    stats = index(tmp_path, remote(server), batch_size=8)
    assert stats.files_processed == 3 and stats.failed_files == 0
    assert any(len(r["inputs"]) > 1 for r in server.requests)


def test_401_is_a_clear_message_and_the_key_never_leaks(tmp_path, server, monkeypatch):
    monkeypatch.setenv("FAKE_KEY", "sk-secret-123")
    small_tree(tmp_path / "src", n=2)
    run = index(tmp_path, remote(server, api_key_env="FAKE_KEY"))
    assert server.requests[0]["auth"] == "Bearer sk-secret-123"
    manifest = (Path(Index.open(tmp_path / "out").directory) / "manifest.json").read_text()
    assert "sk-secret" not in manifest and "sk-secret" not in json.dumps(run.to_dict())
    server.status_always = 401
    embedder = remote(server, api_key_env="FAKE_KEY")
    embedder.load()
    with pytest.raises(EmbeddingError, match=r"401 Unauthorized.*\$FAKE_KEY"):
        embedder.embed(["x = 1"])
    assert embedder.take_counts() == {"calls": 1, "texts": 1, "failures": 1}  # no retry on 401


def test_requests_respect_the_provider_limits(server):
    embedder = remote(server, max_texts=3, max_tokens=100)
    embedder.load()
    texts = ["word " * 30] * 7 + ["y"] * 5  # 150 chars ≈ 51 tokens each
    vectors = embedder.embed(texts)
    assert vectors.shape == (12, DIM)
    assert max(len(r["inputs"]) for r in server.requests) <= 3
    assert all(sum(len(t) // 3 + 1 for t in r["inputs"]) <= 80 or len(r["inputs"]) == 1
               for r in server.requests)


def test_throughput_grows_with_concurrent_requests(tmp_path, server):
    small_tree(tmp_path / "src", n=8, lines=40)
    server.latency = 0.15
    timings = {}
    for threads in (1, 4):
        started = time.monotonic()
        settings = IndexSettings.create(remote(server), chunk_size=300, batch_size=2,
                                        embed_concurrency=threads)
        run_index(tmp_path / "src", tmp_path / f"out{threads}", settings)
        timings[threads] = time.monotonic() - started
    assert server.max_in_flight >= 3
    assert timings[4] < timings[1] * 0.6, timings


def test_cli_indexes_and_searches_through_an_openai_compatible_endpoint(tmp_path, server):
    small_tree(tmp_path / "src", n=4)
    (tmp_path / "src" / "net.py").write_text("def open_socket_server(port):\n    return port\n")
    out = tmp_path / "out"
    proc = run_cli("index", tmp_path / "src", "--output", out, "-q", "--embedder", "openai",
                   "--embedding-url", server.url, "--embedding-model", "fake-embed",
                   "--embedding-dim", DIM, "--embed-concurrency", 2)
    assert proc.returncode == 0, proc.stderr
    manifest = json.loads((Path(Index.open(out).directory) / "manifest.json").read_text())
    assert manifest["fingerprint"]["embedder"] == {"name": "openai", "model": "fake-embed",
                                                   "dim": DIM}
    assert manifest["embedder_config"]["base_url"] == server.url
    hits = json.loads(run_cli("search", out, "socket server port", "--json", "--embedding-url",
                              server.url, "--embedding-model", "fake-embed").stdout)
    assert hits[0]["path"] == "net.py"
    # The endpoint is the searcher's word: without it, the default (OpenAI's) is compared with
    # the index's and refused before any request.
    asked = len(server.requests)
    refused = run_cli("search", out, "socket server port", "--embedding-model", "fake-embed")
    assert refused.returncode == 1
    assert f"base_url {server.url!r} (its manifest says)" in refused.stderr
    assert "'https://api.openai.com' (the default)" in refused.stderr
    assert "--embedding-url" in refused.stderr and len(server.requests) == asked
    bad = run_cli("index", tmp_path / "src", "--output", tmp_path / "o2", "--embedding-url",
                  server.url)
    assert bad.returncode == 2 and f"embedder '{DEFAULT_EMBEDDER}'" in bad.stderr


def test_voyage_code_models_chunk_at_4096_and_send_document_input_type(tmp_path, server,
                                                                       monkeypatch):
    monkeypatch.setenv("VOYAGE_API_KEY", "pa-secret")
    make_tree(tmp_path / "src", {"big.py": code_file("big", 200)})
    settings = IndexSettings.create("voyage", embedding_dim=DIM,
                                    embedder_options={"base_url": server.url})
    assert (settings.chunk_size, settings.chunk_overlap) == (4096, 614)
    stats = run_index(tmp_path / "src", tmp_path / "out", settings)
    assert stats.files_processed == 1
    assert {r["input_type"] for r in server.requests} == {"document"}
    assert {r["model"] for r in server.requests} == {"voyage-code-3"}
    assert server.requests[0]["auth"] == "Bearer pa-secret"
    # at most 4096 characters, cut at whole lines (syntax), far above the 1000 default
    assert 4000 < max(len(t) for r in server.requests for t in r["inputs"]) <= 4096
    explicit = IndexSettings.create("voyage", chunk_size=1500, embedding_dim=DIM,
                                    embedder_options={"base_url": server.url})
    assert explicit.chunk_size == 1500


def test_each_embedder_brings_its_own_default_dimension():
    assert IndexSettings.create().embedder.dim == 256  # static, the default
    assert IndexSettings.create("hashing").embedder.dim == 384
    assert IndexSettings.create("voyage").embedder.dim == 1024
    assert IndexSettings.create("openai").embedder.dim is None  # learned: see below
    assert IndexSettings.create("openai", embedding_dim=768).embedder.dim == 768


def test_a_server_that_turns_to_500s_midway_fails_only_the_files_it_touched(tmp_path, server):
    small_tree(tmp_path / "src", n=10, lines=20)
    server.fail_after = 3  # three batches answered, then the server breaks for good
    stats = index(tmp_path, remote(server, max_retries=1), batch_size=5)
    assert stats.committed and stats.files_processed + stats.failed_files == 10
    assert 1 <= stats.files_processed < 10
    assert all("500" in f["reason"] for f in stats.failures)
    idx = Index.open(tmp_path / "out")
    rows = pq.read_table([str(idx.shard_path(s)) for s in idx.shards])
    written = set(rows["path"].to_pylist())
    assert written.isdisjoint(f["path"] for f in stats.failures)
    assert verify_index(tmp_path / "out") == []  # every written file has all its chunks


@pytest.mark.parametrize("mode", ["answer", "ignore", "refuse"])
def test_vectors_come_as_base64_or_as_lists_whatever_the_server_does(server, mode):
    server.base64 = mode
    embedder = remote(server)
    texts = [f"def f{i}(): return {i}" for i in range(5)]
    expected = HashingEmbedder(DIM).embed(texts)
    for _ in range(2):
        np.testing.assert_allclose(embedder.embed(texts), expected, atol=1e-6)
    asked = [r["encoding_format"] for r in server.requests]
    if mode == "refuse":  # refused once, asked again without it, and never again
        assert asked == ["base64", None, None]
        assert embedder.take_counts().get("failures", 0) == 0
    else:
        assert asked == ["base64", "base64"]


def test_a_refused_chunk_is_not_taken_for_a_refused_parameter(server):
    embedder = remote(server)
    with pytest.raises(EmbeddingError, match="HTTP 400"):
        embedder.embed(["POISON here"])
    assert [r["encoding_format"] for r in server.requests] == ["base64", None]
    embedder.embed(["fine"])
    assert server.requests[-1]["encoding_format"] == "base64"  # base64 is still asked for


def test_the_dimension_is_learned_from_one_probe_then_from_the_live_snapshot(tmp_path, server):
    small_tree(tmp_path / "src", n=3)

    def run():
        settings = IndexSettings.create(
            "openai", chunk_size=300, batch_size=8,
            embedder_options={"base_url": server.url, "model": "fake-embed"})
        return run_index(tmp_path / "src", tmp_path / "out", settings)

    first = run()
    assert first.committed and Index.open(tmp_path / "out").dim == DIM
    assert len(server.requests[0]["inputs"]) == 1  # the probe, before the pipeline
    (tmp_path / "src" / "m0.py").write_text(code_file("changed", 4))
    before = len(server.requests)
    second = run()  # dim from the snapshot; one probe still answers before any embedding
    assert second.committed and second.rebuild_reason is None and second.files_changed == 1
    assert len(server.requests[before]["inputs"]) == 1
    before = len(server.requests)
    assert run().up_to_date and len(server.requests) == before  # nothing to do: no request


def _cli(tmp_path, server, *flags):
    small_tree(tmp_path / "src", n=3)
    return run_cli("index", tmp_path / "src", "--output", tmp_path / "out", "-q", "--embedder",
                   "openai", "--embedding-url", server.url, "--embedding-model", "fake-embed",
                   *flags, timeout=60)


@pytest.mark.parametrize("fault, says", [
    ({"status_always": 401}, "401 Unauthorized from http"),
    ({"status_always": 403}, "403 Forbidden from http"),
    ({"status_always": 404}, "404 Not Found from http.*unknown model 'fake-embed'"),
    ({"not_embeddings": True}, "does not answer embeddings"),
])
def test_a_configuration_error_stops_the_run_at_its_first_answer(tmp_path, server, fault, says):
    for name, value in fault.items():
        setattr(server, name, value)
    done = _cli(tmp_path, server)
    assert done.returncode == 1
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and re.search(says, lines[0]), done.stderr
    assert len(server.requests) == 1 and not (tmp_path / "out" / "CURRENT").exists()


def test_a_wrong_dimension_is_named_in_one_line_after_one_request(tmp_path, server):
    done = _cli(tmp_path, server, "--embedding-dim", "1536")
    assert done.returncode == 1 and len(server.requests) == 1
    assert done.stderr.strip().splitlines() == [
        "Full build, no previous snapshot: 3 files to index",  # the plan, then the probe
        (f"beam-index: error: {server.url} answers vectors of {DIM} dimensions for model "
         f"'fake-embed', but the index has 1536: give --embedding-dim {DIM}, or leave it out "
         "to learn it")]


@pytest.mark.parametrize("mode", [[], ["--direct_running_mode=multi_processing"]])
def test_a_key_revoked_midway_stops_the_run_without_splitting(tmp_path, server, mode):
    small_tree(tmp_path / "src", n=10, lines=20)
    server.fail_after, server.fail_after_status = 3, 401
    with pytest.raises(ConfigurationError, match="^401 Unauthorized") as err:
        run_index(tmp_path / "src", tmp_path / "out",
                  IndexSettings.create(remote(server), chunk_size=300, batch_size=4),
                  pipeline_options=mode)
    assert "\n" not in str(err.value)
    assert len(server.requests) == 4  # three answered, then one 401: no batch was split
    assert not (tmp_path / "out" / "CURRENT").exists()


def test_a_tampered_manifest_cannot_send_the_query_or_a_secret_anywhere(tmp_path, server,
                                                                          monkeypatch):
    """Finding 1 of issue 37: an index's manifest named a listener as the endpoint and
    AWS_SECRET_ACCESS_KEY as the key variable, and `search` sent the secret and the query
    there. Now the endpoint, model and key variable come from the searcher alone."""
    small_tree(tmp_path / "src", n=2)
    out = tmp_path / "out"
    assert index(tmp_path, remote(server)).committed
    manifest_path = Path(Index.open(out).directory) / "manifest.json"
    manifest = json.loads(manifest_path.read_text())
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "aws-secret-never-sent")
    monkeypatch.setenv("OPENAI_API_KEY", "the-searchers-own-key")
    with FakeEmbeddingServer(DIM) as listener:
        manifest["embedder_config"].update(base_url=listener.url,
                                           api_key_env="AWS_SECRET_ACCESS_KEY")
        manifest_path.write_text(json.dumps(manifest))
        for given in ([], ["--embedding-url", server.url]):
            proc = run_cli("search", out, "where is the secret", "--embedding-model",
                           "fake-embed", *given)
            assert proc.returncode == 1 and f"base_url {listener.url!r}" in proc.stderr
            assert "aws-secret-never-sent" not in proc.stderr + proc.stdout
        assert listener.requests == []  # not one request, so neither the key nor the query
        # The searcher who names the listener as the endpoint gets it, with their own key.
        asked = len(server.requests)
        hits = Index.open(out, embedder_options={"base_url": listener.url,
                                                 "model": "fake-embed"}).search("m0", k=1)
        assert hits and len(server.requests) == asked
        assert [r["auth"] for r in listener.requests] == ["Bearer the-searchers-own-key"]
    # A key the index names that the searcher did not give is never read: verify is unmoved.
    assert verify_index(out) == []
