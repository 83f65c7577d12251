"""Syntax-aware chunks: cut code where its definitions begin, with tree-sitter grammars.

Pure logic, without Beam. A file is parsed with its language's grammar (a wheel per language,
shipped with its compiled parser: nothing is fetched at first use). Its top-level nodes are
packed, in order, into chunks of at most `size` characters; a node too big for one chunk is
opened and its children packed the same way, so a class becomes chunks of whole methods and a
long function chunks of whole statements. A short header (a `class X:` or `def f(...):` line)
travels with the first child that follows it rather than becoming a chunk of its own. A node
still too big with nothing inside to open (a long string) is cut at whole lines, and only a
line longer than a chunk is cut by the fixed-size chunker, with its overlap.

Chunks start and end on whole lines (but for such long lines), and neither overlap nor leave
gaps: joined, they are the file. Lines between nodes (blank lines, comments) go with the node
after them.

A file without a grammar or with a parse error raises `NoSyntax(reason)`; the caller falls back
to the fixed-size chunker for that file and counts the reason. So does minified or generated
code (a line longer than `LONG_LINE_CHUNKS` chunks, or a longer text whose lines average
`MEAN_LINE_CHARS`), decided before any parse: tree-sitter builds a node per token, millions for a 10 MB bundle of
one line (2 GB and most of a 10 s run), and no definition boundary inside such a line helps a
chunk.

Example::

    try:
        chunks = syntax_chunks(text, "pkg/mod.py", size=1000, overlap=150)
    except NoSyntax as exc:
        chunks = chunk_text(text, 1000, 150)  # and count exc.reason
"""

from __future__ import annotations

import importlib
import itertools
import threading
from pathlib import PurePosixPath

from ..errors import FileError
from ..source.language import detect_language
from .fixed import Chunk, chunk_text

# Language (as `language.detect_language` names it) → grammar module and its function.
GRAMMARS = {
    "python": ("tree_sitter_python", "language"),
    "javascript": ("tree_sitter_javascript", "language"),
    "typescript": ("tree_sitter_typescript", "language_typescript"),
    "tsx": ("tree_sitter_typescript", "language_tsx"),
    "go": ("tree_sitter_go", "language"),
    "rust": ("tree_sitter_rust", "language"),
    "java": ("tree_sitter_java", "language"),
    "c": ("tree_sitter_c", "language"),
    "cpp": ("tree_sitter_cpp", "language"),
    "csharp": ("tree_sitter_c_sharp", "language"),
    "ruby": ("tree_sitter_ruby", "language"),
}
# Fallback reasons, counted per file.
NO_GRAMMAR = "no_grammar"  # a language we have no grammar for (markdown, yaml, …)
GRAMMAR_NOT_INSTALLED = "grammar_not_installed"
PARSE_ERROR = "parse_error"
MINIFIED = "minified"
# Not worth parsing: a line longer than this many chunks (a test's 5-chunk literal is parsed),
# or a text longer than that whose lines are this long on average (hand-written code: 30 to
# 40); a shorter text costs little to parse whatever its lines.
LONG_LINE_CHUNKS = 10
MEAN_LINE_CHARS = 300
# A pending header up to this share of the size is carried into the next, oversized node.
HEADER_SHARE = 3
# Nodes nested deeper than this are cut by size: Python's recursion limit stays far away.
MAX_DEPTH = 200

_parsers = threading.local()  # a tree-sitter Parser is not to be shared between threads


class NoSyntax(FileError):
    """This file gets no syntax chunks; `reason` is the fallback reason counted in the stats."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


def grammar_name(path: str) -> str:
    """The GRAMMARS key for a path: its language, with .tsx apart (a grammar of its own)."""
    language = detect_language(path)
    if language == "typescript" and PurePosixPath(path).suffix.lower() == ".tsx":
        return "tsx"
    return language


def _parser(name: str):
    cache = _parsers.__dict__
    if name not in cache:
        if name not in GRAMMARS:
            raise NoSyntax(NO_GRAMMAR)
        module_name, function = GRAMMARS[name]
        try:
            import tree_sitter

            module = importlib.import_module(module_name)
        except ImportError:
            cache[name] = None
        else:
            cache[name] = tree_sitter.Parser(tree_sitter.Language(getattr(module, function)()))
    if cache[name] is None:
        raise NoSyntax(GRAMMAR_NOT_INSTALLED)
    return cache[name]


def syntax_chunks(text: str, path: str, size: int, overlap: int) -> list[Chunk]:
    """Cut `text` (the file at `path`) at syntax boundaries; raises NoSyntax to fall back."""
    parser = _parser(grammar_name(path))
    if not text or text.isspace():  # not text.strip(): that copies the text
        return []
    # Both tests are linear and the first copies nothing, so a one-line bundle costs a count.
    if (len(text) > LONG_LINE_CHUNKS * size
            and len(text) > MEAN_LINE_CHARS * (text.count("\n") + 1)):
        raise NoSyntax(MINIFIED)
    lengths = list(map(len, text.split("\n")))
    if max(lengths) > LONG_LINE_CHUNKS * size:
        raise NoSyntax(MINIFIED)
    tree = parser.parse(text.encode("utf-8", "surrogatepass"))
    if tree.root_node.has_error:
        raise NoSyntax(PARSE_ERROR)
    return _Cutter(text, lengths, size, overlap).cut(tree.root_node)


class _Cutter:
    """Packs line ranges of nodes into chunks. Lines are 0-based here, as tree-sitter's rows."""

    def __init__(self, text: str, lengths: list[int], size: int, overlap: int):
        self.text, self.size, self.overlap = text, size, overlap
        # starts[i] is where line i begins (lengths: of the lines without their newline); the
        # last entry is the end of the text.
        self.starts = [0, *itertools.accumulate(length + 1 for length in lengths)]
        self.starts[-1] = len(text)
        self.chunks: list[Chunk] = []

    def cut(self, root) -> list[Chunk]:
        self._emit(self._pack(self._segments(root.children, 0, len(self.starts) - 2)))
        return self.chunks

    def _chars(self, first: int, last: int) -> int:
        return self.starts[last + 1] - self.starts[first]

    def _segments(self, nodes, first: int, last: int) -> list[list]:
        """[first line, last line, nodes] per run of nodes that share lines, covering
        first..last: a cut falls only where a node starts on a line of its own."""
        segments: list[list] = []
        for node in nodes:
            start, end = node.start_point, node.end_point
            top = start.row
            bottom = end.row - 1 if end.column == 0 and end.row > top else end.row
            if segments and top <= segments[-1][1]:
                segments[-1][1] = max(segments[-1][1], bottom)
                segments[-1][2].append(node)
            else:
                segments.append([top, bottom, [node]])
        if not segments:
            return [[first, last, []]]
        for before, after in itertools.pairwise(segments):
            after[0] = before[1] + 1  # the lines between two nodes go with the second
        segments[0][0], segments[-1][1] = first, last
        return [s for s in segments if s[0] <= s[1]]

    def _pack(self, segments: list[list], pending: tuple[int, int] | None = None,
              depth: int = 0) -> tuple[int, int] | None:
        """Pack segments into chunks after `pending` (lines not yet emitted); returns the lines
        still pending at the end, for the caller to pack on with the segments after these."""
        for first, last, nodes in segments:
            if pending is not None and self._chars(pending[0], last) <= self.size:
                pending = (pending[0], last)
                continue
            if self._chars(first, last) <= self.size:
                self._emit(pending)
                pending = (first, last)
                continue
            if pending is not None and self._chars(*pending) * HEADER_SHARE <= self.size:
                first = pending[0]  # a short header goes with what it introduces
            else:
                self._emit(pending)
            children = [child for node in nodes for child in node.children]
            if children and depth < MAX_DEPTH:
                pending = self._pack(self._segments(children, first, last), None, depth + 1)
            else:
                pending = self._split(first, last)
        return pending

    def _emit(self, lines: tuple[int, int] | None) -> None:
        if lines is None:
            return
        first, last = lines
        start, end = self.starts[first], self.starts[last + 1]
        piece = self.text[start:end]
        if piece.strip():
            line_end = first + 1 + piece.count("\n", 0, len(piece) - 1)
            self.chunks.append(Chunk(len(self.chunks), start, end, first + 1, line_end, piece))

    def _split(self, first: int, last: int) -> tuple[int, int] | None:
        """A node too big for a chunk with nothing inside to cut at (a long string): whole
        lines packed by size, and a line longer than a chunk in fixed-size pieces. Returns the
        lines still pending."""
        pending = None
        for line in range(first, last + 1):
            if pending is not None and self._chars(pending[0], line) <= self.size:
                pending = (pending[0], line)
            elif self._chars(line, line) <= self.size:
                self._emit(pending)
                pending = (line, line)
            else:
                self._emit(pending)
                pending = None
                start = self.starts[line]
                for piece in chunk_text(self.text[start:self.starts[line + 1]], self.size,
                                        self.overlap):
                    self.chunks.append(Chunk(len(self.chunks), start + piece.char_start,
                                             start + piece.char_end, line + 1, line + 1,
                                             piece.text))
        return pending
