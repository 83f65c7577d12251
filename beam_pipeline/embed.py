"""Moved to `beam_pipeline.embedding.transform`; this name stays for one release."""

import sys
import warnings

from .embedding import transform as _moved

warnings.warn("beam_pipeline.embed moved to beam_pipeline.embedding.transform",
              DeprecationWarning, stacklevel=2)
sys.modules[__name__] = _moved
