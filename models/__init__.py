"""Quantization-aware autoencoders, training and evaluation (not yet implemented)."""
