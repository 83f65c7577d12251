"""RunLink: progress events leave in datagrams of many, promptly, and none is lost; the
launcher's end takes only what the run signed and can neither crash nor fail the run."""

import hmac
import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import BEAM_INDEX, code_file, make_tree

from beam_pipeline.run.progress import (
    CHUNKED,
    EMBEDDED,
    FLUSH_S,
    ProgressChannel,
    ProgressTracker,
    RunLink,
)
from beam_pipeline.store.verify import verify_index

KEY = b"k" * 32


@pytest.fixture
def receiver():
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8 << 20)
    sock.bind(("127.0.0.1", 0))
    yield sock
    sock.close()


def datagrams(sock, timeout=0.0):
    """Every datagram waiting (or arriving within `timeout`), checked and decoded."""
    got = []
    if timeout:
        sock.settimeout(timeout)
    else:
        sock.setblocking(False)
    while True:
        try:
            data = sock.recv(65536)
            assert hmac.compare_digest(data[:32], hmac.digest(KEY, data[32:], "sha256"))
            got.append(json.loads(data[32:]))
        except (BlockingIOError, TimeoutError):
            return got


def test_many_events_travel_in_few_datagrams_in_order(receiver):
    link = RunLink(receiver.getsockname(), key=KEY)
    for i in range(1000):
        link.send({"k": CHUNKED, "p": f"f{i}.py", "n": 1, "b": 10})
    link.flush()
    got = datagrams(receiver)
    assert len(got) <= 10
    assert [e["p"] for batch in got for e in batch] == [f"f{i}.py" for i in range(1000)]


def test_the_first_event_leaves_at_once_and_a_stalled_link_still_sends(receiver):
    link = RunLink(receiver.getsockname(), key=KEY)
    link.send({"k": CHUNKED, "p": "first.py", "n": 1, "b": 1})
    assert datagrams(receiver) == [[{"k": CHUNKED, "p": "first.py", "n": 1, "b": 1}]]
    link.send({"k": CHUNKED, "p": "second.py", "n": 1, "b": 1})
    assert datagrams(receiver) == []  # waiting for company…
    # …but never longer than the background flush allows, though the sender does nothing more.
    assert datagrams(receiver, timeout=20 * FLUSH_S)[0][0]["p"] == "second.py"


def test_an_event_too_big_for_one_datagram_is_split_by_path(receiver):
    link = RunLink(receiver.getsockname(), key=KEY)
    link.send({"k": CHUNKED, "p": "warm-up.py", "n": 0, "b": 0})
    per_path = {f"{'deep/' * 20}file_{i}.py": 1 for i in range(2000)}  # ~250 KB of JSON
    link.send({"k": EMBEDDED, "p": per_path})
    link.flush()
    got = [e for batch in datagrams(receiver) for e in batch if e["k"] == EMBEDDED]
    assert len(got) > 1
    merged = {path: n for e in got for path, n in e["p"].items()}
    assert merged == per_path


def test_closing_a_link_sends_what_waits(receiver):
    link = RunLink(receiver.getsockname(), key=KEY)
    for i in range(3):
        link.send({"k": CHUNKED, "p": f"{i}.py", "n": 1, "b": 1})
    link.close()
    assert [e["p"] for batch in datagrams(receiver) for e in batch] == ["0.py", "1.py", "2.py"]


# What a local attacker sent (issue 37, findings 2 and 3): deep nesting that made json.loads
# raise RecursionError, finishes of files the run does not have, and terminal escapes.
HOSTILE = [b"[" * 60_000] * 3 + [
    json.dumps([{"k": CHUNKED, "p": f"spoof{i}\x1b]0;pwned\x07\x1b[2J.py", "n": 0, "b": 10**12}
                for i in range(3)]).encode()]
SEND = ("import socket, sys\n"
        "sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n"
        "for line in sys.stdin.buffer.read().split(b'\\0'):\n"
        "    sock.sendto(bytes.fromhex(line.decode()), ('127.0.0.1', int(sys.argv[1])))\n")


def send_as_another_process(port: int, datagrams: list[bytes]) -> None:
    """Send from a process of its own: as `nobody` when this test may switch users."""
    cmd = [sys.executable, "-c", SEND, str(port)]
    if os.geteuid() == 0:
        cmd = ["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups", *cmd]
    subprocess.run(cmd, input=b"\0".join(d.hex().encode() for d in datagrams), check=True,
                   timeout=60)


def test_the_listener_drops_what_it_cannot_trust_and_never_fails():
    tracker = ProgressTracker(total_files=2)
    with ProgressChannel(tracker) as channel:
        send_as_another_process(channel.address[1], HOSTILE)
        link = RunLink(channel.address, key=channel.key)
        # Signed but not fit for the run: unreadable, not a list, wrong types, unknown kinds,
        # and more files than the run has.
        for payload in (b"[" * 60_000, b'{"k": "c"}', b"\xff\xfe"):
            link._sock = link._sock or socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            link._sock.sendto(hmac.digest(channel.key, payload, "sha256") + payload,
                              channel.address)
        link.send({"k": CHUNKED, "p": 5, "n": "x", "b": 1})
        link.send({"k": "?", "p": "a.py"})
        link.send({"k": EMBEDDED, "p": {"a.py": -1}})
        for name in ("a.py", "b.py", "c.py"):
            link.send({"k": CHUNKED, "p": name, "n": 0, "b": 100})
        link.close()
        deadline = time.monotonic() + 10
        while tracker.files_done < 2 and time.monotonic() < deadline:
            time.sleep(0.01)
    assert tracker.files_done == 2 and tracker.bytes_done == 200
    assert channel.dropped == len(HOSTILE) + 3  # unsigned, then signed but unreadable/not a list
    assert tracker.dropped == 4  # three malformed events and the file the run does not have
    line = tracker.summary_line()
    assert "2/2 files (100%)" in line and "spoof" not in line and "\x1b" not in line


def ports_of(pid: int) -> set[int]:
    """The UDP ports on 127.0.0.1 that process `pid` has bound, as `ss -ulpn` shows anyone."""
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            target = os.readlink(fd)
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[8:-1])
    ports = set()
    for line in Path("/proc/net/udp").read_text().splitlines()[1:]:
        fields = line.split()
        address, port = fields[1].split(":")
        if address == "0100007F" and fields[9] in inodes:
            ports.add(int(port, 16))
    return ports


def test_a_run_attacked_through_its_progress_port_commits_with_correct_counts(tmp_path):
    src = make_tree(tmp_path / "src", {f"pkg/m{i}.py": code_file(f"m{i}", 8) for i in range(600)})
    out, stats_path = tmp_path / "out", tmp_path / "stats.json"
    run = subprocess.Popen([*BEAM_INDEX, "index", str(src), "--output", str(out), "-q",
                            "--stats-json", str(stats_path)], stderr=subprocess.PIPE, text=True)
    attacked = set()
    while run.poll() is None and not attacked:
        for port in ports_of(run.pid):
            send_as_another_process(port, HOSTILE)
            attacked.add(port)
        time.sleep(0.02)
    _, stderr = run.communicate(timeout=300)
    assert run.returncode == 0, stderr
    assert attacked, "the run ended before its progress port was found"
    stats = json.loads(stats_path.read_text())
    assert stats["files_processed"] == 600 and stats["failed_files"] == 0
    assert stats["progress_dropped"] >= len(HOSTILE)
    assert verify_index(out) == []
