"""Firmware: hls4ml conversion and C-simulation, the bit-exact batched emulator, the exactness check.

Synthesis scripts, vendor report parsing and open-source resource estimates are still to come.
"""

from __future__ import annotations

__all__: tuple[str, ...] = ()
