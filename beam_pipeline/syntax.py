"""Moved to `beam_pipeline.chunking.syntax`; this name stays for one release."""

import sys
import warnings

from .chunking import syntax as _moved

warnings.warn("beam_pipeline.syntax moved to beam_pipeline.chunking.syntax", DeprecationWarning,
              stacklevel=2)
sys.modules[__name__] = _moved
