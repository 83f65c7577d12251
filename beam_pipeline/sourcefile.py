"""Moved to `beam_pipeline.source.text`; this name stays for one release."""

import sys
import warnings

from .source import text as _moved

warnings.warn("beam_pipeline.sourcefile moved to beam_pipeline.source.text", DeprecationWarning,
              stacklevel=2)
sys.modules[__name__] = _moved
