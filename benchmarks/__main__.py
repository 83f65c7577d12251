"""`python -m benchmarks NAME [ARGS…]`: run one benchmark (`python -m benchmarks.NAME` alike);
without a name, list them with the first line of each one's description."""

from __future__ import annotations

import pkgutil
import runpy
import sys
from pathlib import Path


def benchmarks() -> dict[str, str]:
    """Each runnable benchmark module (it has a `__main__` block) → its first doc line."""
    found = {}
    for info in pkgutil.iter_modules([str(Path(__file__).parent)]):
        source = Path(__file__).with_name(f"{info.name}.py")
        if info.name.startswith("_") or not source.is_file() \
                or 'if __name__ == "__main__":' not in source.read_text(encoding="utf-8"):
            continue
        found[info.name] = _first_line(source.read_text(encoding="utf-8"))
    return dict(sorted(found.items()))


def _first_line(text: str) -> str:
    body = text.split('"""', 2)
    return body[1].strip().splitlines()[0] if len(body) > 2 and body[1].strip() else ""


def main(argv: list[str]) -> int:
    known = benchmarks()
    if not argv or argv[0] in ("-h", "--help") or argv[0] not in known:
        if argv and argv[0] not in ("-h", "--help"):
            print(f"no benchmark {argv[0]!r}", file=sys.stderr)
        print("usage: python -m benchmarks NAME [ARGS…]\n")
        for name, line in known.items():
            print(f"  {name:<14} {line}")
        return 0 if not argv or argv[0] in ("-h", "--help") else 2
    sys.argv = [f"python -m benchmarks {argv[0]}", *argv[1:]]
    runpy.run_module(f"benchmarks.{argv[0]}", run_name="__main__", alter_sys=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
