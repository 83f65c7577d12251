"""Moved to `beam_pipeline.source.secretscan`; this name stays for one release."""

import sys
import warnings

from .source import secretscan as _moved

warnings.warn("beam_pipeline.secretscan moved to beam_pipeline.source.secretscan", DeprecationWarning,
              stacklevel=2)
sys.modules[__name__] = _moved
