"""The AXOL1TL-style VAE's two scores at the working point, beside the default autoencoder.

A VAE can be scored by its encoder alone in two ways: ``sum(mu^2)`` (what AXOL1TL v1-v4 compute on
chip, and what this project's firmware computes) and the KL divergence of the latent distribution
from N(0, 1) (needs exp(log_var): software only). Each is measured alone and with the model's
multiplicity prior added (``models.multiplicity``, the same tables for both), and the bundled
decision -- the firmware's ``sum(mu^2)`` plus prior, by the bit-exact emulator -- beside the
default model's firmware decision, on the same events: efficiency at FPR 2.5e-5 (1 kHz of 40 MHz)
with 68 % Clopper-Pearson intervals and the AUC, per signal.

The prior's weight is swept (``--weights``) for both scores, in multiples of the counts' surprise
in nats, so that the model's weight can be read against its neighbours.

    python benchmarks/vae.py [--model models/artifacts/vae] [--default models/artifacts/tiny-ae]
                             [--weights 0 16 32 64 128] [--json out.json]
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np
from numpy.typing import NDArray
from record import write_result
from tail import CALIBRATION, FPR, SIGNALS, efficiency_cells, summarised_working_point

ROOT = Path(__file__).resolve().parents[1]
F64 = NDArray[np.float64]


def latent_scores(artifact: Any, particles: NDArray[Any]) -> dict[str, F64]:
    """The QKeras encoder's ``mu2`` and ``kl`` scores of ``particles``, without the prior, and the
    counts' ``surprise`` in nats (the prior over its weight)."""
    from models.scores import anomaly_score

    x = artifact.inputs(particles)
    outputs = artifact.networks["quantized"].scorer.predict(x, batch_size=8192, verbose=0)
    scores = {score: anomaly_score(score, x, outputs, None) for score in ("mu2", "kl")}
    return scores | {"surprise": artifact.prior.values(x) / artifact.prior.weight}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=Path, default=ROOT / "models" / "artifacts" / "vae")
    parser.add_argument(
        "--default",
        type=Path,
        default=ROOT / "models" / "artifacts" / "tiny-ae",
        help="the model to compare with, by its firmware decision (tiny-ae: the autoencoder with the same prior)",
    )
    parser.add_argument("--background", type=Path, default=CALIBRATION, help="SM events (never trained on)")
    parser.add_argument("--signal", type=Path, action="append", default=None)
    parser.add_argument(
        "--weights",
        type=float,
        nargs="+",
        default=[0.0, 16.0, 32.0, 64.0, 128.0],
        help="prior weights to sweep, in multiples of the counts' surprise in nats",
    )
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()

    from firmware.bundle import bundle_for
    from models.artifact import load_artifact
    from models.evaluate import read_signals
    from trigger.events import open_events

    vae, default = load_artifact(args.model), load_artifact(args.default)
    if vae.config.model.kind != "vae" or vae.prior is None:
        print(f"{args.model}: not a VAE with a multiplicity prior", file=sys.stderr)
        return 2
    with open_events(args.background) as events:
        background = events.read(0, events.n_events)
    signals = read_signals(args.signal or SIGNALS)
    samples = {"SM": background} | signals
    latent = {k: latent_scores(vae, v) for k, v in samples.items()}
    default_bundle, vae_bundle = bundle_for(default), bundle_for(vae)
    scores: dict[str, dict[str, F64]] = {
        f"{args.default.name} firmware (its decision)": {k: default_bundle.scores(v) for k, v in samples.items()},
        f"{args.model.name} firmware: sum(mu^2) + prior (its decision)": {
            k: vae_bundle.scores(v) for k, v in samples.items()},
    }
    for score in ("mu2", "kl"):
        for weight in args.weights:
            scores[f"{score} + {weight:g} x surprise"] = {
                k: latent[k][score] + weight * latent[k]["surprise"] for k in samples}
    results: dict[str, Any] = {
        "model": vae.config.model.name,
        "default": default.config.model.name,
        "prior_weight": vae.prior.weight,
        "sm_events": len(background),
        "fpr": FPR,
        "scores": {},
    }
    print(f"efficiency at FPR {FPR:g} [68 % CP], AUC; {len(background):,} SM events")
    for name, values in scores.items():
        wp = results["scores"][name] = summarised_working_point(values, FPR)
        print(f"  {name:<52} mean {100 * wp['mean_eff']:5.2f} % AUC {wp['mean_auc']:.4f}  "
              f"{efficiency_cells(wp, signals)}")
    if args.json:
        write_result(args.json, results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
