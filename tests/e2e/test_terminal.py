"""What a terminal shows while `beam-index index` runs: a bar per stage (discovered, chunked,
embedded, committed) with counts, files/s and the time left, drawn by rich through a real
pseudo-terminal; off a terminal, plain lines (tests/e2e/test_end_to_end.py)."""

import fcntl
import os
import pty
import re
import select
import struct
import subprocess
import termios

from conftest import BEAM_INDEX, code_file, make_tree

CONTROL = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]|\r")


def run_in_a_terminal(args: list[str], columns: int = 100) -> tuple[int, str]:
    """Run `args` with stdin, stdout and stderr on a new pseudo-terminal; (exit code, what
    the terminal received)."""
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 30, columns, 0, 0))
    process = subprocess.Popen(args, stdin=slave, stdout=slave, stderr=slave,
                               env={**os.environ, "TERM": "xterm-256color"})
    os.close(slave)
    received = []
    try:
        while select.select([master], [], [], 120)[0]:
            try:
                data = os.read(master, 65536)
            except OSError:  # EIO: the terminal's last writer is gone
                break
            if not data:
                break
            received.append(data)
    finally:
        os.close(master)
    return process.wait(timeout=120), b"".join(received).decode("utf-8", "replace")


def test_the_terminal_shows_a_bar_per_stage_with_the_rate_and_the_time_left(tmp_path):
    src = make_tree(tmp_path / "src", {f"d{i % 7}/m{i}.py": code_file(f"m{i}", 30)
                                       for i in range(300)})
    code, screen = run_in_a_terminal([*BEAM_INDEX, "index", str(src), "--output",
                                      str(tmp_path / "out")])
    text = CONTROL.sub("", screen)
    assert code == 0, text[-3000:]
    for stage in ("discovered", "chunked", "embedded", "committed"):
        assert re.search(rf"{stage} ━+ *\d+/(\d+|\?)", text), stage
    assert "300/300" in text
    assert re.search(r"\d+ files/s", text)
    assert re.search(r"\d+:\d\d:\d\d", text)  # the time left (the time taken, once done)
    assert "[done] chunks" in text and "Committed snapshot" in text
    assert "Warning" not in text  # nothing else writes over the bars
