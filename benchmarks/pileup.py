"""How pileup moves the anomaly trigger: ``trigger pileup-scan`` on the project's samples, recorded.

For each <mu> with samples (``DIR/zerobias_pu{MU}_calibration.h5`` and ``DIR/{signal}_pu{MU}.h5``,
signals generated without the lepton trigger, as the Level-1 trigger sees them; ``make
zerobias-samples`` makes them), every model's firmware scores the zero-bias crossings and the
signals (``models.pileup_scan``): per signal the menu's efficiency, the anomaly trigger's at the
threshold that takes 1 kHz of that zero bias, and its pure efficiency (accepted by it and by no
seed); per model the threshold, its pure rate, and the rate that model's stored threshold (its own
calibration, as deployed) takes at that pileup. The JSON's results are the scan itself, which
``trigger report --pileup-scan`` reads.

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
OTHER_MODELS = [ROOT / "models" / "artifacts" / name for name in ("tiny-ae", "zb-ae")]  # scanned after the default


def main() -> int:
    from firmware.bundle import deployed_scorer
    from models.pileup_scan import group_by_pileup, scan_pileup
    from models.region_artifact import load_model
    from trigger.cli.pileup_scan import format_scan
    from trigger.menu import load_menu
    from trigger.rates import fpr_for_rate, parse_rate
    from trigger.sample import DEFAULT_MODEL

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dir", type=Path, default=ROOT / "data" / "zerobias", help="where the samples are")
    parser.add_argument("--mu", type=int, action="append", help="pileup values (default: 0, 20, 60)")
    parser.add_argument("--model", type=Path, action="append", help="models (default: the bundled default, tiny-ae and zb-ae)")
    parser.add_argument("--json", type=Path, default=None, help="write the numbers here")
    args = parser.parse_args()
    backgrounds, signals = [], []
    for mu in args.mu or (0, 20, 60):
        here = [args.dir / f"zerobias_pu{mu}_calibration.h5", *(args.dir / f"{name}_pu{mu}.h5" for name in SIGNALS)]
        missing = [p.name for p in here if not p.exists()]
        if missing:
            print(f"<mu> = {mu}: skipped, missing {', '.join(missing)}")
            continue
        backgrounds.append(here[0])
        signals.extend(here[1:])
    models = [load_model(path) for path in (args.model or [m for m in (DEFAULT_MODEL, *OTHER_MODELS) if m.exists()])]
    fpr = fpr_for_rate(parse_rate("1kHz"), parse_rate("40MHz"))
    scan = scan_pileup(models, group_by_pileup(backgrounds, signals), fpr, load_menu("run3"), deployed_scorer)
    print(format_scan(scan))
    if args.json:
        write_result(args.json, scan.as_dict(), headline(scan.points, bool(backgrounds) and subtracted(backgrounds[-1])))
    return 0


def subtracted(path: Path) -> bool:
    """Whether the sample was generated with ``--pileup-subtraction`` (its ``pileup`` attribute says so)."""
    from trigger.events import open_events

    with open_events(path) as events:
        return (events.attrs.get("pileup") or {}).get("subtraction") is not None


def headline(points: list[dict[str, Any]], pileup_subtracted: bool = False) -> dict[str, str]:
    """README's rows: at the highest <mu> measured, each model's ato4l efficiency and pure efficiency at
    1 kHz of that zero bias, and the rate each stored threshold takes there."""
    from trigger.rates import format_rate

    if not points:
        return {}
    mu = f"{points[-1]['mu']:g}" + (" (pileup subtracted)" if pileup_subtracted else "")
    rows = {}
    for name, model in points[-1]["models"].items():
        cell = model["signals"].get("ato4l")
        if cell is not None:
            rows[f"{name} at <mu> = {mu}, 1 kHz of zero bias: ato4l kept / kept by no L1 seed"] = (
                f"{100 * cell['anomaly']['fraction']:.2f} % / {100 * cell['pure']['fraction']:.2f} %")
        if model["stored_threshold_rate_hz"] is not None:
            rows[f"{name}'s stored threshold at <mu> = {mu} takes"] = format_rate(model["stored_threshold_rate_hz"])
    return rows


if __name__ == "__main__":
    raise SystemExit(main())
