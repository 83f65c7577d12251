"""What a DoFn emits from `finish_bundle`: Beam wants windowed values there, not elements.

DoFns that work ahead (a pool of embedding calls, a shard being written on a thread)
emit what is still in flight when the bundle ends.
"""

from __future__ import annotations

import apache_beam as beam
from apache_beam.transforms.window import GlobalWindow
from apache_beam.utils.timestamp import MIN_TIMESTAMP
from apache_beam.utils.windowed_value import WindowedValue


def in_global_window(value) -> WindowedValue:
    """`value` as an element of the global window."""
    return WindowedValue(value, MIN_TIMESTAMP, [GlobalWindow()])


def at_bundle_end(output):
    """An output of `process` (an element or a TaggedOutput) as `finish_bundle` must emit it."""
    if isinstance(output, beam.pvalue.TaggedOutput):
        return beam.pvalue.TaggedOutput(output.tag, in_global_window(output.value))
    return in_global_window(output)
