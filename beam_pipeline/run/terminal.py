"""Text for people: control characters from paths, content and messages made visible.

A repository and an index are often someone else's, and a file name or a line of code may hold
escape sequences that retitle a terminal, clear it or rewrite what it shows. Every
human-readable output passes what it did not write itself through `printable`; JSON output
through `json_text`, which leaves them as JSON escapes.

Example::

    printable("evil\\x1b]0;pwned\\x07.py")  # 'evil\\\\x1b]0;pwned\\\\x07.py'
"""

from __future__ import annotations

import json
from typing import Any

# C0 and C1 controls and DEL; the bidirectional overrides and isolates, which reorder what a
# line shows ("Trojan Source"); the Unicode line and paragraph separators.
_CONTROLS = [*range(0x20), 0x7F, *range(0x80, 0xA0), 0x200E, 0x200F,
             *range(0x202A, 0x202F), *range(0x2066, 0x206A), 0x2028, 0x2029]
_VISIBLE = {c: (f"\\x{c:02x}" if c < 0x100 else f"\\u{c:04x}") for c in _CONTROLS if c != 0x09}
_KEEP_NEWLINES = {c: text for c, text in _VISIBLE.items() if c != 0x0A}
# json.dumps escapes C0 itself; with ensure_ascii=False it passes the rest through raw.
_JSON = {c: f"\\u{c:04x}" for c in _CONTROLS if c >= 0x7F}


def printable(text: str, newlines: bool = False) -> str:
    """`text` with every control character shown as its escape (a tab stays a tab; a newline
    stays one with `newlines`, for text of several lines)."""
    return text.translate(_KEEP_NEWLINES if newlines else _VISIBLE)


def json_text(value: Any) -> str:
    """`value` as indented JSON, non-ASCII text readable, no control character raw."""
    return json.dumps(value, indent=2, ensure_ascii=False).translate(_JSON)
