"""starbench: benchmarking and evaluation toolkit for multi-domain image-to-image translation."""
from __future__ import annotations

__version__ = "0.1.0"

from starbench.errors import StarbenchError

__all__ = ["StarbenchError", "__version__"]
