"""Embedders behind one interface, selected by name (`--embedder NAME`)."""

from __future__ import annotations

import importlib

from ..errors import UsageError
from .base import ConfigurationError, Embedder, EmbeddingError

# The embedder of a run that names none: built in, no torch, no download, and chosen by
# the quality benchmark (README: Searching and checking an index, Quality): static beat
# hashing in hybrid search at the same indexing speed.
DEFAULT_EMBEDDER = "static"

# Imported on first use: a helper process that embeds with `static` (embedding/calls.py) must not
# pay for torch's and Beam's imports, nor the CLI for providers it does not use.
_CLASSES = {
    "HashingEmbedder": ".hashing",
    "MiniLMEmbedder": ".minilm",
    "StaticEmbedder": ".static",
    "OpenAIEmbedder": ".remote",
    "VoyageEmbedder": ".remote",
}
_REGISTRY = {
    "hashing": "HashingEmbedder",
    "minilm": "MiniLMEmbedder",
    "openai": "OpenAIEmbedder",
    "static": "StaticEmbedder",
    "voyage": "VoyageEmbedder",
}


def __getattr__(name: str):
    if name in _CLASSES:
        return getattr(importlib.import_module(_CLASSES[name], __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def embedder_class(name: str) -> type[Embedder]:
    """The class registered as `name`, e.g. `embedder_class("static")`."""
    try:
        return __getattr__(_REGISTRY[name])
    except KeyError:
        known = ", ".join(sorted(_REGISTRY))
        raise UsageError(f"unknown embedder {name!r}; known: {known}") from None


def get_embedder(name: str, **params) -> Embedder:
    """An embedder by name, e.g. `get_embedder("hashing", dim=384)`; None params are dropped."""
    factory = embedder_class(name)
    try:
        return factory(**{k: v for k, v in params.items() if v is not None})
    except TypeError as exc:
        raise UsageError(f"embedder {name!r}: {exc}") from None


__all__ = ["DEFAULT_EMBEDDER", "ConfigurationError", "Embedder", "EmbeddingError",
           "HashingEmbedder", "MiniLMEmbedder", "OpenAIEmbedder", "StaticEmbedder",
           "VoyageEmbedder", "embedder_class", "get_embedder"]
