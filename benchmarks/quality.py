"""Search quality on real trees nobody here wrote: the installed apache_beam package and the
Python standard library of the interpreter that runs it.

    python -m benchmarks.quality [--trees apache_beam,stdlib] [--embedders hashing,static,minilm]
                                 [--chunkers fixed,syntax] [--fusions rrf,score]
                                 [--minilm-files N] [--work DIR]

The queries (benchmarks/data/quality_queries.json and stdlib_quality_queries.json: 120, 89 of
them natural-language questions that never name what they look for, the rest identifiers)
each name the file that answers it and what that file must still define (checked before every
run). For every tree, embedder, chunker and search mode (and fusion, for hybrid):

- recall@10: the share of queries whose answer file is among the first 10 distinct files;
- MRR@10: the mean of 1 / rank of the answer file among them, 0 when it is absent;

apart for natural-language and identifier queries, and over all trees; with each index's
build time and peak RSS (the `beam-index index` process alone).

`static+words` is the static embedder without identifier splitting (only the Python API
selects it; it is here to measure what splitting is worth). minilm embeds on a sample
(`--minilm-files`: the answer files plus the first files in path order, 600 by default), since
a whole tree takes it an hour on two cores; its rows say so and stay out of the all-trees
summary. Prints tables and writes benchmarks/results/quality.json.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import sysconfig
import tempfile
import time
from collections.abc import Callable, Collection
from dataclasses import dataclass
from pathlib import Path

from beam_pipeline.embedders import DEFAULT_EMBEDDER
from beam_pipeline.search import FUSIONS
from beam_pipeline.source.text import CHUNKERS, DEFAULT_CHUNKER

DATA = Path(__file__).parent / "data"
MODES = ("semantic", "fts", "hybrid")
MEASURED = f"hashing,{DEFAULT_EMBEDDER}"  # the default against the one it replaced
UNSPLIT = "static+words"
# Issue 15's targets for the default search, set on the apache_beam questions.
TARGET_TREE, TARGET_RECALL, TARGET_MRR = "apache_beam", 0.92, 0.6


@dataclass(frozen=True)
class Tree:
    """A real tree nobody here wrote, and the questions about it."""

    name: str
    queries: Path
    root: Callable[[], Path]  # the installed folder the corpus copies
    prefix: str  # the folder the copy sits in inside the corpus ("" for none)
    skip: frozenset[str] = frozenset()  # folder names left out

    def files(self) -> list[tuple[Path, str]]:
        """(installed file, path in the corpus) of every .py file, in path order."""
        root = self.root()
        found = []
        for path in sorted(root.rglob("*.py")):
            rel = path.relative_to(root)
            if not self.skip & set(rel.parts[:-1]):
                found.append((path, str(Path(self.prefix) / rel)))
        return found

    def load_queries(self) -> list[dict]:
        return json.loads(self.queries.read_text(encoding="utf-8"))["queries"]


def _beam_root() -> Path:
    import apache_beam

    return Path(apache_beam.__file__).parent


TREES = {
    "apache_beam": Tree("apache_beam", DATA / "quality_queries.json", _beam_root, "apache_beam"),
    "stdlib": Tree("stdlib", DATA / "stdlib_quality_queries.json",
                   lambda: Path(sysconfig.get_paths()["stdlib"]), "",
                   frozenset({"site-packages", "dist-packages", "test", "tests", "idle_test"})),
}


def load_queries(tree: str = "apache_beam") -> list[dict]:
    return TREES[tree].load_queries()


def copy_corpus(tree: Tree, target: Path, limit: int | None = None,
                keep: Collection[str] = frozenset()) -> int:
    """Copy the tree's .py files into target; with `limit`, only the files in `keep` and the
    first ones in path order up to `limit` files. Returns the files copied."""
    pairs = tree.files()
    if limit is not None:
        chosen = {rel for _, rel in pairs[:max(0, limit - len(keep))]} | set(keep)
        pairs = [(path, rel) for path, rel in pairs if rel in chosen]
    for path, rel in pairs:
        dest = target / rel
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, dest)
    return len(pairs)


def check_answers(tree: Tree, corpus: Path, queries: list[dict]) -> None:
    """Every answer file exists and still defines what its query asks for."""
    for item in queries:
        for rel in item["files"]:
            path = corpus / rel
            text = path.read_text(encoding="utf-8") if path.is_file() else ""
            if not any(line.lstrip().startswith(item["defines"]) for line in text.splitlines()):
                raise SystemExit(f"{rel} no longer has {item['defines']!r}: update "
                                 f"{tree.queries}")


def rank_of_answer(hits: list[dict], answers: set[str]) -> int | None:
    """1-based rank of the first answer file among the hits' distinct files, or None."""
    files = list(dict.fromkeys(hit["path"] for hit in hits))[:10]
    return next((i for i, path in enumerate(files, 1) if path in answers), None)


def score(index, queries: list[dict], mode: str, **options) -> dict:
    ranks, started = [], time.perf_counter()
    for item in queries:
        hits = index.search(item["query"], 10, mode=mode, files_only=True, **options)
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


def build_unsplit(corpus: str, out: str, chunker: str, model: str, stats_path: str) -> None:
    """Index with the static embedder without identifier splitting, which only the Python API
    selects: it is there to be measured against splitting."""
    from beam_pipeline import IndexSettings, run_index
    from beam_pipeline.embedders import StaticEmbedder

    embedder = StaticEmbedder(split=False, **({"model": model} if model else {}))
    stats = run_index(corpus, out, IndexSettings.create(embedder, chunker=chunker))
    Path(stats_path).write_text(json.dumps(stats.to_dict()))


def build(corpus: Path, out: Path, embedder: str, chunker: str) -> dict:
    """Index the corpus in a process of its own (`beam-index index`): its wall time and peak
    RSS are the run's alone (wait4). EMBEDDER:MODEL passes --embedding-model MODEL;
    `static+words[:MODEL]` is the static embedder without identifier splitting."""
    stats_path = out.parent / f"{out.name}.stats.json"
    name, _, model = embedder.partition(":")
    if name == UNSPLIT:
        script = ("import sys; from benchmarks.quality import build_unsplit; "
                  "build_unsplit(*sys.argv[1:])")
        cmd = [sys.executable, "-c", script, str(corpus), str(out), chunker, model,
               str(stats_path)]
    else:
        cmd = [sys.executable, "-m", "beam_pipeline", "index", str(corpus), "--output",
               str(out), "--embedder", name, *(["--embedding-model", model] if model else []),
               "--chunker", chunker, "--stats-json", str(stats_path), "-q"]
    from benchmarks.run import timed_index

    stats, seconds, peak = timed_index(cmd, stats_path, f"indexing {corpus.name}")
    return {"chunks": stats["chunks_created"], "index_s": seconds, "peak_rss_MB": peak,
            "fixed_chunk_files": stats["fixed_chunks_by_reason"]}


def measure(trees: tuple[str, ...], embedders: tuple[str, ...], minilm_files: int,
            chunkers: tuple[str, ...] = (DEFAULT_CHUNKER,), fusions: tuple[str, ...] = ("",),
            work: Path | None = None, log=print) -> dict:
    """Index every tree with every embedder and chunker, then score each search mode. With
    `work`, corpora and indexes stay there and are reused by the next call."""
    from beam_pipeline.search import Index

    rows = []
    with tempfile.TemporaryDirectory(prefix="beam-quality-") as tmp:
        base = work or Path(tmp)
        for name in trees:
            tree = TREES[name]
            queries = tree.load_queries()
            answers = {rel for item in queries for rel in item["files"]}
            for embedder in embedders:
                sample = minilm_files if embedder == "minilm" else None
                corpus = base / f"{name}-corpus{'-sample' if sample else ''}"
                if not corpus.exists():
                    files = copy_corpus(tree, corpus, sample, answers)
                files = sum(1 for _ in corpus.rglob("*.py"))
                check_answers(tree, corpus, queries)
                for chunker in chunkers:
                    out = base / f"{name}-{embedder.replace(':', '_')}-{chunker}"
                    built = base / f"{out.name}.build.json"
                    if not built.exists():
                        shutil.rmtree(out, ignore_errors=True)
                        built.write_text(json.dumps(build(corpus, out, embedder, chunker)))
                    run = json.loads(built.read_text())
                    log(f"  {name} {embedder}/{chunker}: {files} files, {run['chunks']} chunks"
                        f" indexed in {run['index_s']:.1f} s, peak {run['peak_rss_MB']:.0f} MB")
                    index = Index.open(out)
                    for mode in MODES:
                        for fusion in fusions if mode == "hybrid" else ("",):
                            options = {"fusion": fusion} if fusion else {}
                            rows.append({"tree": name, "embedder": embedder,
                                         "chunker": chunker, "mode": mode, "fusion": fusion,
                                         "files": files, "sample": sample is not None, **run,
                                         **score(index, queries, mode, **options)})
    return {"queries": {name: len(TREES[name].load_queries()) for name in trees},
            "rows": rows, "summary": summarise(rows),
            "targets": {f"hybrid recall@10 (default, {TARGET_TREE})": TARGET_RECALL,
                        f"hybrid MRR@10 (default, {TARGET_TREE})": TARGET_MRR}}


def summarise(rows: list[dict]) -> list[dict]:
    """Every configuration over all trees: recall and MRR averaged over all queries (a
    sample's rows apart from the whole trees')."""
    groups: dict[tuple, list[dict]] = {}
    for row in rows:
        key = (row["embedder"], row["chunker"], row["mode"], row["fusion"], row["sample"])
        groups.setdefault(key, []).append(row)
    summary = []
    def mean(group: list[dict], key: str) -> float:
        return sum(row[key] * row["queries"] for row in group) / max(
            1, sum(row["queries"] for row in group))

    for (embedder, chunker, mode, fusion, sample), group in groups.items():
        natural = [row["natural"] for row in group]
        summary.append({"embedder": embedder, "chunker": chunker, "mode": mode,
                        "fusion": fusion, "sample": sample,
                        "queries": sum(row["queries"] for row in group),
                        "trees": [row["tree"] for row in group],
                        **{key: mean(group, key) for key in ("recall_at_10", "mrr_at_10")},
                        "natural": {"queries": sum(row["queries"] for row in natural),
                                    **{key: mean(natural, key)
                                       for key in ("recall_at_10", "mrr_at_10")}}})
    return summary


def print_quality(result: dict) -> None:
    trees = ", ".join(f"{name} ({count})" for name, count in result["queries"].items())
    print(f"search quality over {trees} queries: recall@10 / MRR@10, all queries, then "
          "natural-language and identifier ones apart")
    header = (f"{'tree':11} {'embedder':16} {'chunker':7} {'mode':14} {'files':>6} {'recall':>7}"
              f" {'MRR':>6} {'nl rec':>7} {'nl MRR':>7} {'id rec':>7} {'id MRR':>7} {'ms/q':>6}")
    print(header)
    print("-" * len(header))
    for row in result["rows"]:
        files = f"{row['files']}{'*' if row['sample'] else ''}"
        mode = f"{row['mode']}{'/' + row['fusion'] if row['fusion'] else ''}"
        print(f"{row['tree']:11} {row['embedder']:16} {row['chunker']:7} {mode:14} {files:>6} "
              f"{row['recall_at_10']:>7.3f} {row['mrr_at_10']:>6.3f} "
              f"{row['natural']['recall_at_10']:>7.3f} {row['natural']['mrr_at_10']:>7.3f} "
              f"{row['identifier']['recall_at_10']:>7.3f} {row['identifier']['mrr_at_10']:>7.3f}"
              f" {row['ms_per_query']:>6.0f}")
    if any(row["sample"] for row in result["rows"]):
        print("* a sample: the answer files and the first files in path order")
    print()
    print(f"{'all trees':11} {'embedder':16} {'chunker':7} {'mode':14} {'queries':>7} "
          f"{'recall':>7} {'MRR':>6} {'nl rec':>7} {'nl MRR':>7}")
    for row in result["summary"]:
        mode = f"{row['mode']}{'/' + row['fusion'] if row['fusion'] else ''}"
        embedder = f"{row['embedder']}{'*' if row['sample'] else ''}"
        print(f"{'':11} {embedder:16} {row['chunker']:7} {mode:14} {row['queries']:>7} "
              f"{row['recall_at_10']:>7.3f} {row['mrr_at_10']:>6.3f} "
              f"{row['natural']['recall_at_10']:>7.3f} {row['natural']['mrr_at_10']:>7.3f}")
    print()
    builds = {(r["tree"], r["embedder"], r["chunker"]): r for r in result["rows"]}
    for (tree, embedder, chunker), row in builds.items():
        print(f"{tree} {embedder}/{chunker}: {row['files']} files, {row['chunks']} chunks, "
              f"indexed in {row['index_s']:.1f} s, peak RSS {row['peak_rss_MB']:.0f} MB"
              + (f"; fixed-size for {row['fixed_chunk_files']}" if row["fixed_chunk_files"]
                 else ""))
    default = next((r for r in result["rows"] if r["tree"] == TARGET_TREE and not r["sample"]
                    and (r["embedder"], r["chunker"], r["mode"]) == (
                        DEFAULT_EMBEDDER, DEFAULT_CHUNKER, "hybrid")
                    and r["fusion"] in ("", FUSIONS[0])), None)
    if default is not None:
        for name, value, target in (("recall@10", default["recall_at_10"], TARGET_RECALL),
                                    ("MRR@10", default["mrr_at_10"], TARGET_MRR)):
            print(f"default search ({DEFAULT_EMBEDDER}, hybrid) {name} on {TARGET_TREE}: "
                  f"{value:.3f} (target ≥ {target}) {'met' if value >= target else 'MISSED'}")


def main(argv: list[str] | None = None) -> int:
    from benchmarks.run import write_report

    parser = argparse.ArgumentParser(prog="python -m benchmarks.quality", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--trees", default=",".join(TREES), metavar="T,T,…",
                        help="trees to measure (default: %(default)s)")
    parser.add_argument("--embedders", default=MEASURED, metavar="E,E,…",
                        help="embedders to measure, EMBEDDER:MODEL for another model "
                        "(default: %(default)s; minilm needs the minilm extra)")
    parser.add_argument("--chunkers", default=DEFAULT_CHUNKER, metavar="C,C,…",
                        help=f"chunkers to measure (default: %(default)s; {', '.join(CHUNKERS)})")
    parser.add_argument("--fusions", default="", metavar="F,F,…",
                        help="hybrid fusions to compare (default: the search's own)")
    parser.add_argument("--minilm-files", type=int, default=600, metavar="N")
    parser.add_argument("--work", type=Path, default=None, metavar="DIR",
                        help="keep corpora and indexes here and reuse them on the next run")
    parser.add_argument("--json", type=Path, default=Path("benchmarks/results/quality.json"))
    args = parser.parse_args(argv)
    result = measure(tuple(args.trees.split(",")), tuple(args.embedders.split(",")),
                     args.minilm_files, tuple(args.chunkers.split(",")),
                     tuple(args.fusions.split(",")), args.work,
                     log=lambda line: print(line, file=sys.stderr))
    print_quality(result)
    write_report(args.json, "benchmarks.quality", argv, result)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
