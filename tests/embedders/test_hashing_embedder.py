"""HashingEmbedder: determinism, normalisation, lexical search quality, pickling."""

import pickle
import subprocess
import sys

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from beam_pipeline.embedders import HashingEmbedder, get_embedder, hashing

SNIPPETS = {
    "json_config": "def load_config(path):\n    with open(path) as fh:\n"
                   "        return json.load(fh)  # parse the JSON config file\n",
    "http_server": "class EchoServer(socketserver.TCPServer):\n"
                   "    def handle_request(self, sock):\n        data = sock.recv(4096)\n"
                   "        sock.sendall(data)\n",
    "matrix": "def matmul(a, b):\n    return [[sum(x * y for x, y in zip(row, col))"
              " for col in zip(*b)] for row in a]\n",
    "logging": "logger = logging.getLogger(__name__)\n"
               "logger.warning('disk almost full: %s', pct)\n",
    "sorting": "def quicksort(items):\n    pivot = items[0]\n"
               "    return quicksort([i for i in items if i < pivot]) + [pivot]\n",
}


def cos(a, b):
    return float(np.dot(a, b))


def test_shape_dtype_and_unit_norm():
    vectors = HashingEmbedder(128).embed(list(SNIPPETS.values()) + ["", "  + - ; 1 2 3"])
    assert vectors.shape == (7, 128) and vectors.dtype == np.float32
    assert vectors.flags["C_CONTIGUOUS"]
    norms = np.linalg.norm(vectors, axis=1)
    np.testing.assert_allclose(norms[:5], 1.0, rtol=1e-5)
    assert (norms[5:] == 0).all()  # no identifiers: a zero vector, never NaN
    assert HashingEmbedder(128).embed([]).shape == (0, 128)


def test_deterministic_across_instances_batches_and_processes():
    texts = list(SNIPPETS.values())
    a = HashingEmbedder().embed(texts)
    b = np.vstack([HashingEmbedder().embed([t]) for t in texts])
    np.testing.assert_array_equal(a, b)
    code = ("import sys, numpy as np; from beam_pipeline.embedders import HashingEmbedder;"
            "sys.stdout.buffer.write(HashingEmbedder().embed([sys.argv[1]]).tobytes())")
    out = subprocess.run([sys.executable, "-c", code, texts[0]], capture_output=True,
                         check=True).stdout
    np.testing.assert_array_equal(np.frombuffer(out, dtype=np.float32), a[0])


def test_similar_code_is_closer_than_unrelated_code():
    e = HashingEmbedder()
    variant = ("def read_json_config(config_path):\n    with open(config_path) as f:\n"
               "        return json.load(f)\n")
    v = e.embed([variant, SNIPPETS["json_config"], SNIPPETS["http_server"]])
    assert cos(v[0], v[1]) > cos(v[0], v[2]) + 0.2


def test_query_ranks_the_matching_snippet_first():
    e = HashingEmbedder()
    names = list(SNIPPETS)
    docs = e.embed([SNIPPETS[n] for n in names])
    for query, expected in [("parse json config", "json_config"),
                            ("tcp server socket recv", "http_server"),
                            ("sort items pivot", "sorting")]:
        scores = docs @ e.embed([query])[0]
        assert names[int(np.argmax(scores))] == expected, query


def test_naming_styles_of_one_identifier_are_close():
    v = HashingEmbedder().embed(["readConfigFile", "read_config_file", "ReadConfigFile",
                                 "socketTimeoutError"])
    assert cos(v[0], v[1]) > 0.7 and cos(v[0], v[2]) > 0.7
    assert cos(v[0], v[1]) > cos(v[0], v[3]) + 0.3


def test_pickles_without_its_cache_and_keeps_working():
    e = HashingEmbedder(64)
    before = e.embed(["cache warm up identifiers"])
    clone = pickle.loads(pickle.dumps(e))
    assert len(pickle.dumps(e)) < 200
    np.testing.assert_array_equal(clone.embed(["cache warm up identifiers"]), before)


def test_cache_limit_never_corrupts_a_batch(monkeypatch):
    texts = [" ".join(f"name{i}x{j}" for j in range(20)) for i in range(10)]
    expected = HashingEmbedder(64).embed(texts)
    monkeypatch.setattr(hashing, "_VOCAB_LIMIT", 50)  # one batch overflows it
    e = HashingEmbedder(64)
    e.load()
    np.testing.assert_array_equal(e.embed(texts), expected)
    np.testing.assert_array_equal(e.embed(texts[::-1]), expected[::-1])
    e.embed(["fresh tokens only"])
    assert len(e._vocab) == 3  # the full cache was cleared before this batch, not left to grow


def test_registry_and_fingerprint():
    e = get_embedder("hashing", dim=96)
    assert e.fingerprint() == {"name": "hashing", "model": "code-tokens-v1", "dim": 96}
    with pytest.raises(ValueError, match="known: hashing"):
        get_embedder("nope")
    with pytest.raises(ValueError):
        HashingEmbedder(4)


@settings(max_examples=150, deadline=None)
@given(st.lists(st.text(max_size=300), min_size=1, max_size=5))
def test_any_text_gives_finite_unit_or_zero_rows(texts):
    v = HashingEmbedder(32).embed(texts)
    assert np.isfinite(v).all()
    norms = np.linalg.norm(v, axis=1)
    assert np.all((np.abs(norms - 1) < 1e-4) | (norms == 0))
