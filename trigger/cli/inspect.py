"""``trigger inspect`` and ``trigger validate``: summarise and check an event file.

Both run the same checks; ``inspect`` also prints the file's provenance. The exit
status is 0 when every check passes, 1 when any fails, 2 when the file is unreadable.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from trigger.validate import QUANTILES, FileReport, Violation, validate_file

__all__ = ("add_arguments", "format_report", "run")


def add_arguments(parser: argparse.ArgumentParser, name: str) -> None:
    parser.add_argument("files", type=Path, nargs="+", metavar="FILE", help="HDF5 event file(s)")
    parser.add_argument("--max-events", type=int, default=None,
                        help="check only the first N events (default: all)")
    parser.add_argument("--batch-size", type=int, default=65536, help="events read at a time")
    parser.add_argument("--json", action="store_true", help="print a JSON summary instead of text")
    parser.set_defaults(show_provenance=name == "inspect")


def format_report(report: FileReport, show_provenance: bool = False) -> str:
    """A readable summary of one validated file."""
    lines = [f"{report.path}: {report.n_events} events, {report.dtype}, Particles (N, 19, 4)"]
    if report.schema_error:
        return f"{report.path}: FAIL: {report.schema_error}"
    if show_provenance and report.attrs:
        lines.append("  provenance:")
        for key, value in report.attrs.items():
            text = json.dumps(value) if not isinstance(value, str) else value
            lines.append(f"    {key}: {text if len(text) < 160 else text[:157] + '...'}")
    for name, desc in report.extra_datasets.items():
        lines.append(f"  extra dataset {name}: {desc}")
    if report.regions is not None:
        digest = report.regions.summary()
        lines.append(f"  calorimeter regions (18 phi x 14 eta, 0.5 GeV counts): "
                     f"{digest['nonzero_regions_per_event']:.1f} non-zero per event, "
                     f"sum E_T {digest['sum_et_gev_per_event']:.1f} GeV per event, "
                     f"{digest['saturated_regions']} saturated at 1023")
    lines.append("  objects per event (mean; events with 0, 1, 2, ...):")
    for name, hist in report.multiplicity.items():
        total = max(int(hist.sum()), 1)
        mean = (hist * range(len(hist))).sum() / total
        lines.append(f"    {name:<10} {mean:5.2f}  {' '.join(str(int(n)) for n in hist)}")
    head = " ".join(f"{q:>7.0%}" for q in QUANTILES)
    lines.append(f"  pT quantiles [GeV] (events with the object) {head}")
    for name, quantity in report.pt.items():
        values = quantity.quantiles()
        cells = " ".join(f"{v:7.1f}" for v in values) if values else "   (none)"
        lines.append(f"    {name:<41} {cells}")
    if report.n_events:
        lines.append(f"  single-lepton trigger (e or mu pT > 23 GeV): "
                     f"{report.triggered / report.n_events:.1%} of events")
    if report.ok:
        checked = [v for v in Violation if v is not Violation.REGION_RANGE or report.regions is not None]
        lines.append("  checks: PASS (" + ", ".join(v.name.lower() for v in checked) + ")")
    else:
        lines.append("  checks: FAIL")
        for kind, n in report.violations.items():
            first = ", ".join(str(i) for i in report.first_events[kind])
            lines.append(f"    {kind.name.lower()}: {n} events ({kind.value}); first: {first}")
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    reports = [validate_file(path, args.batch_size, args.max_events) for path in args.files]
    if args.json:
        json.dump([r.summary() for r in reports], sys.stdout, indent=2)
        print()
    else:
        print("\n\n".join(format_report(r, args.show_provenance) for r in reports))
    return 0 if all(r.ok for r in reports) else 1
