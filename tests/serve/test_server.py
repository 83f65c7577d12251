"""`beam-index serve`: what `search --json` prints, over HTTP from one warm process that
follows each commit; loopback unless told otherwise, a token where the network can reach it."""

import json
import os
import re
import subprocess
import threading
import time
import urllib.error
import urllib.parse
import urllib.request

import pytest
from conftest import BEAM_INDEX, code_file, make_tree, run_cli

from beam_pipeline import run_index

WAIT_S = 120  # a loaded machine is slow, never wrong


class Server:
    """`beam-index serve OUT --port 0` in its own process, as a user starts it."""

    def __init__(self, out, *flags, env=None):
        self.process = subprocess.Popen(
            [*BEAM_INDEX, "serve", str(out), "--port", "0", *flags], stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE, text=True, env={**os.environ, **(env or {})})
        seen = []
        for line in self.process.stderr:
            seen.append(line)
            if "serving" in line:
                self.line = line
                self.url = re.search(r"http://\S+", line).group(0)
                return
        raise AssertionError(f"serve never said where it listens: {''.join(seen)[-2000:]}")

    def get(self, path: str, params=(), headers=None) -> tuple[int, str]:
        query = urllib.parse.urlencode(list(params))
        request = urllib.request.Request(f"{self.url}{path}" + (f"?{query}" if query else ""),
                                         headers=headers or {})
        try:
            with urllib.request.urlopen(request, timeout=WAIT_S) as response:
                return response.status, response.read().decode()
        except urllib.error.HTTPError as error:
            return error.code, error.read().decode()

    def close(self):
        self.process.terminate()
        assert self.process.wait(WAIT_S) == 0, self.process.stderr.read()[-2000:]


@pytest.fixture(scope="module")
def index(tmp_path_factory):
    root = tmp_path_factory.mktemp("serve")
    src = make_tree(root / "src", {
        "net/server.py": "def serve_forever(port):\n    '''Accept connections.'''\n",
        "net/retry.py": "def retry_upload(attempts):\n    return attempts - 1\n",
        "tests/test_net.py": "def test_retry_upload():\n    assert True\n",
        "util.go": "package util\nfunc RetryLater() {}\n",
        **{f"pkg/m{i}.py": code_file(f"m{i}", 12) for i in range(6)}})
    run_index(src, root / "index")
    return root / "index"


@pytest.fixture(scope="module")
def server(index):
    server = Server(index)
    yield server
    server.close()


CASES = [
    ("retry a failed upload", []),
    ("retry", ["--fts", "--language", "python", "-k", "3"]),
    ("accept connections", ["--semantic", "--path-filter", "net/**", "--min-score", "0.05"]),
    ("retry", ["--fts", "--exclude-path", "**/tests/**", "--files-only"]),
    (r"def \w+_\d+\(", ["--fts", "--regex", "-k", "4"]),
    ("attemps", ["--fts", "--fuzzy", "--exclude-language", "go"]),
]
_PARAMS = {"--fts": ("mode", "fts"), "--semantic": ("mode", "semantic"),
           "--regex": ("regex", "true"), "--fuzzy": ("fuzzy", "true"),
           "--files-only": ("files_only", "true")}


def params_of(query: str, flags: list[str]) -> list[tuple[str, str]]:
    params, rest = [("q", query)], list(flags)
    while rest:
        flag = rest.pop(0)
        if flag in _PARAMS:
            params.append(_PARAMS[flag])
        else:
            params.append(("k" if flag == "-k" else flag[2:].replace("-", "_"), rest.pop(0)))
    return params


@pytest.mark.parametrize("query, flags", CASES)
def test_serve_answers_what_search_json_prints(index, server, query, flags):
    printed = run_cli("search", index, query, *flags, "--json")
    assert printed.returncode == 0, printed.stderr
    status, body = server.get("/search", params_of(query, flags))
    assert status == 200 and body == printed.stdout
    assert json.loads(body), "each case finds something"


@pytest.mark.parametrize("params, status, reason", [
    ([("q", "x"), ("limit", "3")], 400, "unknown option 'limit'"),
    ([("q", "x"), ("k", "1001")], 400, "k must be from 1 to 1000"),
    ([("q", "x" * 4097)], 400, "over 4096 bytes"),
    ([("q", "a(b"), ("mode", "regex")], 400, "bad regular expression"),
    ([("q", "(?<=x)y"), ("mode", "regex")], 400, "bad regular expression"),  # RE2 has none
])
def test_bad_requests_get_a_4xx_with_a_one_line_reason(server, params, status, reason):
    got, body = server.get("/search", params)
    error = json.loads(body)["error"]
    assert got == status and reason in error and "\n" not in error


def test_nothing_but_the_two_routes_answers(server):
    assert server.get("/../../etc/passwd")[0] == 404
    assert server.get("/search/../../../etc/passwd")[0] == 404
    request = urllib.request.Request(f"{server.url}/search?q=x", data=b"", method="POST")
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(request, timeout=WAIT_S)
    assert refused.value.code == 405


def test_health_names_the_snapshot_served(index, server):
    status, body = server.get("/health")
    health = json.loads(body)
    assert status == 200 and health["serving"] == health["snapshot"] == \
        (index / "CURRENT").read_text().strip()
    assert health["files"] == 10 and health["rows"] > 0 and health["caught_up_at"]


def test_loopback_by_default(server):
    assert server.url.startswith("http://127.0.0.1:")


def test_a_reachable_address_needs_allow_remote_and_a_token(index):
    refused = run_cli("serve", index, "--host", "0.0.0.0", "--port", "0")
    assert refused.returncode == 2 and "--allow-remote" in refused.stderr
    no_token = run_cli("serve", index, "--host", "0.0.0.0", "--port", "0", "--allow-remote")
    assert no_token.returncode == 2 and "needs a token" in no_token.stderr
    unset = run_cli("serve", index, "--host", "0.0.0.0", "--port", "0", "--allow-remote",
                    "--token-env", "BEAM_INDEX_TEST_UNSET_TOKEN")
    assert unset.returncode == 2 and "not set or empty" in unset.stderr


def test_with_a_token_every_request_must_send_it(index):
    server = Server(index, "--token-env", "SERVE_TOKEN", env={"SERVE_TOKEN": "s3cret-token"})
    try:
        assert server.get("/health")[0] == 401
        assert server.get("/search", [("q", "retry")],
                          {"Authorization": "Bearer wrong"})[0] == 401
        status, body = server.get("/search", [("q", "retry")],
                                  {"Authorization": "Bearer s3cret-token"})
        assert status == 200 and json.loads(body)
    finally:
        server.close()


def test_follows_each_commit_without_failing_a_query(tmp_path):
    # Commits that prune at once (keep 1, no grace) while clients query without pause: a
    # query in flight finishes on its snapshot or follows CURRENT, none fails.
    src = make_tree(tmp_path / "src", {f"m{i}.py": code_file(f"m{i}", 8) for i in range(4)})
    out = tmp_path / "out"
    server = Server(out)  # before any index: it waits for one
    try:
        status, body = server.get("/search", [("q", "x")])
        assert status == 503 and "no index yet" in json.loads(body)["error"]
        stop, failures, answered = threading.Event(), [], []

        def client():
            while not stop.is_set():
                status, body = server.get("/search", [("q", "generation marker"), ("k", "3")])
                (answered if status == 200 else failures).append((status, body[:200]))

        for generation in range(4):
            (src / "m0.py").write_text(f"def generation_{generation}_marker():\n    pass\n")
            stats = run_index(src, out, keep=1, prune_grace_s=0, quiet=True)
            wanted = f"generation_{generation}_marker"
            started = time.monotonic()  # the server's poll picks the commit up
            while json.loads(server.get("/health")[1])["serving"] != stats.snapshot_id:
                assert time.monotonic() - started < WAIT_S, "the commit was never served"
            if generation == 0:  # queries from now on, through every later commit
                clients = [threading.Thread(target=client) for _ in range(4)]
                for thread in clients:
                    thread.start()
            status, body = server.get("/search", [("q", wanted), ("mode", "fts")])
            assert status == 200 and [hit["path"] for hit in json.loads(body)] == ["m0.py"]
        stop.set()
        for thread in clients:
            thread.join(WAIT_S)
        assert not failures and len(answered) > 10, (len(answered), failures[:3])
    finally:
        server.close()


def test_ctrl_c_stops_it_cleanly_even_as_it_starts(index):
    import signal

    server = Server(index)  # the signal comes as soon as it says where it listens
    server.process.send_signal(signal.SIGINT)
    assert server.process.wait(WAIT_S) == 0
    assert "interrupted" not in server.process.stderr.read()


@pytest.fixture
def own_index(index, tmp_path):
    """A copy of the index that no other test's server advertises."""
    import shutil

    return shutil.copytree(index, tmp_path / "index")


def test_search_asks_a_running_server_and_reads_the_files_without_one(own_index):
    import signal

    index = own_index
    args = ("search", index, "retry a failed upload", "-k", "3", "--json", "-v")
    alone = run_cli(*args, "--no-server")
    assert "answered by the server" not in alone.stderr
    server = Server(index)
    try:
        served = run_cli(*args)
        assert served.returncode == 0 and served.stdout == alone.stdout
        assert f"answered by the server at {server.url}" in served.stderr
    finally:
        server.process.send_signal(signal.SIGKILL)  # its record stays, unlocked
        server.process.wait(WAIT_S)
    after = run_cli(*args)
    assert after.stdout == alone.stdout and "answered by the server" not in after.stderr
    assert "no server of" in after.stderr


def test_search_sends_the_token_it_has_and_without_it_reads_the_files(own_index):
    index = own_index
    args = ("search", index, "retry", "--fts", "--json", "-v")
    server = Server(index, "--token-env", "SERVE_TOKEN", env={"SERVE_TOKEN": "s3cret-token"})
    try:
        without = run_cli(*args)  # this process has no SERVE_TOKEN
        assert without.returncode == 0 and "answered by the server" not in without.stderr
        assert "$SERVE_TOKEN" in without.stderr
        env = {**os.environ, "SERVE_TOKEN": "s3cret-token"}
        with_token = subprocess.run([*BEAM_INDEX, *map(str, args)], capture_output=True,
                                    text=True, env=env, timeout=WAIT_S, check=False)
        assert "answered by the server" in with_token.stderr
        assert with_token.stdout == without.stdout
    finally:
        server.close()


def test_an_output_it_cannot_write_to_is_served_but_not_advertised(tmp_path):
    from beam_pipeline.serve.discovery import SERVE_FILE, advertise, find_server

    (tmp_path / SERVE_FILE).symlink_to("/nonexistent")  # refused, as a read-only OUT would be
    with advertise(str(tmp_path), "http://127.0.0.1:1", None) as advertised:
        assert advertised is False and find_server(str(tmp_path)) is None
    with advertise(str(tmp_path / "elsewhere"), "http://127.0.0.1:1", None) as advertised:
        assert advertised is False  # no such folder
    (tmp_path / SERVE_FILE).unlink()
    with advertise(str(tmp_path), "http://127.0.0.1:1", "VAR") as advertised:
        assert advertised and find_server(str(tmp_path))["token_env"] == "VAR"
    assert find_server(str(tmp_path)) is None  # unlocked once it stops
