"""StaticEmbedder: token vectors distilled from a sentence model, pooled with numpy.

No neural network runs at index or query time: a chunk's vector is the normalised sum of the
vectors of its words' tokens, looked up in a table distilled offline from a sentence model
(Model2Vec; `python -m benchmarks.distill` makes it, `beam_pipeline/data/static/` ships it).
Code is split before lookup: `readConfigFile`, `read_config_file` and `READ_CONFIG_FILE` all
become the words read, config, file, which the teacher's vocabulary knows, where the whole
identifier would be cut into meaningless pieces (`##gf`, `##ile`). Punctuation and single
letters carry nothing and are dropped.

Example::

    embedder = StaticEmbedder()
    embedder.load()
    vectors = embedder.embed(["def read_config(path):", "where do we parse settings?"])
    vectors.shape  # (2, 256), float32, rows of norm 1
"""

from __future__ import annotations

import hashlib
import io
import json
import re
import threading
from importlib import resources
from pathlib import Path

import numpy as np

from ..errors import UsageError
from .base import Embedder, EmbeddingError, Memo

DEFAULT_MODEL = "potion-base-8m"
_MODELS_DIR = ("data", "static")
# Sub-words of identifiers and words of prose: an upper-case run not followed by lower case
# (HTTP in HTTPServer), a capitalised or lower-case run, a run of digits, a run of other
# letters. Underscores and punctuation separate them.
_WORD = re.compile(r"[A-Z]{2,}(?![a-z])|[A-Z]?[a-z]{2,}|[0-9]{2,}|[^\W\d_A-Za-z]{2,}")
# Without splitting (split=False, kept to measure what splitting is worth): whole
# whitespace-separated words, left to the tokenizer's own pre-tokenisation.
_WHOLE = re.compile(r"\S+")
# Bumped whenever the way text becomes tokens changes: they are part of the fingerprint.
_RECIPES = {True: "split-v1", False: "words-v1"}
_CACHE_LIMIT = 500_000  # distinct words remembered per worker: a few MB of token ids
_WIDEN_AT = 4_096  # tokens in one call: a batch of chunks, not a query (see _table)


def models_dir() -> Path:
    return Path(str(resources.files("beam_pipeline").joinpath(*_MODELS_DIR)))


def model_names() -> list[str]:
    return sorted(p.name for p in models_dir().iterdir() if (p / "model.json").is_file())


class StaticEmbedder(Embedder):
    name = "static"
    # Python's regex and dict lookups hold the GIL for most of a call: helper processes
    # embed beside the pipeline, as for hashing.
    gil_bound = True
    journal_pays = False  # cheaper to compute again than to journal
    # A table shipped in this package, by a checked name, and how text is cut: nothing that
    # reaches the network or the environment, so an index may choose them.
    index_config = ("model", "split")

    def __init__(self, dim: int | None = None, model: str = DEFAULT_MODEL, split: bool = True):
        if not re.fullmatch(r"[A-Za-z0-9._-]+", model or ""):
            raise UsageError(f"invalid static model name {model!r}")
        self.model_name = model
        self._meta = _read_meta(model)
        self.dim = int(self._meta["dim"])
        if dim is not None and int(dim) != self.dim:
            raise UsageError(f"static model {model} has {self.dim} dimensions, not {dim}")
        self.split = bool(split)
        self._word = _WORD if self.split else _WHOLE
        self.model = f"{model}+{_RECIPES[self.split]}@{self._meta['sha256'][:12]}"
        self._lock = threading.Lock()
        self._tokenizer = None
        self._vectors: np.ndarray | None = None

    def __getstate__(self) -> dict:
        return self.config()

    def __setstate__(self, state: dict) -> None:
        StaticEmbedder.__init__(self, **state)

    def config(self) -> dict:
        return {"model": self.model_name, "split": self.split}

    def load(self) -> None:
        if self._vectors is not None:
            return
        from tokenizers import Tokenizer

        folder = models_dir() / self.model_name
        tokenizer = Tokenizer.from_str(_checked(folder, "tokenizer.json",
                                                self._meta.get("tokenizer_sha256")).decode())
        tokenizer.no_padding()
        tokenizer.no_truncation()
        self._tokenizer = tokenizer
        self._unknown = tokenizer.token_to_id(self._meta.get("unk_token", "[UNK]"))
        self._vectors = _load_vectors(folder, self._meta)
        self._widened: np.ndarray | None = None
        self._reset_cache()

    def _table(self, tokens: int) -> np.ndarray:
        """The token table to gather `tokens` rows from. A query sums its few rows as shipped
        (float16): converting the whole table would add 16 ms to every search process. Batches
        sum 1.5x faster from float32 rows, converted once. The sums are the same either way:
        each float16 becomes a float32 exactly, and both add in float32, in the same order."""
        if self._vectors.dtype == np.float32 or tokens < _WIDEN_AT:
            return self._vectors
        if self._widened is None:
            self._widened = self._vectors.astype(np.float32)
        return self._widened

    def _reset_cache(self) -> None:
        # word → its token ids, as a slice of _token_ids (CSR): a batch is gathered with numpy.
        self._words = Memo(self._add_word)
        self._indptr = np.zeros(1024, dtype=np.int64)
        self._token_ids = np.zeros(4096, dtype=np.int64)

    def _add_word(self, word: str) -> int:
        wid = len(self._words)
        ids = [i for i in self._tokenizer.encode(word, add_special_tokens=False).ids
               if i != self._unknown]
        start = self._indptr[wid]
        end = start + len(ids)
        if wid + 2 > len(self._indptr):
            self._indptr = np.resize(self._indptr, 2 * len(self._indptr))
        if end > len(self._token_ids):
            self._token_ids = np.resize(self._token_ids, 2 * end)
        self._token_ids[start:end] = ids
        self._indptr[wid + 1] = end
        return wid

    def embed(self, texts: list[str]) -> np.ndarray:
        if self._vectors is None:
            self.load()
        with self._lock:
            return self._embed(texts)

    def _embed(self, texts: list[str]) -> np.ndarray:
        if len(self._words) > _CACHE_LIMIT:  # only between batches: ids must stay valid
            self._reset_cache()
        lookup = self._words.__getitem__
        word_ids: list[int] = []
        words_per_text = []
        for text in texts:
            words = self._word.findall(text)  # the tokenizer lower-cases them
            words_per_text.append(len(words))
            word_ids.extend(map(lookup, words))
        ids = np.asarray(word_ids, dtype=np.int64)
        starts = self._indptr[ids]
        lengths = self._indptr[ids + 1] - starts
        offsets = np.repeat(starts - (np.cumsum(lengths) - lengths), lengths)
        tokens = self._token_ids[offsets + np.arange(offsets.size)]
        per_text = np.bincount(np.repeat(np.arange(len(texts)), words_per_text),
                               weights=lengths, minlength=len(texts)).astype(np.int64)
        matrix = np.zeros((len(texts), self.dim), dtype=np.float32)
        table = self._table(len(tokens))
        end = 0
        # One gather and sum per text: 5x faster than np.add.reduceat along rows here.
        for row, count in enumerate(per_text.tolist()):
            if count:
                matrix[row] = table[tokens[end:end + count]].sum(axis=0, dtype=np.float32)
                end += count
        norms = np.linalg.norm(matrix, axis=1, keepdims=True)
        np.divide(matrix, norms, out=matrix, where=norms > 0)
        return matrix


def _read_meta(model: str) -> dict:
    path = models_dir() / model / "model.json"
    try:
        meta = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        known = ", ".join(model_names()) or "none"
        raise UsageError(f"no static model {model!r} in this installation (known: {known})"
                         ) from None
    except (OSError, ValueError) as exc:
        raise EmbeddingError(f"static model {model}: unreadable model.json ({exc})") from None
    if not isinstance(meta, dict) or not isinstance(meta.get("dim"), int) \
            or not isinstance(meta.get("sha256"), str):
        raise EmbeddingError(f"static model {model}: model.json lacks dim or sha256")
    return meta


def _checked(folder: Path, name: str, digest: str | None) -> bytes:
    """The bytes of a model file, refused when they are not those model.json names."""
    raw = (folder / name).read_bytes()
    if digest is not None and hashlib.sha256(raw).hexdigest() != digest:
        raise EmbeddingError(f"static model {folder.name}: {name} does not match the sha256 "
                             "in model.json (a corrupt or altered installation?)")
    return raw


def _load_vectors(folder: Path, meta: dict) -> np.ndarray:
    """The token table as stored (float16 or float32; int8 is widened with its scales),
    checked against the hash model.json records (a corrupt or swapped file would silently
    change every vector)."""
    raw = _checked(folder, "vectors.npy", meta["sha256"])
    stored = np.load(io.BytesIO(raw), allow_pickle=False)
    if stored.ndim != 2 or stored.shape[1] != meta["dim"]:
        raise EmbeddingError(f"static model {folder.name}: vectors of shape {stored.shape}")
    if stored.dtype == np.int8:  # per-row scales, so each row keeps its own precision
        scales = np.load(folder / "scales.npy", allow_pickle=False).astype(np.float32)
        return stored.astype(np.float32) * scales[:, None]
    if stored.dtype not in (np.float16, np.float32):
        raise EmbeddingError(f"static model {folder.name}: vectors of type {stored.dtype}")
    return stored
