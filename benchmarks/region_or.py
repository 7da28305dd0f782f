"""The calorimeter view beside the object view at the working point: each alone and their OR at 1 kHz.

Scores the same events twice with firmware: their ``CaloRegions`` with the region model's
(``--model``, the bundled ``cicada-student`` by default: ``RegionFirmware``, its native kernel) and
their ``Particles`` with the object model's (``--object-model``, the bundled default). Per signal,
at ``--accept-rate`` of the bunch-crossing rate on ``--background``'s SM events (nothing trained on
them: the calibration sample with regions): what the region model keeps alone, what the object
model keeps alone, and their OR with each at an equal share of the same total rate
(``models.combined``): what either keeps, and what only the regions keep.

    python benchmarks/region_or.py --background data/calibration/sm_cocktail_calibration_regions.h5 \\
        --signal data/sample_regions/ato4l.h5 [--signal ...] [--model DIR] [--object-model DIR] [--json out.json]
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
from regions import or_of_triggers, read_events
from tail import efficiency_cells, summarised_working_point


def percent(cell: dict[str, Any]) -> str:
    return f"{100 * cell['eff']:.2f} %"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--background", type=Path, required=True, help="SM events with CaloRegions, never trained on")
    parser.add_argument("--signal", type=Path, action="append", required=True, help="signal events with CaloRegions")
    parser.add_argument("--model", type=Path, default=Path("models/artifacts/cicada-student"), help="region model")
    parser.add_argument("--object-model", type=Path, default=None, help="object model (default: the bundled default)")
    parser.add_argument("--accept-rate", default="1kHz", help="the working point, of the 40 MHz bunch crossings")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()

    from firmware.bundle import bundle_for
    from models.artifact import load_artifact
    from models.evaluate import signal_name
    from models.region_artifact import load_region_artifact
    from trigger.rates import fpr_for_rate, parse_rate
    from trigger.sample import default_model

    fpr = fpr_for_rate(parse_rate(args.accept_rate))
    object_path = args.object_model or default_model()
    regions, objects = bundle_for(load_region_artifact(args.model)), bundle_for(load_artifact(object_path))
    samples = {"SM": read_events(args.background)} | {signal_name(p): read_events(p) for p in args.signal}
    region_scores = {k: regions.scores(r) for k, (r, _) in samples.items()}
    object_scores = {k: objects.scores(p) for k, (_, p) in samples.items()}
    signals = [k for k in samples if k != "SM"]
    alone = {"regions": summarised_working_point(region_scores, fpr),
             "objects": summarised_working_point(object_scores, fpr)}
    both = or_of_triggers(region_scores, object_scores, fpr)
    for name, wp in alone.items():
        print(f"{name:<8} alone at FPR {fpr:g}: {efficiency_cells(wp, signals)}")
    print(f"OR, {both['sm_each']} SM events each, {both['sm_either']} by either of {both['sm_events']:,}: " + "  ".join(
        f"{s} {percent(both['signals'][s]['either'])} (only the regions {percent(both['signals'][s]['region_only'])})"
        for s in signals))
    results = {"model": args.model.name, "object_model": object_path.name, "background": args.background.name,
               "sm_events": len(samples["SM"][0]), "fpr": fpr, "alone": alone, "or": both}
    if args.json:
        shown = [s for s in signals if s in ("leptoquark", "htautau")] or signals
        write_result(args.json, results, headline={
            f"{args.accept_rate} of {len(samples['SM'][0]):,} SM events, regions / objects / their OR: "
            + ", ".join(shown): "; ".join(
                f"{percent(alone['regions'][s])} / {percent(alone['objects'][s])} / "
                f"{percent(both['signals'][s]['either'])}" for s in shown)})
    return 0


if __name__ == "__main__":
    sys.exit(main())
