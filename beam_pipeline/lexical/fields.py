"""The lexical index's layout: its fields and how text is cut into their terms (tantivy's
analyzers, the same at index and at query time), the manifest entry, and the error type.
See the package's docstring for the fields.
"""

from __future__ import annotations

import functools
import os
import re
from importlib import resources

from ..errors import IndexReadError
from ..source import storage

LEXICAL_DIR = "lexical"
ENGINE = "tantivy"
# Bump when fields or analyzers change: an index of another layout is rebuilt, not reused.
LAYOUT = 5
# Words: the text with every non-word character made a space (word_text), then tantivy's
# whitespace tokenizer. On the standard library's chunks that costs 0.65 s of CPU where
# tantivy's regex tokenizer (`[^\W\d]\w+`, layout 4) cost 2.1 s, whatever the pattern:
# its cost is per token, not per pattern.
_ASCII_WORDS = bytes(byte if chr(byte).isalnum() or chr(byte) == "_" else ord(" ")
                     for byte in range(128)) + bytes(range(128, 256))
_NON_WORD = re.compile(r"\W+")
# Single characters (`i`, `x`, `0`) are no search anyone makes, and among the most frequent
# terms of code.
_SINGLES = [chr(c) for c in range(ord("a"), ord("z") + 1)] + list("0123456789_")
# Pieces: tantivy's simple tokenizer cuts at every non-alphanumeric character (snake_case,
# dotted names), then a lowercased word made only of known sub-words is split into them
# (readconfigfile → read, config, file). A regex tokenizer that splits at case changes cost
# twice the whole index build (95 MB of code: 15.2 s against 9.6 s); the known sub-words are
# the pieces of camelCase and snake_case identifiers seen at least 30 times in the standard
# library and its site-packages, 3 letters or more (benchmarks/code_words.py makes the list).
CODE_WORDS = "code_words.txt"
_LONGEST_TERM = 100  # longer "words" are hashes and blobs, no one searches them
ROWS_COLUMNS = ["id", "path", "language", "content"]
WRITER_HEAP = 128 << 20
PART_WEIGHT = 0.5
PLACE_WEIGHT = 0.5
# A row that defines a name the query asks for ("class Name", "def name", …) outranks the
# many rows that only use it.
# Words that also start prose or usages ("type", "const", "object") are left out: in
# docstrings ":type x: Name" would pass for a definition.
DEFINING_WORDS = ("class", "def", "function", "func", "fn", "struct", "interface", "trait",
                  "enum")
FUZZY_MIN_LENGTH = 3  # shorter words have too many neighbours one edit away


class LexicalError(IndexReadError):
    """The lexical index is missing, unreadable or of another layout."""


def analyzers():
    import tantivy

    def analyzer(tokenizer, *filters):
        builder = tantivy.TextAnalyzerBuilder(tokenizer)
        for filter_ in (tantivy.Filter.remove_long(_LONGEST_TERM), tantivy.Filter.lowercase(),
                        *filters):
            builder = builder.filter(filter_)
        return builder.build()

    return {"words": analyzer(tantivy.Tokenizer.whitespace(),
                              tantivy.Filter.custom_stopword(_SINGLES)),
            "parts": analyzer(tantivy.Tokenizer.simple(),
                              tantivy.Filter.split_compound(code_words()))}


def word_text(text: str) -> str:
    """`text` as the `words` field is given it: every character that is not a word character
    (Unicode letter, digit or `_`) becomes a space. ASCII text (most code) takes a byte
    table; the rest a regex."""
    if text.isascii():
        return text.encode("ascii").translate(_ASCII_WORDS).decode("ascii")
    return _NON_WORD.sub(" ", text)


def cut(analyzers: dict, field: str, text: str) -> list[str]:
    """The terms of `text` in a field, as the index holds them."""
    return analyzers[field].analyze(word_text(text) if field == "words" else text)


@functools.cache
def code_words() -> list[str]:
    """The sub-words camelCase identifiers are split into (data/code_words.txt)."""
    text = resources.files("beam_pipeline").joinpath("data", CODE_WORDS).read_text("utf-8")
    return text.split()


def _schema():
    import tantivy

    builder = tantivy.SchemaBuilder()
    builder.add_text_field("id", stored=True, tokenizer_name="raw")
    builder.add_text_field("path", stored=False, tokenizer_name="raw")
    builder.add_text_field("language", stored=False, tokenizer_name="raw")
    builder.add_text_field("shard", stored=False, tokenizer_name="raw")
    # Positions for `words` only: phrases find definitions ("class name") at +40 % of the
    # field's size and no measurable time; pieces need frequencies alone.
    builder.add_text_field("words", stored=False, tokenizer_name="code_words",
                           index_option="position")
    builder.add_text_field("parts", stored=False, tokenizer_name="code_parts",
                           index_option="freq")
    # The pieces of the file's path: a file named for what it does (parquetio.py, retry.py)
    # answers a question that names it.
    builder.add_text_field("place", stored=False, tokenizer_name="code_parts",
                           index_option="freq")
    return builder.build()


def open_index(directory: str, create: bool):
    import tantivy

    index = tantivy.Index(_schema(), path=directory, reuse=not create)
    for name, analyzer in analyzers().items():
        index.register_tokenizer(f"code_{name}", analyzer)
    return index


def manifest_entry(files: list[dict], docs: int) -> dict:
    return {"engine": ENGINE, "layout": LAYOUT, "docs": docs, "files": files}


def usable(entry) -> bool:
    """Whether a manifest's "lexical" entry is an index this installation reads."""
    return (isinstance(entry, dict) and entry.get("engine") == ENGINE
            and entry.get("layout") == LAYOUT and isinstance(entry.get("files"), list))


def file_names(entry: dict) -> list[str]:
    """The entry's file names, refusing any that could leave the lexical folder."""
    names = []
    for item in entry.get("files", []):
        name = item.get("name") if isinstance(item, dict) else None
        if not isinstance(name, str) or not name or "/" in name or "\\" in name \
                or name in (".", "..") or "\x00" in name:
            raise LexicalError(f"manifest names an invalid lexical file {name!r}")
        names.append(name)
    return names


def fetch(snapshot_dir: str, entry: dict, target: str) -> None:
    """Copy a snapshot's lexical files into a local folder, each checked against the sha256
    the manifest records (a re-index must not carry an altered index into its snapshot)."""
    for name, item in zip(file_names(entry), entry["files"]):
        source = storage.join(snapshot_dir, LEXICAL_DIR, name)
        try:
            data = storage.read_checked(source, item.get("sha256"))
        except storage.AlteredFile as exc:
            raise LexicalError(str(exc)) from None
        with open(os.path.join(target, name), "wb") as fh:
            fh.write(data)
