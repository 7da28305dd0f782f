"""Firmware: hls4ml conversion and C-simulation, the bit-exact batched emulator, the exactness check
and parsers for vendor reports. Synthesis runs and open-source resource estimates are still to come.
"""

from __future__ import annotations

__all__: tuple[str, ...] = ()
