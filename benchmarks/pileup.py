"""How pileup moves the anomaly trigger: efficiency and pure efficiency at 1 kHz at each <mu>.

For each <mu> with samples (``DIR/zerobias_pu{MU}_calibration.h5`` and ``DIR/{signal}_pu{MU}.h5``,
signals generated without the lepton trigger, as the Level-1 trigger sees them; ``make
zerobias-samples`` makes them), every model's firmware scores the zero-bias crossings and the
signals, and ``trigger evaluate --menu run3 --recalibrate`` gives, per signal, the menu's
efficiency, the anomaly trigger's at the threshold that takes 1 kHz of that zero bias, and its pure
efficiency (accepted by it and by no seed); per model the threshold, its pure rate, and the rate
that model's stored threshold (its own calibration, as deployed) takes at that pileup.

    python benchmarks/pileup.py [--dir data/zerobias] [--mu 0 --mu 20 --mu 60] [--model DIR ...]
                                [--json benchmarks/results/pileup.json]
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from record import write_result

ROOT = Path(__file__).resolve().parents[1]
SIGNALS = ("ato4l", "leptoquark", "htautau", "htaunu")
MODELS = [ROOT / "models" / "artifacts" / name for name in ("tiny-ae", "zb-ae")]


def at_pileup(models: list[Any], background: Path, signals: list[Path], fpr: float) -> dict[str, Any]:
    """One <mu>: the menu view at 1 kHz of this zero bias, and each stored threshold's rate on it."""
    from firmware.bundle import deployed_scorer
    from models.evaluate import evaluate
    from trigger.menu import load_menu
    from trigger.rates import BX_RATE_HZ

    here = evaluate(models, background, signals, fpr, scorer=deployed_scorer, menu=load_menu("run3"),
                    recalibrate=True)
    out: dict[str, Any] = {}
    for label, model in here.models.items():
        if model["variant"] != "quantized":
            continue
        cells = {name: {**s["menu"], "threshold": s["working_point"]["threshold"]}
                 for name, s in model["signals"].items()}
        deployed = next(iter(model["signals"].values()))["working_point"].get("stored_threshold")
        out[label] = {"signals": cells, "background": model["menu_background"], "stored_threshold": deployed,
                      "stored_threshold_rate_hz": None if deployed is None else deployed["fpr"] * BX_RATE_HZ}
    return out


def main() -> int:
    from models.region_artifact import load_model
    from trigger.rates import format_rate, fpr_for_rate, parse_rate

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dir", type=Path, default=ROOT / "data" / "zerobias", help="where the samples are")
    parser.add_argument("--mu", type=int, action="append", help="pileup values (default: 0, 20, 60)")
    parser.add_argument("--model", type=Path, action="append", help="models (default: tiny-ae and zb-ae)")
    parser.add_argument("--json", type=Path, default=None, help="write the numbers here")
    args = parser.parse_args()
    fpr = fpr_for_rate(parse_rate("1kHz"), parse_rate("40MHz"))
    models = [load_model(path) for path in (args.model or [m for m in MODELS if m.exists()])]
    results: dict[str, Any] = {"fpr": fpr, "menu": "run3", "by_mu": {}}
    for mu in args.mu or (0, 20, 60):
        background = args.dir / f"zerobias_pu{mu}_calibration.h5"
        signals = [args.dir / f"{name}_pu{mu}.h5" for name in SIGNALS]
        missing = [p.name for p in (background, *signals) if not p.exists()]
        if missing:
            print(f"<mu> = {mu}: skipped, missing {', '.join(missing)}")
            continue
        results["by_mu"][str(mu)] = at_pileup(models, background, signals, fpr)
        for label, model in results["by_mu"][str(mu)].items():
            b, stored = model["background"], model["stored_threshold"]
            print(f"<mu> = {mu:>2}  {label:<20} threshold {next(iter(model['signals'].values()))['threshold']:.4g}  "
                  f"pure rate {format_rate(b['pure']['rate_hz'])} of {format_rate(b['anomaly']['rate_hz'])}; " +
                  ("no stored threshold at this rate" if stored is None else
                   f"its stored threshold {stored['threshold']:.4g} takes {format_rate(model['stored_threshold_rate_hz'])}"))
            for name, cell in model["signals"].items():
                print(f"    {name:<11} menu {cell['menu']['fraction']:.4f}  anomaly {cell['anomaly']['fraction']:.4f}  "
                      f"pure {cell['pure']['fraction']:.4f} [{cell['pure']['low']:.4f}, {cell['pure']['high']:.4f}]")
    if args.json:
        write_result(args.json, results, headline(results["by_mu"]))
    return 0


def headline(by_mu: dict[str, Any]) -> dict[str, str]:
    """README's rows: at the highest <mu> measured, each model's ato4l efficiency and pure efficiency at
    1 kHz of that zero bias, and the rate each stored threshold takes there."""
    from trigger.rates import format_rate

    if not by_mu:
        return {}
    mu = max(by_mu, key=int)
    rows = {}
    for label, model in by_mu[mu].items():
        name = label.split("/")[0]
        cell = model["signals"].get("ato4l")
        if cell is not None:
            rows[f"{name} at <mu> = {mu}, 1 kHz of zero bias: ato4l kept / kept by no L1 seed"] = (
                f"{100 * cell['anomaly']['fraction']:.2f} % / {100 * cell['pure']['fraction']:.2f} %")
        if model["stored_threshold_rate_hz"] is not None:
            rows[f"{name}'s stored threshold at <mu> = {mu} takes"] = format_rate(model["stored_threshold_rate_hz"])
    return rows


if __name__ == "__main__":
    raise SystemExit(main())
