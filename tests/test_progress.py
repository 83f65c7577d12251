"""RunLink: progress events leave in datagrams of many, promptly, and none is lost."""

import json
import socket

import pytest

from beam_pipeline.progress import CHUNKED, EMBEDDED, FLUSH_S, RunLink


@pytest.fixture
def receiver():
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8 << 20)
    sock.bind(("127.0.0.1", 0))
    yield sock
    sock.close()


def datagrams(sock, timeout=0.0):
    """Every datagram waiting (or arriving within `timeout`), decoded."""
    got = []
    if timeout:
        sock.settimeout(timeout)
    else:
        sock.setblocking(False)
    while True:
        try:
            got.append(json.loads(sock.recv(65536)))
        except (BlockingIOError, TimeoutError):
            return got


def test_many_events_travel_in_few_datagrams_in_order(receiver):
    link = RunLink(receiver.getsockname())
    for i in range(1000):
        link.send({"k": CHUNKED, "p": f"f{i}.py", "n": 1, "b": 10})
    link.flush()
    got = datagrams(receiver)
    assert len(got) <= 10
    assert [e["p"] for batch in got for e in batch] == [f"f{i}.py" for i in range(1000)]


def test_the_first_event_leaves_at_once_and_a_stalled_link_still_sends(receiver):
    link = RunLink(receiver.getsockname())
    link.send({"k": CHUNKED, "p": "first.py", "n": 1, "b": 1})
    assert datagrams(receiver) == [[{"k": CHUNKED, "p": "first.py", "n": 1, "b": 1}]]
    link.send({"k": CHUNKED, "p": "second.py", "n": 1, "b": 1})
    assert datagrams(receiver) == []  # waiting for company…
    # …but never longer than the background flush allows, though the sender does nothing more.
    assert datagrams(receiver, timeout=20 * FLUSH_S)[0][0]["p"] == "second.py"


def test_an_event_too_big_for_one_datagram_is_split_by_path(receiver):
    link = RunLink(receiver.getsockname())
    link.send({"k": CHUNKED, "p": "warm-up.py", "n": 0, "b": 0})
    per_path = {f"{'deep/' * 20}file_{i}.py": 1 for i in range(2000)}  # ~250 KB of JSON
    link.send({"k": EMBEDDED, "p": per_path})
    link.flush()
    got = [e for batch in datagrams(receiver) for e in batch if e["k"] == EMBEDDED]
    assert len(got) > 1
    merged = {path: n for e in got for path, n in e["p"].items()}
    assert merged == per_path


def test_closing_a_link_sends_what_waits(receiver):
    link = RunLink(receiver.getsockname())
    for i in range(3):
        link.send({"k": CHUNKED, "p": f"{i}.py", "n": 1, "b": 1})
    link.close()
    assert [e["p"] for batch in datagrams(receiver) for e in batch] == ["0.py", "1.py", "2.py"]
