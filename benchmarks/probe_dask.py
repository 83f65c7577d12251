"""Probe Beam's DaskRunner for what this pipeline relies on; the reasons beam-index refuses it.

    pip install 'apache-beam[dask]'   # in a separate venv: not a dependency of this project
    python -m benchmarks.probe_dask

Each probe is a small pipeline shaped like one of ours, run on a local Dask cluster bound to
127.0.0.1 (no dashboard), its output counted by the pipeline itself:
- elements emitted in finish_bundle, as BatchChunks emits a bundle's last batch and
  WriteShards its last shard;
- a ParDo with a tagged output, as ChunkFile (records and chunks), EmbedBatch (vectors and
  errors) and AssembleFile (records and rows) have;
- `result.metrics()`, where ProcessingStats come from.
Prints one line per probe: what the FnApiRunner gives, and what the DaskRunner gave.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import apache_beam as beam
from apache_beam.options.pipeline_options import PipelineOptions


class EmitAtBundleEnd(beam.DoFn):
    def start_bundle(self):
        self.held = []

    def process(self, element):
        self.held.append(element)

    def finish_bundle(self):
        from apache_beam.transforms.window import GlobalWindow
        from apache_beam.utils.timestamp import MIN_TIMESTAMP
        from apache_beam.utils.windowed_value import WindowedValue

        for element in self.held:
            yield WindowedValue(element, MIN_TIMESTAMP, [GlobalWindow()])


class SplitByParity(beam.DoFn):
    def process(self, element):
        if element % 2:
            yield beam.pvalue.TaggedOutput("odd", element)
        else:
            yield element


def _count(flags: list[str], build) -> str:
    """Run a one-leaf pipeline (the DaskRunner computes only a graph's last leaf) and return
    the count its leaf wrote."""
    with tempfile.TemporaryDirectory(prefix="probe-dask-") as tmp:
        target = Path(tmp) / "count"
        p = beam.Pipeline(options=PipelineOptions(flags))
        _ = (build(p | beam.Create(list(range(100))))
             | beam.combiners.Count.Globally()
             | beam.Map(lambda n: target.write_text(str(n))))
        p.run().wait_until_finish()
        return target.read_text() if target.exists() else "nothing"


def probe(flags: list[str]) -> list[tuple[str, str]]:
    def tagged(tag):
        def build(numbers):
            split = numbers | beam.ParDo(SplitByParity()).with_outputs("odd", main="even")
            return split[tag]
        return build

    findings = [
        ("elements emitted in finish_bundle (of 100)",
         _count(flags, lambda numbers: numbers | beam.ParDo(EmitAtBundleEnd()))),
        ("main output of a tagged ParDo (50 even)", _count(flags, tagged("even"))),
        ("its tagged output (50 odd)", _count(flags, tagged("odd"))),
    ]
    p = beam.Pipeline(options=PipelineOptions(flags))
    _ = (p | beam.Create(list(range(100)))
         | beam.Map(lambda x: beam.metrics.Metrics.counter("probe", "seen").inc() or x))
    result = p.run()
    result.wait_until_finish()
    try:
        counters = result.metrics().query()["counters"]
        seen = str(sum(c.committed or c.attempted or 0 for c in counters))
    except NotImplementedError:
        seen = "NotImplementedError"
    findings.append(("metrics(): a counter of 100 increments", seen))
    return findings


def main() -> int:
    try:
        from distributed import Client, LocalCluster
    except ImportError:
        print("needs the Dask extra: pip install 'apache-beam[dask]'", file=sys.stderr)
        return 2
    with LocalCluster(n_workers=2, threads_per_worker=1, host="127.0.0.1",
                      dashboard_address=None, processes=True) as cluster, Client(cluster):
        flags = ["--runner=apache_beam.runners.dask.dask_runner.DaskRunner",
                 f"--dask_client_address={cluster.scheduler_address}"]
        reference = dict(probe(["--runner=FnApiRunner"]))
        print(f"{'probe':46}{'FnApiRunner':>14}{'DaskRunner':>22}")
        for what, got in probe(flags):
            print(f"{what:46}{reference[what]:>14}{got:>22}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
