"""Worker processes that share no files with the launcher, for tests on one machine.

`isolated_command(cmd, hide, keep)` wraps a command so that it runs in a mount namespace of its
own (`unshare --mount`, root only), where each folder of `hide` is covered by an empty tmpfs
and each folder of `keep` (what the workers must import: the venv, the package of the editable
install) is bound back at the same path. Loopback stays shared, so a job service and an S3
server on 127.0.0.1 stay reachable; files are not.

`IsolationProbe` is the default embedder plus two checks when a worker loads it: the launcher's
canary file must be invisible, and the worker must be in another mount namespace. Either one
failing fails the run, so a run that completes proves the isolation held where it ran.

Example::

    cmd = isolated_command([sys.executable, "-m", "apache_beam.runners.worker.worker_pool_main",
                            "--service_port=50000"], hide=["/tmp"], keep=[sys.prefix])
    pool = subprocess.Popen(cmd, start_new_session=True)
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Sequence

from beam_pipeline.embedders import StaticEmbedder

_HOLD = "/dev/shm"  # covered by a tmpfs of the namespace's own: holds `keep` while hiding


def isolated_command(command: Sequence[str], hide: Sequence[str],
                     keep: Sequence[str]) -> list[str]:
    return ["unshare", "--mount", "--propagation", "private", "--fork", "--kill-child", "--",
            sys.executable, "-m", __name__, *[f"--hide={h}" for h in hide],
            *[f"--keep={k}" for k in keep], "--", *command]


def _mount(*args: str) -> None:
    subprocess.run(["mount", *args], check=True)


def _inside(path: str, folder: str) -> bool:
    return path == folder or path.startswith(folder.rstrip("/") + "/")


def _isolate(hide: list[str], keep: list[str]) -> None:
    hide = sorted({os.path.realpath(h) for h in hide}, key=len)
    hide = [h for i, h in enumerate(hide) if not any(_inside(h, o) for o in hide[:i])]
    keep = [os.path.realpath(k) for k in keep]
    keep = [k for k in keep if any(_inside(k, h) for h in hide)]
    _mount("-t", "tmpfs", "tmpfs", _HOLD)
    held = []
    for i, folder in enumerate(keep):
        hold = os.path.join(_HOLD, f"keep{i}")
        os.mkdir(hold)
        _mount("--bind", folder, hold)
        held.append((hold, folder))
    for folder in hide:
        _mount("-t", "tmpfs", "tmpfs", folder)
    for hold, folder in held:
        os.makedirs(folder, exist_ok=True)
        _mount("--bind", hold, folder)


def _main(argv: list[str]) -> None:
    split = argv.index("--")
    options, command = argv[:split], argv[split + 1:]
    hide = [o.split("=", 1)[1] for o in options if o.startswith("--hide=")]
    keep = [o.split("=", 1)[1] for o in options if o.startswith("--keep=")]
    _isolate(hide, keep)
    os.execvp(command[0], command)


class IsolationProbe(StaticEmbedder):
    """The default embedder (same fingerprint, same vectors) that refuses to load where it can
    see `canary` or shares the mount namespace `launcher_ns`; `delay` seconds a call make a run
    last long enough to watch its progress. Loading also proves the shipped model reaches a
    worker that shares no files with the launcher."""

    def __init__(self, canary: str, launcher_ns: str, delay: float = 0.0):
        super().__init__()
        self.canary, self.launcher_ns, self.delay = canary, launcher_ns, delay

    def __getstate__(self):
        return {"static": super().__getstate__(), "canary": self.canary,
                "launcher_ns": self.launcher_ns, "delay": self.delay}

    def __setstate__(self, state):
        super().__setstate__(state["static"])
        self.canary, self.launcher_ns = state["canary"], state["launcher_ns"]
        self.delay = state["delay"]

    def load(self) -> None:
        if os.path.exists(self.canary):
            raise RuntimeError(f"isolation broken: this worker sees the launcher's {self.canary}")
        if mount_namespace() == self.launcher_ns:
            raise RuntimeError("isolation broken: this worker shares the launcher's mounts")
        super().load()

    def embed(self, texts):
        if self.delay:
            time.sleep(self.delay)
        return super().embed(texts)


def mount_namespace() -> str:
    return os.readlink("/proc/self/ns/mnt")


if __name__ == "__main__":
    _main(sys.argv[1:])
