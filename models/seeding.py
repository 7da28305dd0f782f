"""Reproducible training: the same seed gives the same weights, however busy the machine is."""

from __future__ import annotations

__all__ = ("seed_training",)


def seed_training(seed: int) -> None:
    """Seed Python's, numpy's and TensorFlow's generators and make TensorFlow's kernels deterministic.

    Seeds alone are not enough on a shared machine: TensorFlow's multi-threaded CPU kernels may then
    add in another order, and a 100-epoch VAE training left its twin at epoch 54 (``docs/decisions.md``,
    "Reproducible training"). With deterministic kernels two trainings running side by side agree bit
    for bit, at the same speed here.
    """
    import tensorflow as tf

    tf.keras.utils.set_random_seed(seed)
    tf.config.experimental.enable_op_determinism()
