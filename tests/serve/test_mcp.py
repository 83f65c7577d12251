"""`beam-index mcp OUT`, end to end with the official SDK's client over stdio: the tools are
listed with their schemas, and each call returns structured content."""

import sys

import anyio
import pytest
from conftest import code_file, make_tree
from mcp import Client
from mcp.client.stdio import StdioServerParameters

from beam_pipeline import run_index
from beam_pipeline.store.lock import OutputLock

WAIT_S = 120  # a loaded machine is slow, never wrong

RETRY = ("import time\n\n\n"
         "def retry_upload(send, attempts=3):\n"
         "    '''Send again after a failure, waiting longer each time.'''\n"
         "    for attempt in range(attempts):\n"
         "        try:\n"
         "            return send()\n"
         "        except OSError:\n"
         "            time.sleep(2 ** attempt)\n"
         "    raise RuntimeError('gave up')\n")


@pytest.fixture(scope="module")
def index(tmp_path_factory):
    root = tmp_path_factory.mktemp("mcp")
    src = make_tree(root / "src", {"net/retry.py": RETRY, "tests/test_retry.py":
                                   "def test_retry_upload():\n    assert True\n",
                                   **{f"pkg/m{i}.py": code_file(f"m{i}", 10) for i in range(4)}})
    run_index(src, root / "index")
    return root / "index"


def session(out, body):
    """Start `beam-index mcp OUT` as an agent would, and run `body(client)` under a timeout."""
    async def main():
        params = StdioServerParameters(command=sys.executable,
                                       args=["-m", "beam_pipeline", "mcp", str(out)])
        with anyio.fail_after(WAIT_S):
            async with Client(params) as client:
                return await body(client)
    return anyio.run(main)


def test_the_tools_are_listed_with_their_schemas(index):
    async def body(client):
        return (await client.list_tools()).tools

    tools = {tool.name: tool for tool in session(index, body)}
    assert set(tools) == {"search", "read_lines", "index_status"}
    for tool in tools.values():
        assert tool.description and tool.output_schema, tool.name
    search = tools["search"]
    assert {"query", "k", "mode", "min_score", "language", "path_filter",
            "exclude_path"} <= set(search.input_schema["properties"])
    assert search.input_schema["required"] == ["query"]
    assert set(search.input_schema["properties"]["mode"]["enum"]) == {
        "hybrid", "semantic", "fts", "regex"}
    assert "hits" in search.output_schema["properties"]


def test_search_then_read_around_the_hit_then_status(index):
    async def body(client):
        found = await client.call_tool("search", {
            "query": "send again after a failure", "k": 3, "exclude_path": ["**/tests/**"]})
        hit = found.structured_content["hits"][0]
        lines = await client.call_tool("read_lines", {
            "path": hit["path"], "start": hit["line_start"], "end": hit["line_end"]})
        regex = await client.call_tool("search", {"query": r"2 \*\* attempt", "mode": "regex"})
        status = await client.call_tool("index_status", {})
        return found, lines, regex, status

    found, lines, regex, status = session(index, body)
    assert not found.is_error and not lines.is_error and not status.is_error
    hits = found.structured_content["hits"]
    assert hits[0]["path"] == "net/retry.py" and all(h["path"] != "tests/test_retry.py"
                                                    for h in hits)
    assert set(hits[0]) == {"path", "line_start", "line_end", "language", "score", "snippet"}
    assert hits[0]["language"] == "python" and 0 <= hits[0]["score"] <= 1
    assert "retry_upload" in hits[0]["snippet"]
    read = lines.structured_content
    expected = RETRY.split("\n")[hits[0]["line_start"] - 1:hits[0]["line_end"]]
    assert read["text"] == "\n".join(expected) and read["last_line"] == 11
    assert [h["path"] for h in regex.structured_content["hits"]] == ["net/retry.py"]
    current = (index / "CURRENT").read_text().strip()
    state = status.structured_content
    assert state["snapshot"] == state["serving"] == found.structured_content["snapshot"] == \
        current
    assert state["files"] == 6 and state["chunks"] > 0 and state["caught_up_at"]
    assert state["run_in_progress"] is False


def test_refusals_are_tool_errors_with_a_reason(index):
    async def body(client):
        return [await client.call_tool(name, arguments) for name, arguments in (
            ("search", {"query": "x", "k": 5000}),
            ("search", {"query": "a(b", "mode": "regex"}),
            ("search", {"query": "x", "min_score": 2}),
            ("read_lines", {"path": "../../etc/passwd"}),
            ("read_lines", {"path": "net/retry.py", "start": 0}),
        )]

    results = session(index, body)
    reasons = [result.content[0].text for result in results]
    assert all(result.is_error for result in results), reasons
    for reason, expected in zip(reasons, ["k must be from 1 to 1000", "bad regular expression",
                                          "outside [0, 1]", "holds no lines of",
                                          "start from 1"]):
        assert expected in reason, reason


def test_no_call_waits_for_a_run_in_progress(index):
    # A run holds OUT's lock the whole time: every call answers from the last snapshot.
    with OutputLock(index):
        async def body(client):
            found = await client.call_tool("search", {"query": "send again after a failure",
                                                      "k": 1})
            status = await client.call_tool("index_status", {})
            return found, status

        found, status = session(index, body)
    assert found.structured_content["hits"][0]["path"] == "net/retry.py"
    assert status.structured_content["run_in_progress"] is True


def test_before_the_first_commit_it_says_so(tmp_path):
    async def body(client):
        return (await client.call_tool("search", {"query": "x"}),
                await client.call_tool("index_status", {}))

    found, status = session(tmp_path / "empty", body)
    assert found.is_error and "holds no index yet" in found.content[0].text
    assert status.structured_content["snapshot"] is None


def test_the_client_configurations_in_the_docs_start_a_working_server(index):
    import json
    import os
    import re
    import shutil
    from pathlib import Path

    page = (Path(__file__).parents[2] / "docs" / "search.md").read_text(encoding="utf-8")
    section = page.split("## Coding agents", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```json\n(.*?)```", section, re.DOTALL)
    configs = [json.loads(block) for block in blocks]
    assert len(configs) == 2  # Claude Code's .mcp.json, Cursor's mcp.json
    for config in configs:
        server = config["mcpServers"]["beam-index"]
        assert server.get("type", "stdio") == "stdio"
        command = shutil.which(server["command"]) or os.path.join(
            os.path.dirname(sys.executable), server["command"])
        args = [str(index) if arg == "/abs/path/to/index" else arg for arg in server["args"]]

        async def main(params):
            with anyio.fail_after(WAIT_S):
                async with Client(params) as client:
                    return await client.call_tool("index_status", {})

        status = anyio.run(main, StdioServerParameters(command=command, args=args))
        assert status.structured_content["serving"] == (index / "CURRENT").read_text().strip()
