"""Streaming trigger-style anomaly filter for collider events: the shared core.

Event I/O in the ADC2021 layout, validation, preprocessing and the Pythia8
stand-in generator live here; models, firmware and replay build on them.
"""

from __future__ import annotations

__version__ = "0.1.0"
__all__ = ("__version__",)
