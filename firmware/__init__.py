"""hls4ml conversion, bit-exact emulation and resource estimates (not yet implemented)."""
