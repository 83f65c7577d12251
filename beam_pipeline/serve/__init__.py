"""Serving a built index to other programs: `beam-index serve` (HTTP JSON).

`params.py` turns a request's query string into a `SearchRequest` (pure: every refusal is a
one-line reason), `live.py` is `LiveIndex` (the snapshot CURRENT names, loaded and warm,
replaced when a commit moves CURRENT), `bind.py` decides where the server may listen and
`app.py` is the Starlette application and the server that runs it on uvicorn (imported only
when used: the CLI's other commands do not pay for Starlette). Nothing here imports Apache
Beam.

Example::

    from beam_pipeline.serve import serve
    serve("index", port=8765)         # GET /search?q=…, GET /health; until Ctrl-C
"""

from .bind import DEFAULT_HOST, DEFAULT_PORT, check_bind, is_loopback
from .live import LiveIndex, NoIndex
from .params import MAX_K, MAX_QUERY_BYTES, BadRequest, search_request

_FROM_APP = ("create_app", "serve")


def __getattr__(name: str):
    if name in _FROM_APP:
        from . import app

        return getattr(app, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["DEFAULT_HOST", "DEFAULT_PORT", "MAX_K", "MAX_QUERY_BYTES", "BadRequest",
           "LiveIndex", "NoIndex", "check_bind", "create_app", "is_loopback", "search_request", "serve"]
