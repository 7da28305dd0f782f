"""Quantization-aware autoencoders: configuration, networks, training, artifacts, evaluation.

Typical use::

    from models.artifact import load_artifact
    artifact = load_artifact("models/artifacts/tiny-ae")
    scores = artifact.score(particles)          # (N, 19, 4) raw events -> anomaly scores
"""

from __future__ import annotations

__all__: tuple[str, ...] = ()
