"""HashingEmbedder: the built-in default, no model download and no key.

A deterministic feature-hashing embedder over code tokens: each identifier contributes itself,
its camelCase/snake_case sub-words and the character trigrams of those sub-words, hashed (with a
stable hash, never Python's salted `hash()`) into `dim` signed buckets. Term counts are dampened
with a square root and rows are L2-normalised, so cosine similarity behaves like a lexical match
that also tolerates naming-style differences (`readConfigFile` ≈ `read_config_file`).

Example::

    embedder = HashingEmbedder(dim=384)
    vectors = embedder.embed(["def read_config(path):", "class HttpServer:"])
    vectors.shape  # (2, 384), float32, rows of norm 1
"""

from __future__ import annotations

import re
import threading
from hashlib import blake2b as _blake2b

import numpy as np

from ..errors import UsageError
from .base import Embedder, Memo

# Identifiers of two or more characters; single letters carry no meaning for search.
_IDENTIFIER = re.compile(r"[^\W\d]\w+")
# Boundaries inside identifiers: snake_case underscores, lower→Upper, ACRONYMWord, letter→digit.
_SUBWORD = re.compile(r"[A-Z]+(?![a-z])|[A-Z]?[a-z]+|[0-9]+|[^\W\d_A-Za-z]+")
_TRIGRAM_WEIGHT = 0.25
_SUBWORD_WEIGHT = 0.75
_VOCAB_LIMIT = 200_000  # ~15 features a token: tens of MB at most


def _stable_hash(feature: str) -> int:
    # Never the salted built-in hash(): vectors must match across processes and machines.
    digest = _blake2b(feature.encode("utf-8", "surrogatepass"), digest_size=8).digest()
    return int.from_bytes(digest, "little")


class HashingEmbedder(Embedder):
    name = "hashing"
    model = "code-tokens-v1"  # bump when the feature recipe changes: it is in the fingerprint
    # Thread-safe (a lock guards the shared token cache), but pure Python under the GIL:
    # calls at once on threads would only contend; helper processes do run at once.
    gil_bound = True
    # Cheap to compute again: a journal would cost every run to save little on a crash.
    journal_pays = False

    def __init__(self, dim: int = 384):
        if dim < 8:
            raise UsageError(f"dimension must be at least 8, got {dim}")
        self.dim = int(dim)
        self._vocab: dict[str, int] | None = None  # token cache, built per worker
        self._lock = threading.Lock()

    def __getstate__(self) -> dict:
        return {"dim": self.dim}  # the cache is rebuilt cheaply; shipping it would bloat pickles

    def __setstate__(self, state: dict) -> None:
        HashingEmbedder.__init__(self, state["dim"])

    def load(self) -> None:
        self._reset_vocabulary()

    def _reset_vocabulary(self) -> None:
        # Each token's hashed features are computed once per worker and kept in CSR form
        # (token id → slice of _buckets/_weights), so a batch is gathered with numpy alone.
        self._vocab = Memo(self._add_token)
        self._hashes = Memo(_stable_hash)  # sub-words and trigrams recur across many tokens
        self._indptr = np.zeros(1024, dtype=np.int64)
        self._buckets = np.zeros(8192, dtype=np.int64)
        self._weights = np.zeros(8192, dtype=np.float64)

    def _features(self, token: str) -> dict[str, float]:
        weighted = {token.lower(): 1.0}
        subwords = [w.lower() for w in _SUBWORD.findall(token)]
        for word in subwords:
            if len(subwords) > 1 and len(word) > 1:
                weighted[word] = weighted.get(word, 0.0) + _SUBWORD_WEIGHT
            padded = f"<{word}>"
            for i in range(len(padded) - 2):
                gram = "#" + padded[i:i + 3]
                weighted[gram] = weighted.get(gram, 0.0) + _TRIGRAM_WEIGHT
        return weighted

    def _add_token(self, token: str) -> int:
        tid = len(self._vocab)
        features = self._features(token)
        start = self._indptr[tid]
        end = start + len(features)
        if tid + 2 > len(self._indptr):
            self._indptr = np.resize(self._indptr, 2 * len(self._indptr))
        if end > len(self._buckets):
            self._buckets = np.resize(self._buckets, 2 * end)
            self._weights = np.resize(self._weights, 2 * end)
        # The hash's low part picks the bucket, its top bit the sign, so colliding features
        # cancel out on average instead of adding up.
        hashes = list(map(self._hashes.__getitem__, features))
        self._buckets[start:end] = [h % self.dim for h in hashes]
        self._weights[start:end] = [w if h >> 63 else -w for h, w in zip(hashes, features.values())]
        self._indptr[tid + 1] = end
        return tid  # Memo stores it under the token

    def embed(self, texts: list[str]) -> np.ndarray:
        with self._lock:
            return self._embed(texts)

    def _embed(self, texts: list[str]) -> np.ndarray:
        # Clear only between batches: ids already gathered for this batch must stay valid.
        if self._vocab is None or len(self._vocab) > _VOCAB_LIMIT:
            self._reset_vocabulary()
        lookup = self._vocab.__getitem__
        token_ids: list[int] = []
        tokens_per_text = []
        for text in texts:
            tokens = _IDENTIFIER.findall(text)
            tokens_per_text.append(len(tokens))
            token_ids.extend(map(lookup, tokens))  # no Python-level loop per token
        ids = np.asarray(token_ids, dtype=np.int64)
        starts = self._indptr[ids]
        lengths = self._indptr[ids + 1] - starts
        # Positions of every feature of every token: each token's slice, laid end to end.
        offsets = np.repeat(starts - (np.cumsum(lengths) - lengths), lengths)
        positions = offsets + np.arange(offsets.size)
        counts = np.asarray(tokens_per_text, dtype=np.int64)  # int even when empty
        rows = np.repeat(np.repeat(np.arange(len(texts)), counts), lengths)
        matrix = np.bincount(rows * self.dim + self._buckets[positions],
                             weights=self._weights[positions],
                             minlength=len(texts) * self.dim).reshape(len(texts), self.dim)
        # Square-root damping: a token repeated 100 times should not drown the rest.
        matrix = np.sign(matrix) * np.sqrt(np.abs(matrix))
        norms = np.linalg.norm(matrix, axis=1, keepdims=True)
        np.divide(matrix, norms, out=matrix, where=norms > 0)
        return matrix.astype(np.float32)
