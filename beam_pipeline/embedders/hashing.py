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

import hashlib
import re

import numpy as np

from .base import Embedder

_IDENTIFIER = re.compile(r"[^\W\d]\w*")
# Boundaries inside identifiers: snake_case underscores, lower→Upper, ACRONYMWord, letter→digit.
_SUBWORD = re.compile(r"[A-Z]+(?![a-z])|[A-Z]?[a-z]+|[0-9]+|[^\W\d_A-Za-z]+")
_TRIGRAM_WEIGHT = 0.25
_SUBWORD_WEIGHT = 0.75
_CACHE_LIMIT = 200_000


class HashingEmbedder(Embedder):
    name = "hashing"
    model = "code-tokens-v1"  # bump when the feature recipe changes: it is in the fingerprint

    def __init__(self, dim: int = 384):
        if dim < 8:
            raise ValueError(f"dimension must be at least 8, got {dim}")
        self.dim = int(dim)
        self._cache: dict[str, tuple[np.ndarray, np.ndarray]] = {}

    def __getstate__(self):
        return {"dim": self.dim}

    def __setstate__(self, state):
        self.dim = state["dim"]
        self._cache = {}

    def _bucket(self, feature: str) -> tuple[int, float]:
        digest = hashlib.blake2b(feature.encode("utf-8", "surrogatepass"), digest_size=8).digest()
        value = int.from_bytes(digest, "little")
        return value % self.dim, (1.0 if value >> 63 else -1.0)

    def _features(self, token: str) -> tuple[np.ndarray, np.ndarray]:
        """Bucket indices and signed weights of one token, computed once per worker."""
        cached = self._cache.get(token)
        if cached is not None:
            return cached
        lower = token.lower()
        weighted = {lower: 1.0}
        subwords = [w.lower() for w in _SUBWORD.findall(token)]
        for word in subwords:
            if len(subwords) > 1 and len(word) > 1:
                weighted[word] = weighted.get(word, 0.0) + _SUBWORD_WEIGHT
            padded = f"<{word}>"
            for i in range(len(padded) - 2):
                gram = "#" + padded[i:i + 3]
                weighted[gram] = weighted.get(gram, 0.0) + _TRIGRAM_WEIGHT
        buckets = np.empty(len(weighted), dtype=np.int64)
        weights = np.empty(len(weighted), dtype=np.float64)
        for i, (feature, weight) in enumerate(weighted.items()):
            bucket, sign = self._bucket(feature)
            buckets[i] = bucket
            weights[i] = sign * weight
        if len(self._cache) >= _CACHE_LIMIT:
            self._cache.clear()
        self._cache[token] = (buckets, weights)
        return buckets, weights

    def embed(self, texts: list[str]) -> np.ndarray:
        rows, buckets, weights = [], [], []
        for row, text in enumerate(texts):
            for token in _IDENTIFIER.findall(text):
                if len(token) < 2:
                    continue
                b, w = self._features(token)
                rows.append(np.full(len(b), row, dtype=np.int64))
                buckets.append(b)
                weights.append(w)
        size = len(texts) * self.dim
        if buckets:
            flat = np.concatenate(rows) * self.dim + np.concatenate(buckets)
            matrix = np.bincount(flat, weights=np.concatenate(weights), minlength=size)
        else:
            matrix = np.zeros(size)
        matrix = matrix.reshape(len(texts), self.dim)
        # Square-root damping: a token repeated 100 times should not drown the rest.
        matrix = np.sign(matrix) * np.sqrt(np.abs(matrix))
        norms = np.linalg.norm(matrix, axis=1, keepdims=True)
        np.divide(matrix, norms, out=matrix, where=norms > 0)
        return matrix.astype(np.float32)
