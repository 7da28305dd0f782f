"""Parse vendor reports: Vitis/Vivado HLS ``*_csynth.xml``, Vivado utilization and timing summaries.

Parsers take report *text* and return numbers (never strings); finding the files is
:func:`read_reports`' job. Vendor names are normalised at this edge: ``DSP48E`` becomes
``DSP``, CLB/Slice LUTs become ``LUT``, registers ``FF``, block RAM tiles ``BRAM_36K``.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from trigger.errors import TriggerError

__all__ = ("HlsSynthesis", "ReportError", "Timing", "Utilization", "parse_csynth_xml", "parse_timing_summary",
           "parse_utilization", "read_reports")

_RESOURCE_NAMES = {"DSP48E": "DSP", "DSP48E2": "DSP"}


class ReportError(TriggerError, ValueError):
    """A report that is not in the expected format."""


@dataclass(frozen=True)
class HlsSynthesis:
    """C-synthesis estimates: latency in cycles, initiation interval, resources."""

    target_clock_ns: float
    estimated_clock_ns: float
    latency_best: int
    latency_worst: int
    interval_min: int
    interval_max: int
    resources: dict[str, int]
    available: dict[str, int]

    @property
    def latency_ns(self) -> float:
        """Worst-case latency at the target clock."""
        return self.latency_worst * self.target_clock_ns

    def fraction(self, resource: str) -> float:
        """Share of the part's ``resource`` used (0 when the part has none)."""
        total = self.available.get(resource, 0)
        return self.resources.get(resource, 0) / total if total else 0.0


@dataclass(frozen=True)
class Utilization:
    """Used and available resources from a Vivado ``report_utilization``."""

    used: dict[str, float] = field(default_factory=dict)
    available: dict[str, float] = field(default_factory=dict)

    def fraction(self, resource: str) -> float:
        total = self.available.get(resource, 0)
        return self.used.get(resource, 0) / total if total else 0.0


@dataclass(frozen=True)
class Timing:
    """Worst negative and worst hold slack from a Vivado ``report_timing_summary``."""

    wns_ns: float
    whs_ns: float

    @property
    def met(self) -> bool:
        return self.wns_ns >= 0 and self.whs_ns >= 0


def _number(node: ET.Element | None, path: str) -> float:
    if node is None or (child := node.find(path)) is None or child.text is None:
        msg = f"csynth report has no {path}"
        raise ReportError(msg)
    try:
        return float(child.text.split()[0])
    except ValueError as err:
        msg = f"csynth report: {path} = {child.text!r} is not a number"
        raise ReportError(msg) from err


def parse_csynth_xml(text: str) -> HlsSynthesis:
    """Numbers of a ``<top>_csynth.xml`` (Vivado HLS or Vitis HLS)."""
    try:
        root = ET.fromstring(re.sub(r' xmlns="[^"]+"', "", text, count=1))
    except ET.ParseError as err:
        msg = f"csynth report is not XML ({err})"
        raise ReportError(msg) from err
    perf = root.find("PerformanceEstimates")
    area = root.find("AreaEstimates")

    def table(tag: str) -> dict[str, int]:
        node = area.find(tag) if area is not None else None
        if node is None:
            msg = f"csynth report has no AreaEstimates/{tag}"
            raise ReportError(msg)
        return {_RESOURCE_NAMES.get(c.tag, c.tag): int(float(c.text or 0)) for c in node}

    return HlsSynthesis(
        target_clock_ns=_number(root, "UserAssignments/TargetClockPeriod"),
        estimated_clock_ns=_number(perf, "SummaryOfTimingAnalysis/EstimatedClockPeriod"),
        latency_best=int(_number(perf, "SummaryOfOverallLatency/Best-caseLatency")),
        latency_worst=int(_number(perf, "SummaryOfOverallLatency/Worst-caseLatency")),
        interval_min=int(_number(perf, "SummaryOfOverallLatency/Interval-min")),
        interval_max=int(_number(perf, "SummaryOfOverallLatency/Interval-max")),
        resources=table("Resources"),
        available=table("AvailableResources"),
    )


#: (section number, row label prefix) -> normalised resource name
_UTILIZATION_ROWS = {
    (1, "CLB LUTs"): "LUT", (1, "Slice LUTs"): "LUT",
    (1, "CLB Registers"): "FF", (1, "Slice Registers"): "FF",
    (2, "Block RAM Tile"): "BRAM_36K", (2, "URAM"): "URAM",
    (3, "DSPs"): "DSP",
}


def parse_utilization(text: str) -> Utilization:
    """LUT, FF, BRAM, URAM and DSP rows of a Vivado utilization report (any column order)."""
    used: dict[str, float] = {}
    available: dict[str, float] = {}
    section, header = 0, []
    for line in text.splitlines():
        if match := re.match(r"^(\d+)\.\s", line):
            section = int(match.group(1))
        if not line.startswith("|"):
            continue
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if "Site Type" in cells[0]:
            header = cells
            continue
        label = cells[0].rstrip("*").strip()
        name = _UTILIZATION_ROWS.get((section, label))
        if name is None or not header:
            continue
        try:
            used[name] = float(cells[header.index("Used")])
            available[name] = float(cells[header.index("Available")])
        except (ValueError, IndexError) as err:
            msg = f"utilization report: cannot read the {label!r} row: {line.strip()}"
            raise ReportError(msg) from err
    if "LUT" not in used:
        msg = "utilization report has no LUT row (CLB LUTs or Slice LUTs)"
        raise ReportError(msg)
    return Utilization(used, available)


def parse_timing_summary(text: str) -> Timing:
    """WNS and WHS of the Design Timing Summary table."""
    lines = text.splitlines()
    for i, line in enumerate(lines):
        if "WNS(ns)" in line and "WHS(ns)" in line:
            columns = re.split(r"\s{2,}", line.strip())
            for row in lines[i + 1:i + 4]:
                values = row.split()
                if values and set(row.strip()) - {"-", " "}:  # skip the ------- underline
                    try:
                        return Timing(float(values[columns.index("WNS(ns)")]),
                                      float(values[columns.index("WHS(ns)")]))
                    except (ValueError, IndexError) as err:
                        msg = f"timing summary: cannot read {row.strip()!r}"
                        raise ReportError(msg) from err
    msg = "timing summary has no WNS(ns)/WHS(ns) table"
    raise ReportError(msg)


def read_reports(fw_dir: str | Path) -> dict[str, Any]:
    """Every report found under an HLS project directory, parsed; absent ones are left out."""
    fw_dir = Path(fw_dir)
    found: dict[str, Any] = {}
    csynth = sorted(fw_dir.glob("**/syn/report/*_csynth.xml"))
    if csynth:
        found["hls"] = parse_csynth_xml(csynth[0].read_text())
    for name, parser in (("vivado_synth.rpt", parse_utilization), ("util.rpt", parse_utilization),
                         ("timing.rpt", parse_timing_summary)):
        path = fw_dir / name
        if path.is_file():
            found[name] = parser(path.read_text())
    return found
