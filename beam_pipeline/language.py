"""Moved to `beam_pipeline.source.language`; this name stays for one release."""

import sys
import warnings

from .source import language as _moved

warnings.warn("beam_pipeline.language moved to beam_pipeline.source.language", DeprecationWarning,
              stacklevel=2)
sys.modules[__name__] = _moved
