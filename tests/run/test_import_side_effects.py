"""Importing the library changes nothing global: exit handlers are the program's choice
(`beam-index` freezes the collector at exit; cli.entry), and Beam's worker processes make it
for themselves (runtime/link.py)."""

import subprocess
import sys

CHECK = """
import atexit, gc, pkgutil, importlib
import apache_beam  # whatever Beam registers is Beam's
before = atexit._ncallbacks()
import beam_pipeline
for _, name, _ in pkgutil.walk_packages(beam_pipeline.__path__, "beam_pipeline."):
    if not name.endswith("__main__"):
        importlib.import_module(name)
from beam_pipeline.runtime.link import RunLink
RunLink(None).setup()  # a DoFn's setup in the launcher's own process
print(atexit._ncallbacks() - before, gc.get_freeze_count())
"""


def test_importing_every_module_registers_no_exit_handler():
    done = subprocess.run([sys.executable, "-c", CHECK], capture_output=True, text=True,
                          timeout=300, check=True)
    assert done.stdout.split() == ["0", "0"], done.stderr


def test_a_beam_worker_process_leaves_its_objects_to_the_os(monkeypatch):
    from beam_pipeline.runtime import link

    class Spec:
        name = link._SDK_WORKER_MAIN

    monkeypatch.setattr(sys.modules["__main__"], "__spec__", Spec, raising=False)
    assert link._in_sdk_worker()
