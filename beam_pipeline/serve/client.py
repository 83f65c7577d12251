"""A search asked of a running `serve` of the same OUT (discovery.py finds it), answered
exactly as the files would answer: the server says which snapshot answered, and an answer
from any other than the one CURRENT names now is not used. Any failure (refused, timed out,
a token this process lacks) returns None, and the caller reads the files. The standard
library only.

Example::

    answer = ask_server("index", [("q", "retry upload"), ("k", "5")])
    if answer is not None:
        hits, notes = answer
"""

from __future__ import annotations

import json
import logging
import os
import urllib.error
import urllib.parse
import urllib.request

from .discovery import find_server

log = logging.getLogger(__name__)

CURRENT_FILE = "CURRENT"  # layout/schema.py's name, not imported: it would bring pyarrow
TIMEOUT_S = 10.0  # a warm server answers in milliseconds; a hung one must not hang a search
SNAPSHOT_HEADER = "x-beam-index-snapshot"
NOTE_HEADER = "x-beam-index-note"


def ask_server(out: str, params: list[tuple[str, str]]) -> tuple[list[dict], list[str]] | None:
    """The hits and notes a server of OUT gives for `params` (the query string's pairs), or
    None when no server answers for the snapshot CURRENT names."""
    server = find_server(out)
    if server is None:
        log.info("no server of %s runs on this host: reading the files", out)
        return None
    headers = {}
    if server.get("token_env"):
        token = os.environ.get(server["token_env"])
        if not token:
            log.info("the server of %s wants the token in $%s, which is not set", out,
                     server["token_env"])
            return None
        headers["Authorization"] = f"Bearer {token}"
    url = f"{server['url']}/search?{urllib.parse.urlencode(params)}"
    try:
        with urllib.request.urlopen(urllib.request.Request(url, headers=headers),
                                    timeout=TIMEOUT_S) as response:
            body, answered = response.read(), response.headers.get(SNAPSHOT_HEADER)
            notes = response.headers.get_all(NOTE_HEADER) or []
    except (OSError, urllib.error.URLError) as exc:  # HTTPError included: a refusal
        log.info("the server at %s did not answer (%s): reading the files", server["url"], exc)
        return None
    if answered != _current(out):
        log.info("the server at %s answered from snapshot %s, not the live one: reading the "
                 "files", server["url"], answered)
        return None
    log.info("answered by the server at %s (snapshot %s)", server["url"], answered)
    return json.loads(body), notes


def _current(out: str) -> str | None:
    try:
        with open(os.path.join(out, CURRENT_FILE), encoding="utf-8") as fh:
            return fh.read().strip()
    except OSError:
        return None
