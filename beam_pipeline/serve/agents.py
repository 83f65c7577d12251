"""`beam-index mcp OUT`: the index as tools for coding agents, over MCP's stdio transport.

An agent (Claude Code, Cursor, Continue, Codex) starts this process and talks JSON-RPC on its
stdin and stdout; logs go to stderr. Three tools, each with a declared output schema:

- `search`: the CLI's search (query, k, mode, min_score and its filters) → hits with path,
  line range, language, score and snippet;
- `read_lines`: lines of a file as the index holds them (its rows, spliced), so an agent can
  read around a hit without touching the disk;
- `index_status`: which snapshot answers, when it was committed, files and chunks, when a run
  last caught up with SOURCE, and whether a run holds OUT now (a stale index says so).

Every call answers from the last committed snapshot at once (LiveIndex): a run in progress
never makes one wait. Built on the official SDK's `MCPServer`.

Example::

    run_mcp("index")        # until stdin closes
"""

from __future__ import annotations

from typing import Literal

import anyio
from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from pydantic import BaseModel, Field

from ..errors import BeamIndexError
from ..store.status import index_status
from .live import LiveIndex
from .params import search_request

MAX_LINES = 2000  # read_lines: one call's most; an agent asks again for more

Mode = Literal["hybrid", "semantic", "fts", "regex"]


class Hit(BaseModel):
    path: str = Field(description="the file, relative to the indexed folder")
    line_start: int = Field(description="first line of the chunk, from 1")
    line_end: int = Field(description="last line of the chunk")
    language: str
    score: float = Field(description="0 to 1, the same scale in every mode")
    snippet: str = Field(description="the chunk's text, widened to whole lines")


class SearchResult(BaseModel):
    snapshot: str = Field(description="the snapshot that answered")
    hits: list[Hit]
    notes: list[str] = Field(description="what the search had to do differently, if anything")


class FileLines(BaseModel):
    path: str
    language: str
    start: int = Field(description="first line returned, from 1")
    end: int = Field(description="last line returned")
    last_line: int = Field(description="the file's last line")
    text: str = Field(description="lines start to end, as the index holds them")
    snapshot: str


class IndexStatus(BaseModel):
    output: str = Field(description="the index folder")
    snapshot: str | None = Field(description="the live snapshot (None: no index yet)")
    serving: str | None = Field(description="the snapshot these tools answer from")
    committed_at: str | None
    files: int | None
    chunks: int | None
    caught_up_at: str | None = Field(
        description="when a run last found SOURCE and the index equal (None: not since this "
        "snapshot; the index may lag the tree)")
    run_in_progress: bool
    serving_error: str | None = Field(description="why a newer snapshot is not served, if so")


def create_mcp(live: LiveIndex) -> MCPServer:
    """The MCP server answering from `live`."""
    server = MCPServer("beam-index", instructions=(
        "Search an indexed code repository: `search` ranks chunks by meaning and words "
        "(hybrid), `read_lines` reads around a hit, `index_status` tells how current the "
        "index is."))

    @server.tool()
    async def search(query: str, k: int = 10, mode: Mode = "hybrid",
                     min_score: float | None = None, language: list[str] | None = None,
                     exclude_language: list[str] | None = None,
                     path_filter: list[str] | None = None,
                     exclude_path: list[str] | None = None, fuzzy: bool = False,
                     case_sensitive: bool = False, files_only: bool = False) -> SearchResult:
        """Search the indexed code. mode: hybrid (default: meaning and words), semantic
        (meaning), fts (words, BM25; fuzzy and case_sensitive apply), regex (RE2 over the
        raw text). path_filter and exclude_path are globs (e.g. "src/**", "**/tests/**");
        language names such as "python"; min_score in [0, 1]."""
        items = [("q", query), ("k", str(k)), ("mode", mode), ("fuzzy", str(fuzzy)),
                 ("case_sensitive", str(case_sensitive)), ("files_only", str(files_only))]
        if min_score is not None:
            items.append(("min_score", str(min_score)))
        for name, values in (("language", language), ("exclude_language", exclude_language),
                             ("path_filter", path_filter), ("exclude_path", exclude_path)):
            items.extend((name, value) for value in values or ())
        asked = _checked(search_request, items)
        hits, snapshot = await anyio.to_thread.run_sync(_checked, live.answer, asked)
        return SearchResult(snapshot=snapshot, notes=list(asked.notes), hits=[
            Hit(path=hit["path"], line_start=hit["line_start"], line_end=hit["line_end"],
                language=hit["language"], score=hit["score"], snippet=hit["snippet"])
            for hit in hits])

    @server.tool()
    async def read_lines(path: str, start: int = 1, end: int | None = None) -> FileLines:
        """Lines start to end (from 1, both included; end defaults to start + 199) of a file
        as the index holds it, e.g. around a search hit. At most 2000 lines a call."""
        index = _checked(live.current)
        found = await anyio.to_thread.run_sync(_checked, index.file_text, path)
        if found is None:
            raise ToolError(f"the index holds no lines of {path!r} (not indexed, or empty)")
        text, language = found
        lines = text.split("\n")
        if lines and lines[-1] == "":
            lines.pop()  # the break that ends the last line starts no line
        end = start + 199 if end is None else end
        if start < 1 or end < start:
            raise ToolError(f"lines {start} to {end}: start from 1, end at or after start")
        end = min(end, start + MAX_LINES - 1, len(lines))
        return FileLines(path=path, language=language, start=start, end=end,
                         last_line=len(lines), text="\n".join(lines[start - 1:end]),
                         snapshot=index.snapshot_id)

    @server.tool()
    async def index_status() -> IndexStatus:
        """How current the index is: its live snapshot, when committed, files and chunks,
        when a run last caught up with the source tree, whether a run is in progress."""
        status = await anyio.to_thread.run_sync(index_status_of, live)
        return status

    return server


def index_status_of(live: LiveIndex) -> IndexStatus:
    status = index_status(live.out)
    index = live.index
    return IndexStatus(output=status["output"], snapshot=status["snapshot"],
                       serving=index.snapshot_id if index is not None else None,
                       committed_at=status["committed_at"], files=status["files"],
                       chunks=status["rows"], caught_up_at=status["caught_up_at"],
                       run_in_progress=status["run_in_progress"] is not None,
                       serving_error=live.error)


def _checked(call, *args):
    """`call(*args)`, a refusal of ours becoming the tool's error (its one-line reason)."""
    try:
        return call(*args)
    except BeamIndexError as exc:
        raise ToolError(str(exc)) from None


def run_mcp(out: str, embedder_options: dict | None = None) -> None:
    """Serve `out`'s tools over stdio until the client closes the connection."""
    live = LiveIndex(out, embedder_options).start()
    try:
        create_mcp(live).run("stdio")
    finally:
        live.stop()
