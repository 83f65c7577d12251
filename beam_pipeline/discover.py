"""Moved to `beam_pipeline.source.discover`; this name stays for one release."""

import sys
import warnings

from .source import discover as _moved

warnings.warn("beam_pipeline.discover moved to beam_pipeline.source.discover", DeprecationWarning,
              stacklevel=2)
sys.modules[__name__] = _moved
