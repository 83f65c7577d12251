"""Search quality on a real tree nobody here wrote: the installed apache_beam package.

    python -m benchmarks.quality [--embedders hashing,minilm] [--chunkers fixed,syntax]
                                 [--minilm-files N]

The queries (benchmarks/data/quality_queries.json) are natural-language questions and exact
identifiers, each with the file that answers it. For every embedder, chunker and search mode:

- recall@10: the share of queries whose answer file is among the first 10 distinct files;
- MRR@10: the mean of 1 / rank of the answer file among them, 0 when it is absent.

minilm embeds on a sample (`--minilm-files`: the answer files plus the first files in path
order, 600 by default), since the whole package takes it many minutes on two cores; its rows
say so. Prints a table and writes benchmarks/results/quality.json.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

from beam_pipeline.sourcefile import CHUNKERS, DEFAULT_CHUNKER

DATA = Path(__file__).parent / "data" / "quality_queries.json"
MODES = ("semantic", "fts", "hybrid")


def load_queries() -> list[dict]:
    return json.loads(DATA.read_text(encoding="utf-8"))["queries"]


def beam_corpus(target: Path, limit: int | None = None, keep: set[str] = frozenset()) -> int:
    """Copy apache_beam's .py files into target/apache_beam; with `limit`, only the files in
    `keep` and the first ones in path order up to `limit` files. Returns the files copied."""
    import apache_beam

    package = Path(apache_beam.__file__).parent
    files = sorted(p for p in package.rglob("*.py"))
    rels = [str(Path("apache_beam") / p.relative_to(package)) for p in files]
    if limit is not None:
        chosen = set(rels[:max(0, limit - len(keep))]) | set(keep)
        pairs = [(p, r) for p, r in zip(files, rels) if r in chosen]
    else:
        pairs = list(zip(files, rels))
    for path, rel in pairs:
        dest = target / rel
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, dest)
    return len(pairs)


def check_answers(corpus: Path, queries: list[dict]) -> None:
    """Every answer file exists and still defines what its query asks for."""
    for item in queries:
        for rel in item["files"]:
            text = (corpus / rel).read_text(encoding="utf-8")
            if not any(line.lstrip().startswith(item["defines"]) for line in text.splitlines()):
                raise SystemExit(f"{rel} no longer has {item['defines']!r}: update {DATA}")


def rank_of_answer(hits: list[dict], answers: set[str]) -> int | None:
    """1-based rank of the first answer file among the hits' distinct files, or None."""
    files = list(dict.fromkeys(hit["path"] for hit in hits))[:10]
    return next((i for i, path in enumerate(files, 1) if path in answers), None)


def score(index, queries: list[dict], mode: str) -> dict:
    ranks, started = [], time.perf_counter()
    for item in queries:
        hits = index.search(item["query"], 10, mode=mode, files_only=True)
        ranks.append(rank_of_answer(hits, set(item["files"])))
    seconds = time.perf_counter() - started

    def summary(selected):
        found = [rank for rank, _ in selected]
        return {"queries": len(found),
                "recall_at_10": sum(r is not None for r in found) / max(1, len(found)),
                "mrr_at_10": sum(1 / r for r in found if r) / max(1, len(found))}

    pairs = list(zip(ranks, queries))
    return {**summary(pairs),
            "natural": summary([p for p in pairs if p[1]["kind"] == "natural"]),
            "identifier": summary([p for p in pairs if p[1]["kind"] == "identifier"]),
            "ms_per_query": 1000 * seconds / max(1, len(queries)),
            "missed": [q["query"] for r, q in pairs if r is None]}


def measure(embedders: tuple[str, ...], minilm_files: int, chunkers: tuple[str, ...] = CHUNKERS,
            log=print) -> dict:
    from beam_pipeline import IndexSettings, run_index
    from beam_pipeline.index import Index

    queries = load_queries()
    answers = {rel for item in queries for rel in item["files"]}
    rows = []
    with tempfile.TemporaryDirectory(prefix="beam-quality-") as tmp:
        for embedder in embedders:
            sample = minilm_files if embedder == "minilm" else None
            corpus = Path(tmp) / f"corpus-{embedder}"
            files = beam_corpus(corpus, sample, answers)
            check_answers(corpus, queries)
            for chunker in chunkers:
                out = Path(tmp) / f"out-{embedder}-{chunker}"
                started = time.perf_counter()
                stats = run_index(corpus, out, IndexSettings.create(embedder, chunker=chunker),
                                  quiet=True)
                seconds = time.perf_counter() - started
                log(f"  {embedder}/{chunker}: {files} files, {stats.chunks_created} chunks "
                    f"indexed in {seconds:.0f} s")
                index = Index.open(out)
                for mode in MODES:
                    rows.append({"embedder": embedder, "chunker": chunker, "mode": mode,
                                 "files": files, "sample": sample is not None,
                                 "chunks": stats.chunks_created, "index_s": seconds,
                                 "fixed_chunk_files": stats.fixed_chunks_by_reason,
                                 **score(index, queries, mode)})
    return {"queries": len(queries), "rows": rows,
            "targets": {"hybrid recall@10 (hashing)": 0.92, "hybrid MRR@10 (hashing)": 0.6}}


def print_quality(result: dict) -> None:
    print(f"search quality: {result['queries']} queries over apache_beam "
          "(recall@10 / MRR@10; natural-language and identifier queries apart)")
    header = (f"{'embedder':8} {'chunker':7} {'mode':8} {'files':>6} {'recall':>7} {'MRR':>6}"
              f" {'nl rec':>7} {'nl MRR':>7} {'id rec':>7} {'id MRR':>7} {'ms/q':>6}")
    print(header)
    print("-" * len(header))
    for row in result["rows"]:
        files = f"{row['files']}{'*' if row['sample'] else ''}"
        print(f"{row['embedder']:8} {row['chunker']:7} {row['mode']:8} {files:>6} "
              f"{row['recall_at_10']:>7.2f} {row['mrr_at_10']:>6.2f} "
              f"{row['natural']['recall_at_10']:>7.2f} {row['natural']['mrr_at_10']:>7.2f} "
              f"{row['identifier']['recall_at_10']:>7.2f} {row['identifier']['mrr_at_10']:>7.2f}"
              f" {row['ms_per_query']:>6.0f}")
    if any(row["sample"] for row in result["rows"]):
        print("* a sample: the answer files and the first files in path order")
    builds = {(r["embedder"], r["chunker"]): r for r in result["rows"]}
    for (embedder, chunker), row in builds.items():
        print(f"{embedder}/{chunker}: {row['chunks']} chunks, indexed in {row['index_s']:.1f} s"
              + (f"; fixed-size for {row['fixed_chunk_files']}" if row["fixed_chunk_files"]
                 else ""))
    hybrid = next((r for r in result["rows"] if (r["embedder"], r["chunker"], r["mode"])
                   == ("hashing", DEFAULT_CHUNKER, "hybrid")), None)  # the targets' row
    if hybrid is not None:
        for name, value, target in (("recall@10", hybrid["recall_at_10"], 0.92),
                                    ("MRR@10", hybrid["mrr_at_10"], 0.6)):
            print(f"hashing hybrid {name}: {value:.2f} (target ≥ {target}) "
                  f"{'met' if value >= target else 'MISSED'}")


def main(argv: list[str] | None = None) -> int:
    from benchmarks.run import write_report

    parser = argparse.ArgumentParser(prog="python -m benchmarks.quality", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--embedders", default="hashing", metavar="E,E,…",
                        help="embedders to measure (default: %(default)s; minilm needs the "
                        "minilm extra)")
    parser.add_argument("--chunkers", default=",".join(CHUNKERS), metavar="C,C,…",
                        help="chunkers to measure (default: %(default)s)")
    parser.add_argument("--minilm-files", type=int, default=600, metavar="N")
    parser.add_argument("--json", type=Path, default=Path("benchmarks/results/quality.json"))
    args = parser.parse_args(argv)
    result = measure(tuple(args.embedders.split(",")), args.minilm_files,
                     tuple(args.chunkers.split(",")), log=lambda line: print(line, file=sys.stderr))
    print_quality(result)
    write_report(args.json, "benchmarks.quality", argv, result)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
