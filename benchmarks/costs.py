"""What a run costs beyond its embedding: start-up, up-to-date checks, small changes, remote
calls and crashes (`python -m benchmarks.run --costs`).

Every figure is a whole child process, timed from spawn to exit, the median of `repeat` runs;
each timed command alternates with the baseline `python -c "import numpy, pyarrow.parquet"`
(what any Python tool that reads Parquet pays), so the ratios compare runs made side by side on
a shared, noisy machine.

- `search`, an up-to-date re-index and a 1 % change, on the corpus and on the corpus ×8, each
  in a git work tree and with `--no-git`; the 1 % change also as a share of a full run.
- The fixed cost of starting a pipeline: a change of one file.
- A tree of many small files (100,000 by default): an up-to-date re-index and a 1 % change,
  with and without git.
- Remote calls: the fake server at 100 ms a call, 1024-d vectors, 8 requests in flight:
  `embed_ms` per pipeline call against the latency, and the run's wall beyond a one-file run's
  (the fixed cost), and beyond the same run with answers at once, against its latency limit.
- Resume: a run killed once 60 % of its chunks are embedded, then the next run's share of
  chunks embedded.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

BASELINE = [sys.executable, "-c", "import numpy, pyarrow.parquet"]
INDEX = [sys.executable, "-m", "beam_pipeline", "index"]
SEARCH = [sys.executable, "-m", "beam_pipeline", "search"]
GIT_ENV = {"GIT_AUTHOR_NAME": "bench", "GIT_AUTHOR_EMAIL": "bench@localhost",
           "GIT_COMMITTER_NAME": "bench", "GIT_COMMITTER_EMAIL": "bench@localhost"}


def wall(cmd: list[str], env: dict | None = None) -> float:
    start = time.perf_counter()
    done = subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                          env={**os.environ, **(env or {})}, check=False)
    seconds = time.perf_counter() - start
    if done.returncode != 0:
        sys.stderr.write(done.stderr.decode(errors="replace"))
        raise SystemExit(f"exit status {done.returncode}: {' '.join(cmd)}")
    return seconds


def paired(cmd: list[str], repeat: int, before: Callable[[], None] | None = None) -> dict:
    """Medians of `cmd` and of the baseline, run alternately; `before` prepares each run."""
    runs, bases = [], []
    for _ in range(repeat):
        bases.append(wall(BASELINE))
        if before:
            before()
        runs.append(wall(cmd))
    median, base = statistics.median(runs), statistics.median(bases)
    return {"wall_s": median, "baseline_s": base, "vs_baseline": median / base, "runs": runs}


def git_init(tree: Path) -> None:
    """Commit `tree`; then refresh git's index a second later, as any `git status` would: files
    written in the second the index was written are "racily clean", and git re-reads them
    until its index is rewritten later (a real work tree's files are older than its index)."""
    def run(*args: str) -> None:
        subprocess.run(["git", "-C", str(tree), *args], check=True,
                       env={**os.environ, **GIT_ENV}, stdout=subprocess.DEVNULL)

    run("init", "-q")
    run("add", "-A")
    run("commit", "-qm", "benchmark tree")
    time.sleep(1.1)
    run("update-index", "-q", "--really-refresh")


def edit_share(tree: Path, percent: float) -> int:
    """Append a line to every (100/percent)-th file, git's own folder aside; returns the count."""
    files = sorted(p for p in tree.rglob("*") if p.is_file() and ".git" not in p.parts)
    chosen = files[::max(1, round(100 / percent))]
    for path in chosen:
        with open(path, "a", encoding="utf-8") as fh:
            fh.write(f"# edited {time.time_ns()}\n")
    return len(chosen)


def tree_costs(tree: Path, label: str, repeat: int, log: Callable[[str], None],
               full_repeat: int | None = None) -> dict:
    """search / up to date / 1 % / one file / full, with git and without, on `tree`."""
    figures: dict = {}
    with tempfile.TemporaryDirectory(prefix="beam-costs-") as tmp:
        out = Path(tmp) / "out"
        index = [*INDEX, str(tree), "--output", str(out), "-q"]
        fulls = [wall([*index, "--full"]) for _ in range(full_repeat or repeat)]
        figures["full_s"] = statistics.median(fulls)
        log(f"  {label}: full run {figures['full_s']:.1f} s")
        figures["search"] = paired([*SEARCH, str(out), "parse a json config file", "-k", "10"],
                                   repeat)
        for git in (True, False):
            flags = [] if git else ["--no-git"]
            key = "git" if git else "no_git"
            wall([*index, *flags])  # records written by this mode (blob ids, or none)
            figures[f"up_to_date_{key}"] = paired([*index, *flags], repeat)
            change = paired([*index, *flags], repeat, before=lambda: edit_share(tree, 1))
            change["vs_full"] = change["wall_s"] / figures["full_s"]
            figures[f"one_percent_{key}"] = change
            log(f"  {label} ({key}): up to date {figures[f'up_to_date_{key}']['wall_s']:.2f} s, "
                f"1 % {change['wall_s']:.2f} s")
        first = next(p for p in sorted(tree.rglob("*.py")) if ".git" not in p.parts)
        figures["one_file"] = paired(
            [*index], repeat, before=lambda: first.write_text(first.read_text() + "#\n"))
    return figures


def many_files(target: Path, count: int) -> None:
    """`count` small distinct Python files in folders of 100."""
    for i in range(count):
        folder = target / f"d{i // 100:04d}"
        if i % 100 == 0:
            folder.mkdir(parents=True)
        (folder / f"m{i}.py").write_text(f"def f{i}(x):\n    return x + {i}\n")


def remote_flags(url: str, dim: int, batch: int, in_flight: int) -> list[str]:
    """`beam-index index` flags for the fake server at `url`."""
    return ["--embedder", "openai", "--embedding-url", url, "--embedding-model", "fake",
            "--embedding-dim", str(dim), "--batch-size", str(batch), "--embed-concurrency",
            str(in_flight)]


def remote_call_cost(corpus: Path, chunks: int, log: Callable[[str], None]) -> dict:
    """At 100 ms a call, 1024-d, 8 in flight: per-call cost, and the run's wall beyond the fixed
    cost of a run (the same command on one small file) against the latency limit."""
    from beam_pipeline.testing.fake_embeddings import FakeEmbeddingServer

    from .compare import sample_corpus

    latency, dim, in_flight, batch = 0.1, 1024, 8, 64
    # Fixed vectors: computing each text's on this machine would take the client's cores (at
    # 1024-d the server's hashing alone made a call 127 ms instead of ~100).
    with tempfile.TemporaryDirectory(prefix="beam-remote-") as tmp, \
            FakeEmbeddingServer(dim, keep_requests=False, fixed_vectors=True) as server:
        sample, tiny = Path(tmp) / "sample", Path(tmp) / "tiny"
        sample_corpus(corpus, sample, chunks)
        tiny.mkdir()
        (tiny / "one.py").write_text("def one():\n    return 1\n")
        server.latency = latency
        stats_path = Path(tmp) / "stats.json"

        def index(tree: Path, out: str) -> float:
            return wall([*INDEX, str(tree), "--output", str(Path(tmp) / out), "-q",
                         *remote_flags(server.url, dim, batch, in_flight),
                         "--stats-json", str(stats_path)])

        fixed = statistics.median(index(tiny, f"tiny{i}") for i in range(3))
        server.latency = 0.0  # the same run with answers at once: everything but the waiting
        instant = index(sample, "instant")
        server.latency = latency
        seconds = index(sample, "out")
        stats = json.loads(stats_path.read_text())
    counters = stats["counters"]
    # The pipeline's calls (the launcher's probe is an embedder call outside embed_ms).
    per_call = counters["embed_ms"] / 1000 / stats["embed_batches"]
    limit = stats["chunks_embedded"] / (in_flight * batch) * latency
    figures = {"chunks": stats["chunks_embedded"], "calls": stats["embed_batches"],
               "per_call_s": per_call, "per_call_vs_latency": per_call / latency,
               "wall_s": seconds, "latency_limit_s": limit, "fixed_cost_s": fixed,
               "beyond_fixed_vs_limit": (seconds - fixed) / limit, "instant_wall_s": instant,
               "beyond_instant_vs_limit": (seconds - instant) / limit}
    log(f"  remote: {per_call * 1000:.0f} ms a call ({figures['per_call_vs_latency']:.2f}× the "
        f"latency), run {seconds:.1f} s = {fixed:.1f} s fixed + "
        f"{figures['beyond_fixed_vs_limit']:.2f}× the limit of {limit:.1f} s; beyond the same run "
        f"at 0 ms ({instant:.1f} s): {figures['beyond_instant_vs_limit']:.2f}× the limit")
    return figures


def resume_share(corpus: Path, chunks: int, log: Callable[[str], None]) -> dict:
    """Kill at 60 % embedded, run again: the share of chunks the second run embeds."""
    from beam_pipeline.testing.fake_embeddings import FakeEmbeddingServer

    from .compare import sample_corpus

    with tempfile.TemporaryDirectory(prefix="beam-resume-") as tmp, \
            FakeEmbeddingServer(384, keep_requests=False) as server:
        sample = Path(tmp) / "sample"
        sample_corpus(corpus, sample, chunks)
        server.latency = 0.02
        stats_path = Path(tmp) / "stats.json"
        wall([*INDEX, str(sample), "--output", str(Path(tmp) / "dry"), "-q", "--dry-run",
              "--stats-json", str(stats_path)])
        # At least 20 batches, so that 60 % falls between two of them.
        batch = max(1, min(32, json.loads(stats_path.read_text())["chunks_to_embed"] // 20))
        cmd = [*INDEX, str(sample), "--output", str(Path(tmp) / "out"), "-q",
               *remote_flags(server.url, 384, batch, 2), "--stats-json", str(stats_path)]
        killed = subprocess.run(cmd, env={**os.environ, "BEAM_INDEX_FAULT": "embedded:0.6"},
                                capture_output=True, check=False)
        if killed.returncode != -signal.SIGKILL:
            raise SystemExit(f"the run was to be killed, it exited {killed.returncode}")
        seconds = wall(cmd)
        stats = json.loads(stats_path.read_text())
    total = stats["chunks_embedded"] + stats["chunks_reused"]
    figures = {"chunks": total, "journaled": stats["journal_vectors"],
               "embedded_after_kill": stats["chunks_embedded"],
               "share_embedded_again": stats["chunks_embedded"] / total, "resumed_wall_s": seconds}
    log(f"  resume: killed at 60 %, the next run embedded "
        f"{figures['share_embedded_again']:.2f} of {total} chunks")
    return figures


def journal_write_cost(blocks: int = 2000, dim: int = 384, batch: int = 64) -> dict:
    """Seconds to journal `blocks` batches locally, flushed to the OS, and with fsync."""
    import numpy as np

    from beam_pipeline.embedding.journal import JournalSpec, JournalWriter, text_key

    keys = b"".join(text_key(f"chunk {i}") for i in range(batch))
    rows = np.random.default_rng(0).standard_normal((batch, dim), np.float32).tobytes()
    figures = {}
    for fsync in (False, True):
        with tempfile.TemporaryDirectory(prefix="beam-journal-") as tmp:
            writer = JournalWriter(JournalSpec(tmp, fsync=fsync))
            start = time.perf_counter()
            for _ in range(blocks):
                writer.append(keys, rows, dim)
            writer.close()
            figures["fsync" if fsync else "flush"] = (time.perf_counter() - start) / blocks
    return {"batch": batch, "dim": dim, "per_batch_s": figures}


def costs(corpus: Path, repeat: int, scale: int, small_files: int,
          log: Callable[[str], None]) -> dict:
    figures: dict = {}
    with tempfile.TemporaryDirectory(prefix="beam-costs-trees-") as tmp:
        for factor in (1, scale):
            tree = Path(tmp) / f"x{factor}"
            for i in range(1, factor + 1):
                shutil.copytree(corpus, tree / f"copy{i}", symlinks=True)
            git_init(tree)
            figures[f"x{factor}"] = tree_costs(tree, f"x{factor}", repeat, log)
            shutil.rmtree(tree)
        if small_files:
            tree = Path(tmp) / "many"
            many_files(tree, small_files)
            git_init(tree)
            figures["many_files"] = {"files": small_files,
                                     **tree_costs(tree, f"{small_files} files", repeat, log,
                                                  full_repeat=1)}
    figures["remote"] = remote_call_cost(corpus, 10_000, log)
    figures["resume"] = resume_share(corpus, 3000, log)
    figures["journal_write"] = journal_write_cost()
    return figures


def print_costs(figures: dict) -> None:
    print("whole-process wall (median), and × the baseline `python -c \"import numpy, "
          "pyarrow.parquet\"` run alongside")
    header = f"{'tree':16}{'command':26}{'wall_s':>9}{'× baseline':>12}{'× full run':>12}"
    print(header)
    print("-" * len(header))
    for tree, tree_figures in figures.items():
        if not isinstance(tree_figures, dict) or "full_s" not in tree_figures:
            continue
        print(f"{tree:16}{'full run':26}{tree_figures['full_s']:>9.2f}{'':>12}{1:>12.2f}")
        for key, label in (("search", "search"), ("up_to_date_git", "up to date (git)"),
                           ("up_to_date_no_git", "up to date (--no-git)"),
                           ("one_percent_git", "1 % changed (git)"),
                           ("one_percent_no_git", "1 % changed (--no-git)"),
                           ("one_file", "one file changed")):
            item = tree_figures[key]
            print(f"{tree:16}{label:26}{item['wall_s']:>9.2f}{item['vs_baseline']:>12.2f}"
                  f"{item['wall_s'] / tree_figures['full_s']:>12.2f}")
    remote, resume = figures["remote"], figures["resume"]
    print(f"remote, 100 ms, 1024-d, 8 in flight: {remote['per_call_s'] * 1000:.0f} ms a call "
          f"({remote['per_call_vs_latency']:.2f}× the latency); {remote['chunks']} chunks in "
          f"{remote['wall_s']:.1f} s = {remote['fixed_cost_s']:.1f} s fixed (a one-file run) + "
          f"{remote['beyond_fixed_vs_limit']:.2f}× the latency limit "
          f"{remote['latency_limit_s']:.1f} s; the same run at 0 ms took "
          f"{remote['instant_wall_s']:.1f} s, so the waiting cost "
          f"{remote['beyond_instant_vs_limit']:.2f}× the limit")
    print(f"resume: killed at 60 %, the next run embedded {resume['share_embedded_again']:.2f} "
          f"of the chunks ({resume['embedded_after_kill']} of {resume['chunks']})")
    cost = figures["journal_write"]["per_batch_s"]
    print(f"journal, a batch of 64 × 384-d: {cost['flush'] * 1e6:.0f} µs flushed, "
          f"{cost['fsync'] * 1e6:.0f} µs with fsync")
