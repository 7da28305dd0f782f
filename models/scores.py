"""Anomaly scores from network outputs. Pure numpy: the networks run elsewhere."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, cast

import numpy as np
from numpy.typing import NDArray

from trigger.schema import N_OBJECTS

__all__ = ("MASKED_SCORES", "SCORES", "anomaly_score", "kl_per_dimension")

F = NDArray[np.floating[Any]]

#: score name -> what it measures
SCORES = {
    "mse": "reconstruction MSE over the 57 inputs",
    "masked_mse": "reconstruction MSE over the inputs of filled slots only",
    "ffn": "seed-003 score: mean over the 19 slots of |dpT| + deta^2 + dphi^2",
    "mu2": "VAE encoder: sum of mu^2 over the latent space (AXOL1TL)",
    "kl": "VAE encoder: KL divergence of the latent distribution from N(0, 1)",
    "nll": "flow: negative log-likelihood of the scaled inputs, -log p(x)",
    "distilled": "student: the square of its output, which learns the log of its teacher's score",
    "residual": "VICReg features' latent autoencoder (AXOL1TL v5): its squared errors summed over the features",
}


#: the scores that read the mask of filled slots (the others accept ``mask=None``)
MASKED_SCORES = frozenset({"masked_mse"})


def anomaly_score(score: str, inputs: F, outputs: F | Sequence[F], mask: NDArray[np.bool_] | None) -> F:
    """Per-event anomaly score (float64) from the scorer network's ``outputs``."""
    if score in ("mu2", "kl", "distilled", "residual"):  # a VAE's encoder outputs (mu, log_var); a student
        # its one output; a vicreg network its autoencoder's residuals
        mu = np.asarray(outputs if score in ("distilled", "residual") else outputs[0], np.float64)
        if score != "kl":  # as the firmware computes it: the outputs' sum of squares
            return cast(F, np.sum(mu * mu, axis=1))
        log_var = np.asarray(outputs[1], np.float64)
        return cast(F, -0.5 * np.sum(1 + log_var - mu * mu - np.exp(log_var), axis=1))
    if score == "nll":  # the flow's outputs: z (the inputs' image, N(0, 1) for SM) and log|det dz/dx|
        flow = np.asarray(outputs, np.float64)
        z, log_det = flow[:, :-1], flow[:, -1]
        return cast(F, 0.5 * np.einsum("ij,ij->i", z, z) + 0.5 * z.shape[1] * np.log(2 * np.pi) - log_det)
    diff = np.asarray(inputs, np.float64) - np.asarray(outputs, np.float64)
    if score == "mse":  # row sums of squares by einsum: one pass, several times np.mean's speed
        return cast(F, np.einsum("ij,ij->i", diff, diff) / diff.shape[1])
    if score == "masked_mse":
        filled = cast(NDArray[np.bool_], mask)  # MASKED_SCORES: callers always pass the mask
        return cast(F, np.sum(filled * diff * diff, axis=1) / np.maximum(filled.sum(axis=1), 1))
    if score == "ffn":
        per_slot = diff.reshape(len(diff), N_OBJECTS, 3)
        return cast(F, np.mean(np.abs(per_slot[..., 0]) + per_slot[..., 1] ** 2 + per_slot[..., 2] ** 2, axis=1))
    msg = f"unknown score {score!r}; known: {', '.join(SCORES)}"
    raise ValueError(msg)


def kl_per_dimension(mu: F, log_var: F) -> NDArray[np.float64]:
    """Mean KL divergence of each latent dimension's posterior N(mu, exp(log_var)) from N(0, 1), over
    the events: a dimension near 0 carries no information (a collapsed posterior)."""
    mu, log_var = np.asarray(mu, np.float64), np.asarray(log_var, np.float64)
    return cast(NDArray[np.float64], 0.5 * np.mean(mu * mu + np.exp(log_var) - 1.0 - log_var, axis=0))
