"""Side by side on the same work: the sequential and thread-pool designs beam_pipeline
replaces, and the Beam pipeline (benchmarks/shapes.py runs each in its own process).

Embedders: `hashing` (compute-bound), the fake OpenAI-compatible server at 0 ms and 100 ms per
call (latency-bound; it runs in this process, the shapes reach it over 127.0.0.1) and `minilm`
(model-bound) on a 2,000-chunk sample. Each (embedder, corpus) also gets the embedder alone on
the same chunks, so every row shows end-to-end chunks/s as a share of the embedder's own.
"""

from __future__ import annotations

import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from beam_pipeline.chunking import DEFAULT_CHUNK_SIZE, default_overlap
from beam_pipeline.chunking.cut import load_chunks
from beam_pipeline.source.discover import DEFAULT_MAX_FILE_SIZE
from beam_pipeline.source.text import DEFAULT_CHUNKER, ChunkerConfig, FileSkipped

THREADS = 8
BATCH = 64
MULTI_PROCESSING = ("--direct_running_mode=multi_processing", f"--direct_num_workers={os.cpu_count() or 2}")
FIGURES = ("files", "chunks", "MB", "wall_s", "files_per_s", "chunks_per_s", "MB_per_s",
           "peak_rss_MB", "first_progress_s")


@dataclass(frozen=True)
class Case:
    embedder: str  # hashing | fake0 | fake100 | minilm
    corpus: str  # stdlib | sample200 | minilm2000
    shape: str  # sequential | threadpool | beam | beam-mp
    repeat: int = 3

    @property
    def name(self) -> str:
        return f"{self.embedder:8} {self.corpus:10} {self.shape}"


EMBEDDERS = ("hashing", "fake0", "fake100", "minilm")


def cases(repeat: int, embedders: tuple[str, ...] = EMBEDDERS, full: bool = False) -> list[Case]:
    """The comparison matrix, within ten minutes: medians of `repeat` where the machine's noise
    matters (the whole corpus, compute-bound); one run where a run is long and steady
    (latency- or model-bound) or only illustrates. `full` adds minilm's thread pool (90 s)."""
    fake100 = Case("fake100", "sample200", "sequential", 1)
    out = [
        Case("hashing", "sample200", "sequential", 1), Case("hashing", "sample200", "beam", 1),
        Case("hashing", "stdlib", "threadpool", repeat), Case("hashing", "stdlib", "beam", repeat),
        Case("hashing", "stdlib", "beam-mp", repeat),
        Case("fake0", "sample200", "sequential", 1), Case("fake0", "sample200", "beam", 1),
        Case("fake0", "stdlib", "threadpool", repeat), Case("fake0", "stdlib", "beam", repeat),
        fake100, Case("fake100", "sample200", "beam", repeat),
        Case("fake100", "stdlib", "threadpool", 1), Case("fake100", "stdlib", "beam", repeat),
        Case("minilm", "minilm2000", "beam", 1),
    ]
    if full:
        out.append(Case("minilm", "minilm2000", "threadpool", 1))
    return [case for case in out if case.embedder in embedders]


def first_files_holding(corpus: Path, chunks: int) -> list[str]:
    """The first files (sorted, relative paths) that hold at least `chunks` chunks together."""
    size = DEFAULT_CHUNK_SIZE
    config = ChunkerConfig(str(corpus), size, default_overlap(size), DEFAULT_MAX_FILE_SIZE)
    chosen, total = [], 0
    for rel in sorted(str(p.relative_to(corpus)) for p in corpus.rglob("*") if p.is_file()):
        try:
            n = len(load_chunks(config, rel)[2])
        except (OSError, FileSkipped):
            continue
        if n:
            chosen.append(rel)
            total += n
        if total >= chunks:
            break
    return chosen


def sample_corpus(source: Path, target: Path, chunks: int) -> None:
    """Copy the first whole files of `source` that hold at least `chunks` chunks."""
    for rel in first_files_holding(source, chunks):
        (target / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source / rel, target / rel)


def file_lists(corpus: Path, target: Path) -> dict[str, Path]:
    """The corpora as lists of relative paths: all files, a fixed 200-file sample (every n-th
    file) and the first files that hold 2,000 chunks (for the model-bound embedder)."""
    files = sorted(str(p.relative_to(corpus)) for p in corpus.rglob("*") if p.is_file())
    step = max(1, len(files) // 200)
    lists = {"stdlib": files, "sample200": files[::step][:200],
             "minilm2000": first_files_holding(corpus, 2000)}
    paths = {}
    for name, rels in lists.items():
        paths[name] = target / f"{name}.txt"
        paths[name].write_text("\n".join(rels) + "\n", encoding="utf-8")
    return paths


_ALONE = """
import json, sys, time
from pathlib import Path
from beam_pipeline.chunking.cut import load_chunks
from beam_pipeline.source.text import ChunkerConfig, FileSkipped
from beam_pipeline.chunking import DEFAULT_CHUNK_SIZE, default_overlap
from benchmarks.shapes import make_embedder
start = time.perf_counter()
embedder = make_embedder(sys.argv[1], sys.argv[2] or None)
embedder.load()
config = ChunkerConfig(sys.argv[3], DEFAULT_CHUNK_SIZE, default_overlap(DEFAULT_CHUNK_SIZE), 1 << 20,
                       chunker=sys.argv[6])
texts = []
for rel in Path(sys.argv[4]).read_text().splitlines():
    try:
        texts += [c.text for c in load_chunks(config, rel)[2]]
    except (OSError, FileSkipped):
        pass
loaded = time.perf_counter()
batch = int(sys.argv[5])
for i in range(0, len(texts), batch):
    embedder.embed(texts[i:i + batch])
end = time.perf_counter()
print(json.dumps({"chunks": len(texts), "wall_s": end - start, "embed_s": end - loaded}))
"""


def _embedder_args(embedder: str, url: str | None) -> list[str]:
    if embedder.startswith("fake"):
        return ["--embedder", "openai", "--embedding-url", url]
    return ["--embedder", embedder]


def run_shape(case: Case, corpus: Path, lists: dict[str, Path], url: str | None) -> dict:
    with tempfile.TemporaryDirectory(prefix="beam-shape-") as tmp:
        shape = "beam" if case.shape.startswith("beam") else case.shape
        started = time.time()
        cmd = [sys.executable, "-m", "benchmarks.shapes", shape, str(corpus),
               str(Path(tmp) / "out"), "--files", str(lists[case.corpus]),
               *_embedder_args(case.embedder, url), "--threads", str(THREADS),
               "--batch-size", str(BATCH), "--started", repr(started),
               *(MULTI_PROCESSING if case.shape == "beam-mp" else ())]
        with open(Path(tmp) / "stderr", "w+b") as err:
            child = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=err,
                                     env={**os.environ, "PYTHONPATH": _pythonpath()})
            out = child.stdout.read()  # one JSON line
            child.stdout.close()
            _, status, usage = os.wait4(child.pid, 0)  # the child's own peak RSS
            wall = time.time() - started
            if os.waitstatus_to_exitcode(status):
                err.seek(0)
                sys.stderr.write(err.read().decode(errors="replace"))
                raise SystemExit(f"{case.name}: exit status {os.waitstatus_to_exitcode(status)}")
    result = json.loads(out.decode().splitlines()[-1])
    rss = usage.ru_maxrss / 1024
    mb = result["bytes"] / 1e6
    return {"files": result["files"], "chunks": result["chunks"], "MB": mb, "wall_s": wall,
            "files_per_s": result["files"] / wall, "chunks_per_s": result["chunks"] / wall,
            "MB_per_s": mb / wall, "peak_rss_MB": rss,
            "first_progress_s": result["first_progress_s"]}


def _pythonpath() -> str:
    root = str(Path(__file__).resolve().parent.parent)
    return os.pathsep.join(filter(None, [root, os.environ.get("PYTHONPATH", "")]))


def embedder_alone(embedder: str, corpus: Path, files: Path, url: str | None) -> dict:
    out = subprocess.run(
        [sys.executable, "-c", _ALONE, "openai" if embedder.startswith("fake") else embedder,
         url or "", str(corpus), str(files), str(BATCH), DEFAULT_CHUNKER],
        check=True, capture_output=True, text=True, env={**os.environ, "PYTHONPATH": _pythonpath()})
    result = json.loads(out.stdout.splitlines()[-1])
    return {**result, "chunks_per_s": result["chunks"] / result["wall_s"]}


def compare(corpus: Path, repeat: int, log=print, embedders: tuple[str, ...] = EMBEDDERS,
            full: bool = False) -> dict:
    """Run the matrix; returns {"rows": [...], "alone": {...}, "ratios": {...}}."""
    from beam_pipeline.testing.fake_embeddings import FakeEmbeddingServer

    rows, alone = [], {}
    with tempfile.TemporaryDirectory(prefix="beam-lists-") as tmp, \
            FakeEmbeddingServer(384, keep_requests=False) as server:
        lists = file_lists(corpus, Path(tmp))
        for case in cases(repeat, embedders, full):
            url = server.url if case.embedder.startswith("fake") else None
            latency = 0.0
            if case.embedder.startswith("fake"):
                latency = server.latency = int(case.embedder.removeprefix("fake")) / 1000
            key = f"{case.embedder}/{case.corpus}"
            # One thread at 100 ms a call would take a minute to say what latency / batch says.
            if key not in alone and not latency:
                alone[key] = embedder_alone(case.embedder, corpus, lists[case.corpus], url)
            runs = []
            for i in range(case.repeat):
                runs.append(run_shape(case, corpus, lists, url))
                log(f"  {case.name} run {i + 1}/{case.repeat}: {runs[-1]['wall_s']:.1f} s")
            median = {f: statistics.median(r[f] for r in runs if r[f] is not None)
                      for f in FIGURES if any(r[f] is not None for r in runs)}
            if key in alone:
                median["vs_embedder_alone"] = median["chunks_per_s"] / alone[key]["chunks_per_s"]
            if latency and case.shape.startswith("beam"):
                # What `THREADS` requests of `BATCH` chunks in flight could do at best.
                median["of_limit"] = median["chunks_per_s"] / (THREADS * BATCH / latency)
            rows.append({"embedder": case.embedder, "corpus": case.corpus, "shape": case.shape,
                         "repeat": case.repeat, "median": median, "runs": runs})
    return {"threads": THREADS, "batch_size": BATCH, "full": full, "rows": rows, "alone": alone,
            "ratios": ratios(rows)}


def _fps(rows: list[dict], embedder: str, corpus: str, shape: str) -> float | None:
    for row in rows:
        if (row["embedder"], row["corpus"], row["shape"]) == (embedder, corpus, shape):
            return row["median"]["files_per_s"]
    return None


def ratios(rows: list[dict]) -> dict:
    """The targets' ratios (files/s), each with its target."""
    def ratio(a, b):
        return a / b if a and b else None

    best_beam = max(filter(None, (_fps(rows, "hashing", "stdlib", s) for s in ("beam", "beam-mp"))),
                    default=None)
    minilm = next((r for r in rows if r["embedder"] == "minilm" and r["shape"] == "beam"), None)
    hashing = next((r for r in rows if (r["embedder"], r["corpus"], r["shape"])
                    == ("hashing", "stdlib", "beam")), None)
    return {
        "fake100: beam / sequential (200-file sample)": {
            "value": ratio(_fps(rows, "fake100", "sample200", "beam"),
                           _fps(rows, "fake100", "sample200", "sequential")), "target": 3.0},
        "fake100: beam / threadpool (stdlib)": {
            "value": ratio(_fps(rows, "fake100", "stdlib", "beam"),
                           _fps(rows, "fake100", "stdlib", "threadpool")), "target": 1.5},
        "hashing: best local beam / threadpool (stdlib)": {
            "value": ratio(best_beam, _fps(rows, "hashing", "stdlib", "threadpool")),
            "target": 1.0},
        "minilm: beam / embedder alone (chunks/s)": {
            "value": minilm["median"]["vs_embedder_alone"] if minilm else None, "target": 0.9},
        "hashing: beam / embedder alone (chunks/s)": {
            "value": hashing["median"]["vs_embedder_alone"] if hashing else None, "target": 0.8},
    }
