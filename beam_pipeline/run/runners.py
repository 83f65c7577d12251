"""Where a run's workers run, decided once per run from the runner.

This is the one place that may conclude that the launcher and the workers share a host. Every
side channel (progress, spill files, the launcher's scratch lists) asks `Placement.local`,
never "is OUT a local path".

The local modes, whose workers run on the launcher's host and see its disk, loopback and
memory:
- the DirectRunner's engine (FnApiRunner, picked directly for `DirectRunner`) in its in_memory,
  multi_threading and multi_processing modes, and the BundleBasedDirectRunner;
- a portable runner (PortableRunner, FlinkRunner, SparkRunner, PrismRunner, …) with
  `--environment_type=LOOPBACK`: its SDK workers run inside the launcher, wherever the job
  service and the rest of the job run (PrismRunner defaults to LOOPBACK).

Every other runner is distributed: its workers reach SOURCE and OUT only through Beam's
FileSystems, so a local path is refused unless the user says it is mounted at the same path on
every worker (`--local-paths-on-workers`). Runners known to lose data are refused outright.

Example::

    placement = place(PipelineOptions(["--runner=FlinkRunner", "--environment_type=EXTERNAL"]))
    placement.local          # False: progress goes through OUT, no spill files
    check_paths(placement, "s3://bucket/repo", "s3://bucket/index")
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ..errors import UsageError
from ..source import storage

if TYPE_CHECKING:
    from apache_beam.options.pipeline_options import PipelineOptions

# The DirectRunner's family: workers are threads or subprocesses of the launcher.
_DIRECT = {"DirectRunner", "SwitchingDirectRunner", "BundleBasedDirectRunner", "FnApiRunner",
           "TestDirectRunner"}
# Portable runners: where the SDK workers run depends on --environment_type.
_PORTABLE = {"PortableRunner", "FlinkRunner", "SparkRunner", "PrismRunner",
             "KafkaStreamsRunner"}
_LOOPBACK_BY_DEFAULT = {"PrismRunner"}
# Probed with Beam 2.77 (../shared/BEAM_NOTES.md, README "Running at scale"): the losses that
# matter to this pipeline, whose batches are emitted in finish_bundle and whose stages have
# tagged outputs.
LOSES_DATA = {
    "DaskRunner": "it drops elements emitted in finish_bundle (a bundle's last embedded batch "
                  "and shards), hands every tagged output to every consumer and reports no "
                  "metrics",
}
PATHS_FLAG = "--local-paths-on-workers"


class RunnerRefused(UsageError):
    """The runner cannot run this pipeline safely, or cannot see the paths it was given."""


@dataclass(frozen=True)
class Placement:
    """Where the workers of a run are, as far as its side channels care."""

    runner: str  # as the user named it, for messages
    local: bool  # the workers share the launcher's host: its disk, loopback and memory
    in_process: bool  # the workers are threads of the launcher (FnApiRunner in_memory/threads)
    # The DirectRunner's family: whatever it starts (worker processes, servers) is stopped
    # when run() returns, so the launcher's exit has nothing left to clean up.
    direct: bool = False

    def describe(self) -> str:
        return f"{self.runner} ({'local' if self.local else 'distributed'} workers)"


# No flags at all: the DirectRunner's in-process engine, decided without importing Beam.
DEFAULT = Placement("DirectRunner", local=True, in_process=True, direct=True)


def runner_name(options: PipelineOptions) -> str:
    from apache_beam.options.pipeline_options import StandardOptions

    return options.view_as(StandardOptions).runner or "DirectRunner"


def place(options: PipelineOptions | Sequence[str]) -> Placement:
    """The run's Placement (from PipelineOptions, or a list of Beam flags); raises
    RunnerRefused for runners known to lose data and for names Beam cannot resolve, with a
    one-line reason."""
    if isinstance(options, (list, tuple)) and not options:
        return DEFAULT
    from apache_beam.options.pipeline_options import (
        DirectOptions,
        PipelineOptions,
        PortableOptions,
    )

    if not isinstance(options, PipelineOptions):
        options = PipelineOptions(list(options))
    name = runner_name(options)
    lineage = _lineage(name)
    for cls_name in lineage:
        if cls_name in LOSES_DATA:
            raise RunnerRefused(f"runner {name} is refused: Beam's {cls_name} loses data here "
                                f"({LOSES_DATA[cls_name]}); use the DirectRunner, Flink, Spark "
                                "or Dataflow")
    environment = (options.view_as(PortableOptions).environment_type or "").upper()
    if _DIRECT & set(lineage):
        mode = options.view_as(DirectOptions).direct_running_mode
        return Placement(name, True, mode in ("in_memory", "multi_threading"), direct=True)
    portable = _PORTABLE & set(lineage)
    loopback = environment == "LOOPBACK" or (not environment
                                             and bool(portable & _LOOPBACK_BY_DEFAULT))
    return Placement(name, bool(portable) and loopback, False)


def _lineage(name: str) -> list[str]:
    """The runner's class name and its base classes' names, most derived first."""
    from apache_beam.options.pipeline_options import StandardOptions

    qualified = _qualified(name)
    short = qualified.rsplit(".", 1)[-1]
    for lossy in LOSES_DATA:  # refused by name, whether or not its module would import
        if lossy.lower() in (short.lower(), short.lower() + "runner"):
            return [lossy]
    if "." not in qualified:
        known = ", ".join(StandardOptions.KNOWN_RUNNER_NAMES)
        raise RunnerRefused(f"unknown runner {name!r}: Beam knows {known}; give any other "
                            "runner by its full dotted path (package.module.ClassName)")
    if qualified in StandardOptions.ALL_KNOWN_RUNNERS:
        return [short]  # classified by name: Dataflow's module needs the [gcp] extra to import
    module, _, attribute = qualified.rpartition(".")
    try:
        cls = getattr(importlib.import_module(module), attribute)
    except ImportError as exc:
        raise RunnerRefused(f"cannot load runner {name}: {exc}") from None
    except AttributeError:
        raise RunnerRefused(f"cannot load runner {name}: {module} has no {attribute}") from None
    if not isinstance(cls, type):
        raise RunnerRefused(f"runner {name} is not a class")
    return [base.__name__ for base in cls.__mro__]


def _qualified(name: str) -> str:
    """Beam's own resolution of a runner name (case-insensitive, 'Runner' optional)."""
    from apache_beam.options.pipeline_options import StandardOptions

    known = {path.rsplit(".", 1)[-1].lower(): path for path in StandardOptions.ALL_KNOWN_RUNNERS}
    return known.get(name.lower(), known.get(name.lower() + "runner", name))


def check_paths(placement: Placement, source: str | os.PathLike, output: str | os.PathLike,
                mounted_on_workers: bool = False) -> None:
    """Refuse a local SOURCE or OUT that a distributed runner's workers cannot see."""
    if placement.local or mounted_on_workers:
        return
    for role, path in (("SOURCE", source), ("OUT", output)):
        if storage.is_local(os.fspath(path)):
            raise RunnerRefused(
                f"{role} {os.fspath(path)} is a local path, but {placement.runner} runs its "
                "workers on other machines, which cannot see it: put it on an object store "
                f"(s3://, gs://, …), or, if it is mounted at the same path on every worker, "
                f"say so with {PATHS_FLAG}")


def select_runner(options: PipelineOptions):
    """The runner to use: the DirectRunner's in-process engine unless another is asked for.

    `DirectRunner` would first try to download the Prism binary (offline: a failed attempt and a
    fallback); the FnApiRunner is what it falls back to, so we pick it directly. It honours
    `--direct_running_mode` and `--direct_num_workers`. As the DirectRunner does, it hands the
    options to its workers (a worker process sets up its FileSystems from them, e.g. the S3
    credentials). Any other `--runner` is used as given.
    """
    from apache_beam.options.pipeline_options import StandardOptions

    runner = options.view_as(StandardOptions).runner
    if runner is None or _qualified(runner).rsplit(".", 1)[-1] in ("DirectRunner", "FnApiRunner"):
        from apache_beam.portability.api import beam_provision_api_pb2
        from apache_beam.runners.portability.fn_api_runner import fn_runner
        from apache_beam.runners.portability.portable_runner import JobServiceHandle

        _shorten_state_sampling()
        encoded = JobServiceHandle.encode_pipeline_options(options.get_all_options())
        provision = fn_runner.ExtendedProvisionInfo(
            beam_provision_api_pb2.ProvisionInfo(pipeline_options=encoded))
        return fn_runner.FnApiRunner(provision_info=provision)
    return runner


# Beam's state sampler in this process samples every SAMPLING_PERIOD_MS (Beam's default: 200).
SAMPLING_PERIOD_MS = 20


def _shorten_state_sampling() -> None:
    """Beam's SDK worker stops its state-sampling thread at the end of every bundle and joins
    it, and that thread sleeps up to 200 ms between samples; the in-process engine runs each
    stage as one bundle, so a run waited up to 0.2 s at the end of each of its two long stages
    (a remote embedder's run of 10,852 chunks: 1.41-1.44x its latency limit with 20 ms,
    1.47-1.56x with 200 ms). Beam has no option for it: the sampler's default period is
    changed for this process (worker processes keep theirs), and only from the value that was
    measured, so a Beam that changes it is left alone. Sampling more often costs nothing
    measurable: it is a C thread that reads one field.
    """
    from apache_beam.runners.worker import statesampler

    init = statesampler.StateSampler.__init__
    if init.__defaults__ == (200,) == (statesampler.DEFAULT_SAMPLING_PERIOD_MS,):
        init.__defaults__ = (SAMPLING_PERIOD_MS,)
