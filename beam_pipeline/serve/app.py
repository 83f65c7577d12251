"""The HTTP face of an index: a Starlette application on uvicorn.

- `GET /search?q=…&k=…` answers what `beam-index search --json` prints, in the same order
  (params.py lists the options); notes go in `X-Beam-Index-Note` headers.
- `GET /health`: the snapshot served, what `beam-index status --json` says about OUT (files,
  rows, when it last caught up, a run in progress) and why a newer snapshot is not served,
  if one could not be opened.

Refusals are JSON `{"error": "one-line reason"}`: 400 for a request that cannot be answered
as asked, 401 without the token, 503 before the first commit. Requests name no file: what
they can read is the served snapshot, nothing else of the disk.

With a token (bind.py: needed for any address beyond this machine), every request must send
it as `Authorization: Bearer TOKEN`, compared in constant time.

Example::

    serve("index", port=8765)       # until SIGINT or SIGTERM
"""

from __future__ import annotations

import contextlib
import hmac
import logging
import signal
import threading
from collections.abc import Callable

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from ..errors import SearchError
from ..run.terminal import json_text
from ..store.status import index_status
from .bind import DEFAULT_HOST, DEFAULT_PORT, bind, check_bind
from .client import NOTE_HEADER, SNAPSHOT_HEADER
from .discovery import advertise
from .live import LiveIndex, NoIndex
from .params import BadRequest, search_request

log = logging.getLogger(__name__)

def create_app(live: LiveIndex, token: str | None = None) -> Starlette:
    """The application answering from `live`; with `token`, only requests that send it."""

    def search(request: Request) -> Response:  # sync: Starlette runs it on its thread pool
        try:
            asked = search_request(request.query_params.multi_items())
        except BadRequest as exc:
            return _refuse(400, str(exc))
        try:
            hits, snapshot = live.answer(asked)
        except SearchError as exc:
            return _refuse(400, str(exc))
        except NoIndex as exc:
            return _refuse(503, str(exc))
        response = Response(json_text(hits) + "\n", media_type="application/json",  # as printed
                            headers={SNAPSHOT_HEADER: snapshot})
        for note in asked.notes:
            response.headers.append(NOTE_HEADER, note.encode("ascii", "replace").decode())
        return response

    def health(request: Request) -> Response:
        index = live.index
        status = index_status(live.out)
        status.update(serving=index.snapshot_id if index is not None else None,
                      serving_error=live.error)
        return Response(json_text(status) + "\n", media_type="application/json")

    middleware = [Middleware(_RequireToken, token=token)] if token else []
    return Starlette(routes=[Route("/search", search), Route("/health", health)],
                     middleware=middleware)


class _RequireToken:
    """Refuses (401) every request whose `Authorization: Bearer` is not the token."""

    def __init__(self, app: ASGIApp, token: str):
        self.app = app
        self.expected = f"Bearer {token}".encode()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            given = dict(scope["headers"]).get(b"authorization", b"")
            if not hmac.compare_digest(given, self.expected):
                await _refuse(401, "a valid token is required (Authorization: Bearer …)")(
                    scope, receive, send)
                return
        await self.app(scope, receive, send)


def _refuse(status: int, reason: str) -> Response:
    return JSONResponse({"error": reason}, status_code=status)


def serve(out: str, host: str = DEFAULT_HOST, port: int = DEFAULT_PORT, *,
          allow_remote: bool = False, token: str | None = None, token_env: str | None = None,
          embedder_options: dict | None = None, access_log: bool = False,
          say: Callable[[str], None] = print) -> None:
    """Serve `out` over HTTP until SIGINT or SIGTERM.

    Args:
      out: the index folder (or URL); it may have no index yet.
      host, port: where to listen; a host other than loopback needs `allow_remote` and
        `token` (UsageError otherwise).
      token: the secret each request must send as `Authorization: Bearer TOKEN`.
      token_env: the name of the variable holding it, advertised in OUT/.serve so that a
        `search` on this host that has it can ask this server (discovery.py).
      embedder_options: a remote embedder's endpoint, as for `Index.open`.
      access_log: log each request (its query included) to stderr.
      say: receives the line that says where it listens.
    """
    import uvicorn

    check_bind(host, allow_remote, token)
    live = LiveIndex(out, embedder_options)
    sock = bind(host, port)
    config = uvicorn.Config(create_app(live, token), log_level="warning",
                            access_log=access_log, lifespan="off")
    server = uvicorn.Server(config)
    with _signals_stop(server):
        shown = f"[{host}]" if ":" in host else host
        index = live.index
        say(f"serving {out} on http://{shown}:{sock.getsockname()[1]} "
            + (f"(snapshot {index.snapshot_id})" if index else "(no index yet: waiting for one)"))
        live.start()
        try:
            with advertise(out, f"http://{_local(host)}:{sock.getsockname()[1]}", token_env):
                server.run(sockets=[sock])
        finally:
            live.stop()
            sock.close()


def _local(host: str) -> str:
    """How a process on this host reaches a server listening on `host`."""
    if host in ("0.0.0.0", ""):
        return "127.0.0.1"
    if host == "::":
        return "[::1]"
    return f"[{host}]" if ":" in host else host


@contextlib.contextmanager
def _signals_stop(server):
    """SIGINT and SIGTERM stop the server, whenever they come: before uvicorn listens (then
    it stops at once) or after. uvicorn shuts down, then raises the signal again for its
    default action (death by signal); a server stopped that way ended as asked, so the signal
    finds this handler instead, and the process exits 0."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def stop(signum, frame):
        server.should_exit = True

    previous = {sig: signal.signal(sig, stop) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
