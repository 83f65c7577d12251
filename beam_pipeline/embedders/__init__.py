"""Embedders behind one interface, selected by name (`--embedder NAME`)."""

from __future__ import annotations

from collections.abc import Callable

from .base import Embedder, EmbeddingError
from .hashing import HashingEmbedder

_REGISTRY: dict[str, Callable[..., Embedder]] = {
    "hashing": HashingEmbedder,
}


def get_embedder(name: str, **params) -> Embedder:
    """An embedder by name, e.g. `get_embedder("hashing", dim=384)`."""
    try:
        factory = _REGISTRY[name]
    except KeyError:
        raise ValueError(f"unknown embedder {name!r}; known: {', '.join(sorted(_REGISTRY))}") from None
    return factory(**params)


__all__ = ["Embedder", "EmbeddingError", "HashingEmbedder", "get_embedder"]
