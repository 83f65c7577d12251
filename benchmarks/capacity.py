"""What a large run costs, per file: the figures behind README "Running at scale".

    python -m benchmarks.capacity [--corpus PATH] [--limit N] [--json PATH] [--skip-requests]

On the corpus (default: the standard library's .py files, as benchmarks.run) it measures:
- CPU seconds per 1,000 files for each stage, timed on the stage's own functions (discover,
  read+chunk, embed with `hashing`, assemble, write), and Beam's own share: a whole in-memory
  run shaped like a distributed worker (no spill, no embedding helpers) minus its start-up and
  the stages;
- bytes each chunk puts through the per-file grouping when vectors travel in the shuffle (as on
  a distributed runner), encoded with Beam's own coder;
- object-store requests per file for a full build and a 1 % re-index with SOURCE and OUT on S3
  (moto on 127.0.0.1, counting requests), run on the distributed path: the PortableRunner with
  an EXTERNAL worker pool (event files for progress, the cancel flag polled on S3);
- staging space per chunk;
- the launcher's own share at 1,000,000 files, on synthetic lists: planning, merging the files
  table, and how many shards a 1 % change rewrites when it is spread out or clustered;
- the spill choice for a local mode with an object-store OUT: spill files in a local scratch
  folder against vectors through the shuffle (medians of 3).

Prints a table per part and writes JSON (default benchmarks/results/capacity.json).
"""

from __future__ import annotations

import argparse
import collections
import logging
import os
import random
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
from pathlib import Path

from beam_pipeline.cli import configure_logging

from .run import stdlib_corpus, write_report

DIM = 384
BATCH = 64


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def stage_cpu(corpus: Path) -> dict:
    """CPU seconds of each stage's own functions over the whole corpus."""
    import numpy as np

    from beam_pipeline.chunking import cut_at, spans_of
    from beam_pipeline.chunking.cut import load_chunks
    from beam_pipeline.embedders import HashingEmbedder
    from beam_pipeline.layout.records import FileRecord
    from beam_pipeline.source.discover import iter_source_files
    from beam_pipeline.source.text import ChunkerConfig, FileSkipped, load_text
    from beam_pipeline.store.rows import DEFAULT_ROWS_PER_SHARD, build_rows, write_shard

    config = ChunkerConfig(str(corpus), 1000, 150, 1 << 20)
    seconds = {}
    start = _cpu()
    entries = list(iter_source_files(corpus))
    seconds["discover (local walk)"] = _cpu() - start
    start = _cpu()
    files = []
    for entry in entries:
        try:
            digest, _, chunks = load_chunks(config, entry.path)
        except (OSError, FileSkipped):
            continue
        files.append((FileRecord(entry.path, entry.size, entry.mtime_ns, digest, len(chunks),
                                 spans=spans_of(chunks)), [c.text for c in chunks]))
    seconds["read + hash + chunk"] = _cpu() - start
    embedder = HashingEmbedder(DIM)
    embedder.load()
    texts = [text for _, chunk_texts in files for text in chunk_texts]
    start = _cpu()
    vectors = np.concatenate([embedder.embed(texts[i:i + BATCH])
                              for i in range(0, len(texts), BATCH)]) if texts else []
    seconds["embed (hashing)"] = _cpu() - start
    start = _cpu()
    batches, offset = [], 0
    for record, chunk_texts in files:
        _, decoded = load_text(config, record.path)  # assembly re-reads the file
        chunks = cut_at(decoded.text, record.spans)
        n = len(chunk_texts)
        if n:
            batches.append(build_rows(record, chunks, vectors[offset:offset + n], DIM))
        offset += n
    seconds["assemble (re-read, rows)"] = _cpu() - start
    with tempfile.TemporaryDirectory(prefix="beam-capacity-write-") as tmp:
        start = _cpu()
        shard, rows, sizes = [], 0, 0
        for batch in batches:
            shard.append(batch)
            rows += batch.num_rows
            if rows >= DEFAULT_ROWS_PER_SHARD:
                sizes += write_shard(shard, tmp, DIM)["bytes"]
                shard, rows = [], 0
        if shard:
            sizes += write_shard(shard, tmp, DIM)["bytes"]
        seconds["write shards (zstd)"] = _cpu() - start
    return {"files": len(files), "chunks": len(texts), "bytes": sum(r.size for r, _ in files),
            "shard_bytes": sizes, "seconds": seconds}


def _child_cpu(cmd: list[str]) -> tuple[float, float]:
    """(CPU seconds, wall seconds) of a child process and its children."""
    start = time.perf_counter()
    child = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    stderr = child.stderr.read()
    _, status, usage = os.wait4(child.pid, 0)
    if os.waitstatus_to_exitcode(status) != 0:
        sys.stderr.write(stderr.decode(errors="replace"))
        raise SystemExit(f"failed: {' '.join(cmd)}")
    return usage.ru_utime + usage.ru_stime, time.perf_counter() - start


def beam_share(corpus: Path, stages: dict) -> dict:
    """A whole run shaped like a distributed worker, minus start-up and the stages' own CPU."""
    startup, _ = _child_cpu([sys.executable, "-c",
                             "import apache_beam, beam_pipeline.run.pipeline, beam_pipeline.cli"])
    with tempfile.TemporaryDirectory(prefix="beam-capacity-run-") as tmp:
        total, wall = _child_cpu([sys.executable, "-m", "beam_pipeline", "index", str(corpus),
                                  "-o", str(Path(tmp) / "out"), "-q", "--no-spill",
                                  "--embed-processes", "0"])
    own = sum(stages["seconds"].values())
    return {"run_cpu_s": total, "run_wall_s": wall, "startup_cpu_s": startup,
            "beam_cpu_s": max(0.0, total - startup - own)}


def shuffle_bytes(corpus: Path) -> dict:
    """Bytes through the per-file grouping with vectors in the shuffle, per chunk."""
    from apache_beam.coders.coders import FastPrimitivesCoder

    from beam_pipeline.chunking import spans_of
    from beam_pipeline.chunking.cut import load_chunks
    from beam_pipeline.layout.records import FileRecord
    from beam_pipeline.source.discover import iter_source_files
    from beam_pipeline.source.text import ChunkerConfig, FileSkipped

    coder = FastPrimitivesCoder()
    config = ChunkerConfig(str(corpus), 1000, 150, 1 << 20)
    record_bytes = block_bytes = entry_bytes = chunks = 0
    pending: list[tuple[str, int]] = []
    row = b"\0" * (DIM * 4)

    def flush(batch):
        nonlocal block_bytes
        per_file = collections.defaultdict(list)
        for path, index in batch:
            per_file[path].append(index)
        for path, indices in per_file.items():
            # Inside CoGroupByKey a value travels tagged with its input's index.
            block_bytes += len(coder.encode((path, (1, (indices, row * len(indices))))))

    for entry in iter_source_files(corpus):
        entry_bytes += len(coder.encode(entry))
        try:
            digest, _, cut = load_chunks(config, entry.path)
        except (OSError, FileSkipped):
            continue
        record = FileRecord(entry.path, entry.size, entry.mtime_ns, digest, len(cut),
                            spans=spans_of(cut))
        record_bytes += len(coder.encode((entry.path, (0, record))))
        chunks += len(cut)
        pending.extend((entry.path, c.index) for c in cut)
        while len(pending) >= BATCH:
            flush(pending[:BATCH])
            del pending[:BATCH]
    flush(pending)
    total = record_bytes + block_bytes + entry_bytes
    return {"chunks": chunks, "vector_blocks_bytes": block_bytes,
            "file_records_bytes": record_bytes, "file_list_bytes": entry_bytes,
            "bytes_per_chunk": total / chunks if chunks else 0.0}


class CountingS3:
    """moto's S3 server on 127.0.0.1, counting requests by kind and by what they touch."""

    def __init__(self):
        from moto.moto_server.werkzeug_app import (
            DomainDispatcherApplication,
            MotoRequestHandler,
            create_backend_app,
        )
        from werkzeug.serving import make_server

        logging.getLogger("werkzeug").setLevel(logging.WARNING)  # a line per request otherwise
        self.counts: collections.Counter = collections.Counter()
        lock = threading.Lock()
        counts = self.counts

        def counting(environ, start_response):
            with lock:
                counts[_request_kind(environ)] += 1
            return app(environ, start_response)

        app = DomainDispatcherApplication(create_backend_app)
        self._server = make_server("127.0.0.1", 0, counting, True,
                                   request_handler=MotoRequestHandler)
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self.flags = [f"--s3_endpoint_url={self.url}", "--s3_access_key_id=testing",
                      "--s3_secret_access_key=testing", "--s3_region_name=us-east-1"]

    def take(self) -> dict:
        counts = dict(self.counts)
        self.counts.clear()
        return counts

    def stop(self) -> None:
        self._server.shutdown()


def _request_kind(environ) -> str:
    method, path = environ["REQUEST_METHOD"], environ.get("PATH_INFO", "")
    query = urllib.parse.unquote(environ.get("QUERY_STRING", ""))
    if "_events" in path or "_events" in query:
        what = "progress"
    elif path.endswith("/_cancel"):
        what = "cancel"
    else:
        what = "data"
    if method == "GET" and "list-type" in query:
        kind = "LIST"
    elif method == "PUT" and environ.get("HTTP_X_AMZ_COPY_SOURCE"):
        kind = "COPY"
    elif method == "POST" and "delete" in query:
        kind = "DELETE"
    elif method in ("POST", "PUT"):
        kind = "PUT"  # uploads: Beam's multipart start / part / complete
    else:
        kind = method
    return f"{what} {kind}"


def requests_per_file(corpus: Path, limit: int) -> dict:
    """A full build and a 1 % re-index of the first `limit` files, SOURCE and OUT on S3, on the
    distributed path (one SDK worker: the Python job service starts one per job)."""
    import boto3

    s3 = CountingS3()
    client = boto3.client("s3", endpoint_url=s3.url, aws_access_key_id="testing",
                          aws_secret_access_key="testing", region_name="us-east-1")
    client.create_bucket(Bucket="capacity")
    job_port, pool_port = _free_port(), _free_port()
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ.get('PATH', '')}"}
    job = subprocess.Popen([sys.executable, "-m",
                            "apache_beam.runners.portability.local_job_service_main",
                            f"--port={job_port}"], stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL)
    pool = subprocess.Popen([sys.executable, "-m", "apache_beam.runners.worker.worker_pool_main",
                             f"--service_port={pool_port}"], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    flags = ["--runner=PortableRunner", f"--job_endpoint=localhost:{job_port}",
             "--environment_type=EXTERNAL", f"--environment_config=localhost:{pool_port}",
             *s3.flags]
    results = {}
    try:
        for port in (job_port, pool_port):
            _wait_port(port)
        files = [p for p in sorted(corpus.rglob("*")) if p.is_file()][:limit]
        for path in files:
            client.put_object(Bucket="capacity", Key=f"repo/{path.relative_to(corpus)}",
                              Body=path.read_bytes())
        s3.take()
        for label in ("full build", "re-index, 1% changed"):
            if label.startswith("re-index"):
                for path in files[::100]:
                    client.put_object(Bucket="capacity", Key=f"repo/{path.relative_to(corpus)}",
                                      Body=path.read_bytes() + b"\n# edited\n")
                s3.take()
            start = time.perf_counter()
            cpu, _ = _child_cpu([sys.executable, "-m", "beam_pipeline", "index",
                                 "s3://capacity/repo", "-o", "s3://capacity/index", "-q",
                                 *flags])
            wall = time.perf_counter() - start
            results[label] = {"files": len(files), "wall_s": wall, "launcher_cpu_s": cpu,
                              "requests": s3.take()}
    finally:
        pool.kill()
        job.kill()
        s3.stop()
    return results


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _wait_port(port: int, timeout: float = 60) -> None:
    import socket

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.2)
    raise SystemExit(f"nothing listens on port {port}")


def launcher_at_scale(files: int = 1_000_000, per_shard_files: int = 780) -> dict:
    """The launcher's planning and files-table merge for `files` files (synthetic lists), and
    the shards a 1 % change rewrites."""
    import pyarrow as pa

    from beam_pipeline.layout.schema import FILES_SCHEMA
    from beam_pipeline.source.discover import FileEntry
    from beam_pipeline.store.reindex import Previous, merge_files_table, plan_changes
    from beam_pipeline.store.write import write_table

    paths = [f"src/module{i // 1000:04d}/file{i % 1000:03d}.py" for i in range(files)]
    changed = set(range(0, files, 100))
    out = {}
    with tempfile.TemporaryDirectory(prefix="beam-capacity-plan-") as tmp:
        tmp = Path(tmp)
        with open(tmp / "discovered.jsonl", "w", encoding="ascii") as fh:
            fh.writelines(FileEntry(path, 1000, 2 if i in changed else 1).to_json() + "\n"
                          for i, path in enumerate(paths))
        table = pa.table({"path": paths, "size": [1000] * files, "mtime_ns": [1] * files,
                          "file_hash": ["0" * 64] * files, "total_chunks": [3] * files,
                          "status": ["indexed"] * files, "error": [None] * files,
                          "git_blob": [None] * files}, schema=FILES_SCHEMA)
        (tmp / "prev").mkdir()
        write_table(table, str(tmp / "prev" / "files.parquet"))
        start = time.perf_counter()
        previous = Previous("prev", str(tmp / "prev"), {"shards": []},
                            {p: (1000, 1, "indexed", "0" * 64, None) for p in paths})
        out["load previous files (s)"] = time.perf_counter() - start
        start = time.perf_counter()
        plan = plan_changes(tmp / "discovered.jsonl", tmp / "todo.jsonl", previous)
        out["plan 1% change (s)"] = time.perf_counter() - start
        staging = tmp / "staging"
        staging.mkdir()
        fresh = table.take(pa.array(sorted(changed)))
        write_table(fresh, str(staging / "files.parquet"))
        start = time.perf_counter()
        merge_files_table(str(staging), previous, plan)
        out["merge files table (s)"] = time.perf_counter() - start
    out.update(store_listing(paths))
    shards = -(-files // per_shard_files)
    rng = random.Random(0)
    spread = {rng.randrange(files) // per_shard_files for _ in range(files // 100)}
    clustered = {i // per_shard_files for i in range(files // 100)}
    out["shards"] = shards
    out["shards rewritten, 1% spread"] = len(spread)
    out["shards rewritten, 1% clustered"] = len(clustered)
    return out


def store_listing(paths: list[str]) -> dict:
    """Discovery over an object store's listing of `paths` (the listing itself is the store's:
    1,000 keys a LIST request on S3): the walk's time and the memory it holds."""
    import tracemalloc

    from beam_pipeline.source import discover, storage

    listing = [(f"s3://bucket/repo/{p}", 1000, 1.7e9) for p in paths]
    real = storage.listing
    storage.listing = lambda prefix: listing  # the store's answer, without a million objects
    try:
        start = time.perf_counter()
        count = sum(1 for _ in discover.iter_source_files("s3://bucket/repo"))
        seconds = time.perf_counter() - start
        tracemalloc.start()  # a second walk: tracing slows it down
        sum(1 for _ in discover.iter_source_files("s3://bucket/repo"))
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    finally:
        storage.listing = real
    return {"walk of the store's listing (s)": seconds, "files listed": count,
            "walk's peak memory (MB)": peak / 1e6}


def carry_throughput(corpus: Path) -> dict:
    """MB/s of carrying rows forward when a shard must be rewritten (read, filter, write)."""
    from beam_pipeline import IndexSettings, run_index
    from beam_pipeline.search import Index
    from beam_pipeline.store.reindex import carry_rows, load_previous

    with tempfile.TemporaryDirectory(prefix="beam-capacity-carry-") as tmp:
        out = Path(tmp) / "out"
        run_index(corpus, out, IndexSettings.create())
        previous = load_previous(str(out))
        index = Index.open(out)
        size = sum(s["bytes"] for s in index.manifest["shards"])
        keep = set(list(previous.files)[1::2])  # every other file: every shard is rewritten
        staging = Path(tmp) / "staging"
        staging.mkdir()
        start = time.perf_counter()
        carry_rows(previous, keep, str(staging))
        seconds = time.perf_counter() - start
    return {"shard_MB": size / 1e6, "seconds": seconds, "MB_per_s": size / 1e6 / seconds}


def spill_choice(corpus: Path, repeat: int) -> dict:
    """Local in-memory runs into an S3 OUT: spill files in local scratch vs the shuffle."""
    s3 = CountingS3()
    import boto3

    boto3.client("s3", endpoint_url=s3.url, aws_access_key_id="testing",
                 aws_secret_access_key="testing", region_name="us-east-1"
                 ).create_bucket(Bucket="spill")
    results = {}
    try:
        for label, args in (("spill files in local scratch", []), ("the shuffle", ["--no-spill"])):
            runs = []
            for i in range(repeat):
                start = time.perf_counter()
                cmd = [sys.executable, "-m", "beam_pipeline", "index", str(corpus), "-o",
                       f"s3://spill/{label.split()[0]}{i}", "-q", *args, *s3.flags]
                child = subprocess.Popen(cmd, stdout=subprocess.DEVNULL,
                                         stderr=subprocess.DEVNULL)
                _, status, usage = os.wait4(child.pid, 0)
                if os.waitstatus_to_exitcode(status) != 0:
                    raise SystemExit(f"failed: {' '.join(cmd)}")
                runs.append({"wall_s": time.perf_counter() - start,
                             "peak_rss_MB": usage.ru_maxrss / 1024})
            results[label] = {"runs": runs, "wall_s": statistics.median(r["wall_s"] for r in runs),
                              "peak_rss_MB": statistics.median(r["peak_rss_MB"] for r in runs)}
    finally:
        s3.stop()
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.capacity", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--corpus", type=Path, help="folder to measure (default: the stdlib)")
    parser.add_argument("--limit", type=int, help="stdlib corpus: only the first N files")
    parser.add_argument("--repeat", type=int, default=3, help="runs of each spill choice")
    parser.add_argument("--request-files", type=int, default=300, metavar="N",
                        help="files of the corpus the request count indexes on S3 "
                        "(default: %(default)s)")
    parser.add_argument("--launcher-files", type=int, default=1_000_000, metavar="N",
                        help="files of the synthetic lists for the launcher's share "
                        "(default: %(default)s)")
    parser.add_argument("--skip-requests", action="store_true",
                        help="skip the object-store request count (needs moto[server])")
    parser.add_argument("--json", type=Path, default=Path("benchmarks/results/capacity.json"))
    args = parser.parse_args(argv)
    configure_logging(verbose=False)
    with tempfile.TemporaryDirectory(prefix="beam-capacity-") as tmp:
        corpus = Path(tmp) / "corpus"
        if args.corpus:
            shutil.copytree(args.corpus, corpus, symlinks=True)
        else:
            stdlib_corpus(corpus, args.limit)
        # Child processes first: a fork starts with this process's memory, which the
        # in-process parts below grow (the 1,000,000-file lists).
        print("spill choice …", file=sys.stderr)
        spill = spill_choice(corpus, args.repeat)
        requests = None
        if not args.skip_requests:
            print("object-store requests …", file=sys.stderr)
            requests = requests_per_file(corpus, args.request_files)
        print("stage CPU …", file=sys.stderr)
        stages = stage_cpu(corpus)
        beam = beam_share(corpus, stages)
        shuffle = shuffle_bytes(corpus)
        print(f"launcher at {args.launcher_files:,} files …", file=sys.stderr)
        launcher = launcher_at_scale(args.launcher_files)
        carry = carry_throughput(corpus)
    per_k = 1000 / stages["files"]
    print(f"corpus: {stages['files']} files, {stages['chunks']} chunks, "
          f"{stages['bytes'] / 1e6:.1f} MB; shards {stages['shard_bytes'] / 1e6:.1f} MB")
    print(f"{'stage':32}{'CPU s':>10}{'CPU s / 1,000 files':>22}")
    for name, seconds in {**stages["seconds"], "Beam's own work": beam["beam_cpu_s"]}.items():
        print(f"{name:32}{seconds:>10.2f}{seconds * per_k:>22.2f}")
    print(f"whole run (distributed shape): {beam['run_cpu_s']:.1f} CPU s, {beam['run_wall_s']:.1f}"
          f" s wall, of which start-up {beam['startup_cpu_s']:.1f} CPU s")
    print(f"grouping, vectors in the shuffle: {shuffle['bytes_per_chunk']:.0f} bytes per chunk")
    for name, value in launcher.items():
        shown = f"{value:.2f}" if isinstance(value, float) else value
        print(f"launcher, {args.launcher_files:,} files: {name}: {shown}")
    print(f"carrying rows forward (rewrite): {carry['MB_per_s']:.0f} MB/s")
    for label, item in spill.items():
        print(f"local mode, S3 OUT, vectors via {label}: {item['wall_s']:.1f} s, "
              f"peak RSS {item['peak_rss_MB']:.0f} MB")
    for label, item in (requests or {}).items():
        data = {k: v for k, v in item["requests"].items() if k.startswith("data ")}
        side = {k: v for k, v in item["requests"].items() if not k.startswith("data ")}
        per_file = ", ".join(f"{k[5:]} {v / item['files']:.2f}" for k, v in sorted(data.items()))
        print(f"{label}: {item['files']} files in {item['wall_s']:.1f} s; requests per file: "
              f"{per_file}; side channels in all: {dict(sorted(side.items()))}")
    write_report(args.json, "benchmarks.capacity", argv, {
        "stages": stages, "beam": beam, "shuffle": shuffle, "launcher": {"files": args.launcher_files, **launcher},
        "carry": carry, "spill": spill, "requests": requests})
    return 0


if __name__ == "__main__":
    sys.exit(main())
