"""Moved to `beam_pipeline.chunking.transform`; this name stays for one release."""

import sys
import warnings

from .chunking import transform as _moved

warnings.warn("beam_pipeline.chunk moved to beam_pipeline.chunking.transform",
              DeprecationWarning, stacklevel=2)
sys.modules[__name__] = _moved
