"""StaticEmbedder: the shipped model, identifier splitting, its fingerprint, a damaged model
refused, no torch, and questions answered by meaning."""

import json
import pickle
import shutil
import subprocess
import sys

import numpy as np
import pytest

from beam_pipeline import IndexSettings, run_index
from beam_pipeline.embedders import EmbeddingError, StaticEmbedder, get_embedder, static
from beam_pipeline.search import Index


@pytest.fixture(scope="module")
def embedder():
    loaded = StaticEmbedder()
    loaded.load()
    return loaded


def test_the_shipped_model_records_its_teacher_and_fits_the_package():
    folder = static.models_dir() / static.DEFAULT_MODEL
    meta = json.loads((folder / "model.json").read_text())
    assert meta["teacher"]["licence"] == "MIT" and meta["teacher"]["revision"]
    assert (folder / "ATTRIBUTION.txt").is_file()
    size = sum(p.stat().st_size for p in folder.iterdir())
    assert size < 20e6, f"{size / 1e6:.1f} MB"
    assert static.DEFAULT_MODEL in static.model_names()


def test_vectors_are_unit_rows_deterministic_and_survive_pickling(embedder):
    texts = ["def read_config(path):\n    return json.load(open(path))",
             "where do we parse settings?", "", "+ - ; ( )"]
    vectors = embedder.embed(texts)
    assert vectors.shape == (4, 256) and vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vectors[:2], axis=1), 1.0, rtol=1e-5)
    assert not vectors[2:].any()  # no words: a zero vector, never NaN
    again = pickle.loads(pickle.dumps(StaticEmbedder())).embed(texts)
    np.testing.assert_array_equal(vectors, again)
    # Batches do not change a text's vector (a file's rows must not depend on its batch).
    np.testing.assert_array_equal(embedder.embed(texts[1:2])[0], vectors[1])


def test_a_query_gets_the_vector_its_text_gets_inside_a_large_batch():
    """A query sums float16 rows, a batch float32 rows widened once: the same numbers, so a
    question about a chunk's own text scores exactly 1 against it."""
    fresh = StaticEmbedder()
    texts = [f"def handler_{n}(request):\n    return retryUpload(request, attempts={n})\n" * 20
             for n in range(40)]
    batch = fresh.embed(texts)
    assert fresh._widened is not None  # the batch took the float32 table
    alone = StaticEmbedder()
    for text, row in zip(texts[::7], batch[::7]):
        np.testing.assert_array_equal(alone.embed([text])[0], row)
    assert alone._widened is None  # and each query the table as shipped


def test_identifiers_are_split_into_the_words_the_teacher_knows(embedder):
    forms = ["readConfigFile", "read_config_file", "READ_CONFIG_FILE", "ReadConfigFile",
             "read config file"]
    vectors = embedder.embed(forms)
    for vector in vectors[1:]:
        np.testing.assert_allclose(vector, vectors[0], atol=1e-6)
    whole = StaticEmbedder(split=False)
    apart = whole.embed(forms)
    # Without splitting, camelCase is one unknown word cut into pieces, not read+config+file.
    assert float(apart[0] @ apart[4]) < 0.9
    assert float(vectors[0] @ embedder.embed(["HTTPServer2"])[0]) < 0.5
    assert np.allclose(embedder.embed(["HTTPServer"])[0], embedder.embed(["http server"])[0],
                       atol=1e-6)


def test_a_question_finds_the_code_that_answers_it(embedder):
    code = {
        "retry": "def upload_with_retries(blob, attempts=3):\n    for attempt in range(attempts):"
                 "\n        try:\n            return client.put(blob)\n"
                 "        except TransientError:\n            time.sleep(2 ** attempt)\n",
        "parse": "def load_settings(path):\n    with open(path) as fh:\n"
                 "        return yaml.safe_load(fh)\n",
        "matrix": "def matmul(a, b):\n    return a @ b\n",
    }
    vectors = dict(zip(code, embedder.embed(list(code.values()))))
    for question, answer in (("where do we retry a failed upload?", "retry"),
                             ("how is the configuration file read?", "parse"),
                             ("multiply two matrices", "matrix")):
        query = embedder.embed([question])[0]
        best = max(vectors, key=lambda name: float(vectors[name] @ query))
        assert best == answer, question


def test_the_fingerprint_names_the_model_its_hash_and_the_tokenisation():
    default = StaticEmbedder()
    meta = json.loads((static.models_dir() / static.DEFAULT_MODEL / "model.json").read_text())
    assert default.fingerprint()["model"] == (f"{static.DEFAULT_MODEL}+split-v1@"
                                              f"{meta['sha256'][:12]}")
    assert StaticEmbedder(split=False).fingerprint() != default.fingerprint()
    assert get_embedder("static", dim=256).fingerprint() == default.fingerprint()
    with pytest.raises(ValueError, match="256 dimensions"):
        get_embedder("static", dim=384)
    with pytest.raises(ValueError, match="no static model 'nope'.*potion-base-8m"):
        StaticEmbedder(model="nope")
    with pytest.raises(ValueError, match="invalid static model name"):
        StaticEmbedder(model="../../etc")


@pytest.mark.parametrize("damaged", ["vectors.npy", "tokenizer.json"])
def test_a_damaged_model_is_refused_at_load(tmp_path, monkeypatch, damaged):
    shutil.copytree(static.models_dir() / static.DEFAULT_MODEL, tmp_path / "copy")
    target = tmp_path / "copy" / damaged
    data = bytearray(target.read_bytes())
    data[-10] ^= 0xFF
    target.write_bytes(bytes(data))
    monkeypatch.setattr(static, "models_dir", lambda: tmp_path)
    with pytest.raises(EmbeddingError, match=f"{damaged} does not match the sha256"):
        StaticEmbedder(model="copy").load()


def test_it_embeds_without_torch_or_the_network():
    script = ("import sys\nfrom beam_pipeline.embedders import get_embedder\n"
              "e = get_embedder('static')\nassert e.embed(['open a socket']).shape == (1, 256)\n"
              "assert 'torch' not in sys.modules and 'transformers' not in sys.modules\n")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          timeout=120, check=False)
    assert done.returncode == 0, done.stderr[-2000:]


def test_changing_the_tokenisation_re_embeds_every_file(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    for i in range(3):
        (src / f"m{i}.py").write_text(f"def fetchRemoteRecord{i}(url):\n    return get(url)\n")
    out = tmp_path / "out"
    run_index(src, out, IndexSettings.create("static"))
    first = Index.open(out)
    stats = run_index(src, out, IndexSettings.create(StaticEmbedder(split=False)))
    second = Index.open(out)
    assert second.fingerprint["embedder"] != first.fingerprint["embedder"]
    assert stats.files_processed == 3 and stats.chunks_created == 3
    assert not np.allclose(first._rows[0], second._rows[0])
    # The index's own embedder answers its queries: the unsplit one, rebuilt from the manifest.
    assert second.embedder.fingerprint() == StaticEmbedder(split=False).fingerprint()
    assert second.search("fetchRemoteRecord1", 1, mode="semantic")[0]["path"] == "m1.py"


@pytest.mark.parametrize("dtype", ["float16", "int8"])
def test_the_build_script_writes_a_model_the_embedder_loads(tmp_path, monkeypatch, dtype):
    """benchmarks.distill's last step, from a Model2Vec folder to our layout, on a small table:
    the embedder reads back the table (per-token weights folded in) within its dtype's
    precision, and model.json records the hashes the load checks."""
    from safetensors.numpy import save_file

    from benchmarks import distill

    shipped = static.models_dir() / static.DEFAULT_MODEL
    vocabulary = json.loads((shipped / "model.json").read_text())["vocabulary"]
    rng = np.random.default_rng(7)
    table = rng.normal(size=(vocabulary, 8)).astype(np.float32)
    weights = rng.uniform(0.5, 2, size=vocabulary).astype(np.float32)
    source = tmp_path / "m2v"
    source.mkdir()
    save_file({"embeddings": table, "weights": weights}, str(source / "model.safetensors"))
    shutil.copy(shipped / "tokenizer.json", source / "tokenizer.json")
    (source / "LICENSE").write_text("MIT\n")

    model = distill.write_model(source, tmp_path / "models" / "tiny", dtype,
                                {"teacher": {"name": "test", "licence": "MIT"}})
    assert model["dim"] == 8 and model["dtype"] == dtype and model["teacher"]["name"] == "test"
    assert (tmp_path / "models" / "tiny" / "LICENSE").is_file()
    monkeypatch.setattr(static, "models_dir", lambda: tmp_path / "models")
    embedder = StaticEmbedder(model="tiny")
    embedder.load()
    np.testing.assert_allclose(embedder._vectors, table * weights[:, None],
                               rtol=0.02, atol=0.02 * np.abs(table * weights[:, None]).max())
    ids = embedder._tokenizer.encode("socket", add_special_tokens=False).ids
    expected = (table * weights[:, None])[ids].sum(axis=0)
    np.testing.assert_allclose(embedder.embed(["socket"])[0], expected / np.linalg.norm(expected),
                               atol=0.03)
