"""Runners for tests: the DirectRunner's engine with the metrics other runners give.

Named by their dotted path (`--runner=beam_pipeline.testing.runners.NoMetricsRunner`), as a
user names a runner Beam does not list; both run on the FnApiRunner, so they are local modes.

- `NoMetricsRunner`: its result raises NotImplementedError from `metrics()`, as Beam 2.77's
  DaskRunner's does.
- `DoubleCountingRunner`: reports each counter of `files_processed` one too high, as a runner
  that counted a failed attempt of a bundle would.
"""

from __future__ import annotations

from apache_beam.metrics.execution import MetricResult
from apache_beam.runners.portability.fn_api_runner import FnApiRunner
from apache_beam.runners.runner import PipelineResult

from ..runtime.counters import FILES_PROCESSED


class _Result(PipelineResult):
    def __init__(self, inner: PipelineResult):
        super().__init__(inner.state)
        self._inner = inner

    def wait_until_finish(self, duration=None):
        self._state = self._inner.wait_until_finish(duration)
        return self._state


class _NoMetrics(_Result):
    """metrics() is PipelineResult's: NotImplementedError."""


class NoMetricsRunner(FnApiRunner):
    def run_pipeline(self, pipeline, options):
        return _NoMetrics(super().run_pipeline(pipeline, options))


class _Inflated(_Result):
    def metrics(self):
        return _InflatedMetrics(self._inner.metrics())


class _InflatedMetrics:
    def __init__(self, inner):
        self._inner = inner

    def query(self, filter=None):
        results = self._inner.query(filter)
        results["counters"] = [
            MetricResult(item.key, (item.committed or 0) + 1, (item.attempted or 0) + 1)
            if item.key.metric.name == FILES_PROCESSED else item
            for item in results["counters"]]
        return results


class DoubleCountingRunner(FnApiRunner):
    def run_pipeline(self, pipeline, options):
        return _Inflated(super().run_pipeline(pipeline, options))
