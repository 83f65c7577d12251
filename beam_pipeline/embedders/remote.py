"""Remote embedders: any OpenAI-compatible `/v1/embeddings` endpoint.

Covers OpenAI, Ollama, vLLM, text-embeddings-inference and LM Studio. One `requests.Session`
(one connection pool) per worker, sized for the embed concurrency; requests are cut to the
provider's limits (texts and estimated tokens per request, with a margin); transient failures
(429, 5xx, timeouts, dropped connections) are retried with exponential backoff and jitter,
honouring `Retry-After`; other 4xx fail at once, 401 with a message about the key. A batch that
still fails raises, and EmbedBatch bisects it so only the bad chunk's file fails.

Vectors are asked for as base64 (`encoding_format`, which OpenAI and Voyage take): the raw
float32 bytes, decoded by numpy, instead of JSON floats parsed one by one under the GIL (a
1024-d batch of 64 is ~1.3 MB of JSON floats, 350 KB of base64). A server that answers with
lists anyway is read as lists; one that refuses the parameter (400 or 422) is asked again
without it, and then never again.

Example::

    embedder = OpenAIEmbedder(base_url="http://127.0.0.1:11434", model="nomic-embed-text",
                              dim=768)
    embedder.load()
    vectors = embedder.embed(["def f(): pass"])
"""

from __future__ import annotations

import base64
import os
import random
import threading
import time
from collections import Counter

import numpy as np
import requests
from requests.adapters import HTTPAdapter

from .base import ConfigurationError, Embedder, EmbeddingError

_RETRY_STATUS = {429, 500, 502, 503, 504}
_CHARS_PER_TOKEN = 3  # a cautious estimate for code, so requests stay under token limits


class OpenAIEmbedder(Embedder):
    """`dim` None: learned from the live snapshot (same endpoint and model) or from a probe."""

    name = "openai"
    parallel_calls = True
    probe_first = True
    user_config = ("base_url", "model", "api_key_env")
    # Which variable holds the key is the searcher's business: it does not change the vectors.
    checked_config = ("base_url", "model")

    def __init__(self, dim: int | None = None, *, model: str = "text-embedding-3-small",
                 base_url: str = "https://api.openai.com", api_key_env: str = "OPENAI_API_KEY",
                 max_texts: int = 256, max_tokens: int = 250_000, timeout: float = 60.0,
                 max_retries: int = 6, backoff: float = 0.5, max_backoff: float = 30.0,
                 pool_size: int = 32):
        self.dim = None if dim is None else int(dim)
        self.model = model
        self.base_url = base_url.rstrip("/")
        self.api_key_env = api_key_env
        self.max_texts = max_texts
        self.max_tokens = max_tokens
        self.timeout = timeout
        self.max_retries = max_retries
        self.backoff = backoff
        self.max_backoff = max_backoff
        self.pool_size = pool_size
        self._session: requests.Session | None = None
        self._lock = threading.Lock()
        self.counts: Counter = Counter()  # calls, texts, retries, failures; read by EmbedBatch
        self._base64 = True  # until the server refuses encoding_format

    def __getstate__(self) -> dict:
        # Never the session, and never a key: workers read the key from their environment.
        return {k: v for k, v in self.__dict__.items()
                if k not in ("_session", "_lock", "counts")}

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self._session = None
        self._lock = threading.Lock()
        self.counts = Counter()
        self.__dict__.setdefault("_base64", True)

    def config(self) -> dict:
        return {"model": self.model, "base_url": self.base_url, "api_key_env": self.api_key_env}

    @property
    def url(self) -> str:
        base = self.base_url
        return base + ("/embeddings" if base.endswith("/v1") else "/v1/embeddings")

    def load(self) -> None:
        session = requests.Session()
        adapter = HTTPAdapter(pool_connections=1, pool_maxsize=self.pool_size)
        session.mount("http://", adapter)
        session.mount("https://", adapter)
        key = os.environ.get(self.api_key_env)
        if key:
            session.headers["Authorization"] = f"Bearer {key}"
        self._session = session

    def embed(self, texts: list[str]) -> np.ndarray:
        if self._session is None:
            self.load()
        parts = [self._request(group) for group in self._groups(texts)]
        return np.concatenate(parts) if parts else np.zeros((0, self.dim), np.float32)

    def _groups(self, texts: list[str]):
        """Consecutive groups within the texts-per-request and tokens-per-request limits."""
        budget = int(self.max_tokens * 0.8)  # margin: the estimate is not the provider's count
        group: list[str] = []
        tokens = 0
        for text in texts:
            cost = len(text) // _CHARS_PER_TOKEN + 1
            if group and (len(group) >= self.max_texts or tokens + cost > budget):
                yield group
                group, tokens = [], 0
            group.append(text)
            tokens += cost
        if group:
            yield group

    def take_counts(self) -> dict[str, int]:
        with self._lock:
            counts, self.counts = dict(self.counts), Counter()
        return counts

    def _count(self, **increments: int) -> None:
        with self._lock:
            self.counts.update(increments)

    def _payload(self, texts: list[str]) -> dict:
        return {"model": self.model, "input": texts}

    def _request(self, texts: list[str]) -> np.ndarray:
        if not self._base64:
            return self._post(self._payload(texts), len(texts))
        try:
            return self._post({**self._payload(texts), "encoding_format": "base64"}, len(texts))
        except _Refused:
            vectors = self._post(self._payload(texts), len(texts))
            self._base64 = False  # the same texts pass without it: the parameter was refused
            return vectors

    def _post(self, payload: dict, expected: int) -> np.ndarray:
        texts = payload["input"]
        for attempt in range(self.max_retries + 1):
            self._count(calls=1, texts=len(texts))
            try:
                response = self._session.post(self.url, json=payload, timeout=self.timeout)
            except (requests.Timeout, requests.ConnectionError) as exc:
                reason, wait = f"{type(exc).__name__}", None
            else:
                if response.status_code == 200:
                    return self._parse(response, expected)
                if response.status_code in (401, 403):
                    self._count(failures=1)
                    what = "Unauthorized" if response.status_code == 401 else "Forbidden"
                    raise ConfigurationError(
                        f"{response.status_code} {what} from {self.base_url}: set a valid API "
                        f"key (with access to model {self.model!r}) in ${self.api_key_env}")
                if response.status_code == 404:
                    self._count(failures=1)
                    raise ConfigurationError(
                        f"404 Not Found from {self.url}: unknown model {self.model!r}, or no "
                        "embeddings endpoint at that URL")
                if response.status_code not in _RETRY_STATUS:
                    reason = f"HTTP {response.status_code} from {self.base_url}: "
                    if "encoding_format" in payload and response.status_code in (400, 422):
                        raise _Refused(reason + response.text[:200])
                    self._count(failures=1)
                    raise EmbeddingError(reason + response.text[:200])
                reason, wait = f"HTTP {response.status_code}", _retry_after(response)
            if attempt == self.max_retries:
                break
            self._count(retries=1)
            delay = min(self.max_backoff, self.backoff * 2 ** attempt)
            time.sleep(max(wait or 0.0, delay * random.uniform(0.5, 1.0)))
        self._count(failures=1)
        raise EmbeddingError(f"{reason} from {self.base_url} after {self.max_retries} retries")

    def _parse(self, response: requests.Response, expected: int) -> np.ndarray:
        try:
            data = sorted(response.json()["data"], key=lambda item: item["index"])
            vectors = np.asarray([_vector(item["embedding"]) for item in data],
                                 dtype=np.float32)
        except (ValueError, KeyError, TypeError) as exc:
            raise ConfigurationError(f"{self.url} does not answer embeddings (a response "
                                     f"without vectors: {type(exc).__name__}: {exc})") from None
        if vectors.ndim != 2 or not vectors.shape[1]:
            raise ConfigurationError(f"{self.url} does not answer embeddings (no vectors)")
        if self.dim is None:
            self.dim = int(vectors.shape[1])  # learned: the first answer sets it
        if vectors.shape[1] != self.dim:
            raise ConfigurationError(
                f"{self.base_url} answers vectors of {vectors.shape[1]} dimensions for model "
                f"{self.model!r}, but the index has {self.dim}: give --embedding-dim "
                f"{vectors.shape[1]}, or leave it out to learn it")
        if vectors.shape[0] != expected:  # a fault of this batch: it is split
            raise EmbeddingError(f"{self.base_url} returned {vectors.shape[0]} vectors for "
                                 f"{expected} texts")
        norms = np.linalg.norm(vectors, axis=1, keepdims=True)
        return vectors / np.where(norms > 0, norms, 1)


class VoyageEmbedder(OpenAIEmbedder):
    """VoyageAI's embeddings API (same request and response shape, plus `input_type`)."""

    name = "voyage"

    def __init__(self, dim: int = 1024, *, model: str = "voyage-code-3",
                 base_url: str = "https://api.voyageai.com",
                 api_key_env: str = "VOYAGE_API_KEY", max_texts: int = 128,
                 max_tokens: int = 120_000, **options):
        super().__init__(dim, model=model, base_url=base_url, api_key_env=api_key_env,
                         max_texts=max_texts, max_tokens=max_tokens, **options)

    @property
    def default_chunk_size(self) -> int | None:
        return 4096 if self.model.startswith("voyage-code") else None

    def _payload(self, texts: list[str]) -> dict:
        return {"model": self.model, "input": texts, "input_type": "document"}


class _Refused(EmbeddingError):
    """A 400/422 to a request that asked for base64: maybe only the parameter was refused."""


def _vector(embedding) -> np.ndarray | list:
    """One answer's vector: base64 of little-endian float32, or a list of floats."""
    if isinstance(embedding, str):
        return np.frombuffer(base64.b64decode(embedding, validate=True), dtype="<f4")
    return embedding


def _retry_after(response: requests.Response) -> float | None:
    value = response.headers.get("Retry-After")
    try:
        return min(float(value), 300.0) if value is not None else None
    except ValueError:
        return None
