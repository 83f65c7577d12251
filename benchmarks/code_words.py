"""Make beam_pipeline/data/code_words.txt: the sub-words the lexical index splits camelCase
identifiers into.

    python -m benchmarks.code_words INDEX_DIR [--min-count 30] [--out FILE]

Every identifier of two or more pieces (camelCase or snake_case) in the index's rows gives its
pieces, lowercased; pieces seen in at least --min-count identifiers per row sampled (every
third shard), 3 letters or more, are kept. The shipped list came from the standard library and
its site-packages (README command 1's index). A changed list changes how text is cut: bump
lexical.LAYOUT with it.
"""

from __future__ import annotations

import argparse
import collections
import re
from pathlib import Path

_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]+")
_PIECE = re.compile(r"[A-Z]+(?![a-z])|[A-Z]?[a-z]+")


def code_words(index_dir: str, min_count: int) -> list[str]:
    from beam_pipeline.search import Index
    from beam_pipeline.source import storage

    index = Index.open(index_dir)
    counts: collections.Counter = collections.Counter()
    for name in index.shards[::3]:
        content = storage.read_parquet(index.shard_path(name), columns=["content"])["content"]
        for text in content.to_pylist():
            for identifier in set(_IDENTIFIER.findall(text)):
                pieces = _PIECE.findall(identifier)
                if len(pieces) > 1:
                    counts.update(piece.lower() for piece in pieces)
    return sorted(w for w, n in counts.items() if n >= min_count and len(w) >= 3)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.code_words", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("index")
    parser.add_argument("--min-count", type=int, default=30)
    parser.add_argument("--out", type=Path,
                        default=Path("beam_pipeline/data/code_words.txt"))
    args = parser.parse_args(argv)
    words = code_words(args.index, args.min_count)
    args.out.write_text("\n".join(words) + "\n", encoding="utf-8")
    print(f"{len(words)} words → {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
