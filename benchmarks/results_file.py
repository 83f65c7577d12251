"""A benchmark's result as JSON: stamped with the date, the Python, the machine and the
command that produced it, so a figure in the docs can be traced and rerun."""

from __future__ import annotations

import json
import platform
import sys
import time
from pathlib import Path

RESULTS = Path(__file__).parent / "results"


def write_result(result: dict, path: Path, module: str, argv: list[str] | None) -> None:
    """Stamp `result` and write it to `path` (its folder made if needed); say where."""
    command = " ".join([f"python -m {module}", *(sys.argv[1:] if argv is None else argv)])
    result.update(date=time.strftime("%Y-%m-%d"), python=platform.python_version(),
                  machine=platform.machine(), command=command)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    print(f"wrote {path}")
