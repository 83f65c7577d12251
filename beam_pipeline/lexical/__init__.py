"""The lexical index of a snapshot: BM25 over code-aware terms, kept by tantivy.

Beside its shards, a snapshot holds `lexical/`: tantivy's own index files (`meta.json` and
segment files; plain files, nothing in them is executed), listed in the manifest under
`"lexical"`. One document per row:

- `id` (stored): the row's id, which joins a hit to its row;
- `path`, `language`: whole values, for filters and for deleting a file's documents;
- `shard`: the staged shard the row came from, so rows of a shard that is not committed (a
  retried bundle's) can be dropped (absent on documents indexed from the chunker, feed.py);
- `words`: runs of word characters (letters, digits, `_`) but single ASCII ones, whole and
  lowercased (`read_config`, `readconfig`, `404`); see `word_text`;
- `parts`: the pieces of identifiers, split at snake_case and camelCase (`readConfig` →
  `read`, `config`), lowercased; camelCase is split where every piece is a known sub-word
  (see CODE_WORDS), else the identifier stays whole;
- `place`: the pieces of the file's path.

Tokenising runs in tantivy's Rust analyzers, at index time and for queries alike (`cut`), so a
query term is cut exactly as the content was. Case is not indexed: a case-sensitive search checks
the candidates' text.

The stage's modules: `fields.py` (the fields, their analyzers, the manifest entry), `build.py`
(building it: `LexicalBuilder`, `ShardFollower`, `export`), `feed.py` (building it in a helper
process fed by the chunking step, in the local modes) and `read.py` (`LexicalIndex`, search).

A re-index carries the index forward instead of rebuilding it: the previous snapshot's files
are copied, the documents of files whose rows are not carried are deleted, the new rows are
added, and tantivy merges segments as it sees fit. BM25's statistics are the index's own.

Example::

    with LexicalBuilder() as builder:
        builder.add_shard("staging/part-1.parquet", "part-1.parquet")
        entry = builder.save_to("snapshots/X")  # lexical/… written through storage
    lexicon = LexicalIndex.open("snapshots/X", manifest["lexical"])
    for row_id, score in lexicon.search("read config", 10):
        ...
"""

from .build import LexicalBuilder, ShardFollower, export
from .fields import (
    CODE_WORDS,
    ENGINE,
    LAYOUT,
    LEXICAL_DIR,
    ROWS_COLUMNS,
    LexicalError,
    analyzers,
    code_words,
    cut,
    file_names,
    manifest_entry,
    usable,
    word_text,
)
from .read import LexicalIndex, Terms, looks_like_a_name

__all__ = ["CODE_WORDS", "ENGINE", "LAYOUT", "LEXICAL_DIR", "ROWS_COLUMNS", "LexicalBuilder",
           "LexicalError", "LexicalIndex", "ShardFollower", "Terms", "analyzers", "code_words",
           "cut", "export", "file_names", "looks_like_a_name", "manifest_entry", "usable",
           "word_text"]
