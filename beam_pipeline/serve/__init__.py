"""Serving a built index to other programs: `beam-index serve` (HTTP JSON) and `beam-index mcp`
(tools for coding agents over MCP's stdio transport).

`params.py` turns a request's query string into a `SearchRequest` (pure: every refusal is a
one-line reason), `live.py` is `LiveIndex` (the snapshot CURRENT names, loaded and warm,
replaced when a commit moves CURRENT), `bind.py` decides where the server may listen,
`app.py` is the Starlette application and the server that runs it on uvicorn, `agents.py`
the MCP server, `discovery.py` how a search finds a running server of the same OUT and
`client.py` how it asks it. Each is imported when first used: a search that a server answers
loads neither the search stage nor Starlette. Nothing here imports Apache Beam.

Example::

    from beam_pipeline.serve import serve
    serve("index", port=8765)         # GET /search?q=…, GET /health; until Ctrl-C
"""

import importlib

_WHERE = {
    "DEFAULT_HOST": "bind", "DEFAULT_PORT": "bind", "check_bind": "bind",
    "is_loopback": "bind", "LiveIndex": "live", "NoIndex": "live", "MAX_K": "params",
    "MAX_QUERY_BYTES": "params", "BadRequest": "params", "search_request": "params",
    "create_app": "app", "serve": "app", "create_mcp": "agents", "run_mcp": "agents",
    "find_server": "discovery", "ask_server": "client",
}


def __getattr__(name: str):
    if name in _WHERE:
        return getattr(importlib.import_module(f".{_WHERE[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["DEFAULT_HOST", "DEFAULT_PORT", "MAX_K", "MAX_QUERY_BYTES", "BadRequest", "LiveIndex",
           "NoIndex", "ask_server", "check_bind", "create_app", "create_mcp", "find_server",
           "is_loopback", "run_mcp", "search_request", "serve"]
