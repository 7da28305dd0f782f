from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from firmware.reports import (
    ReportError,
    parse_csynth_xml,
    parse_timing_summary,
    parse_utilization,
    read_reports,
)

REPORTS = Path(__file__).parent / "data" / "reports"


def test_vitis_csynth_gives_latency_interval_and_resources() -> None:
    hls = parse_csynth_xml((REPORTS / "vitis_csynth.xml").read_text())
    assert (hls.latency_best, hls.latency_worst, hls.interval_min, hls.interval_max) == (9, 9, 1, 1)
    assert hls.target_clock_ns == 5.0 and hls.estimated_clock_ns == pytest.approx(3.617)
    assert hls.latency_ns == 45.0
    assert hls.resources == {"BRAM_18K": 0, "DSP": 4, "FF": 3120, "LUT": 18844, "URAM": 0}
    assert hls.fraction("LUT") == pytest.approx(18844 / 1182240)


def test_vivado_hls_names_and_namespace_are_normalised() -> None:
    hls = parse_csynth_xml((REPORTS / "vivado_hls_csynth.xml").read_text())
    assert hls.resources["DSP"] == 171 and hls.available["DSP"] == 6840
    assert (hls.latency_best, hls.latency_worst, hls.interval_max) == (7, 10, 2)
    assert hls.latency_ns == 50.0


@pytest.mark.parametrize("name", ["vivado_synth.rpt", "vivado_synth_prohibited.rpt"])
def test_utilization_reads_used_and_available_by_column_name(name: str) -> None:
    util = parse_utilization((REPORTS / name).read_text())
    expected = {"vivado_synth.rpt": {"LUT": 17402, "FF": 2987, "BRAM_36K": 1, "URAM": 0, "DSP": 3},
                "vivado_synth_prohibited.rpt": {"LUT": 9120, "FF": 1530, "BRAM_36K": 0, "URAM": 0,
                                                "DSP": 0}}[name]
    assert util.used == expected
    assert util.available["LUT"] == 1182240 and util.available["DSP"] == 6840
    assert util.fraction("LUT") == pytest.approx(expected["LUT"] / 1182240)


def test_timing_summary_gives_worst_slacks() -> None:
    timing = parse_timing_summary((REPORTS / "timing.rpt").read_text())
    assert (timing.wns_ns, timing.whs_ns) == (-0.214, 0.031)
    assert not timing.met


@pytest.mark.parametrize(
    ("parser", "text", "message"),
    [
        (parse_csynth_xml, "<profile><UserAssignments/></profile>", "no UserAssignments/TargetClockPeriod"),
        (parse_csynth_xml, "not xml at all", "not XML"),
        (parse_utilization, "1. CLB Logic\n| Site Type | Used |\n", "no LUT row"),
        (parse_timing_summary, "WNS only", "no WNS"),
    ],
)
def test_malformed_reports_raise_report_errors(parser, text: str, message: str) -> None:
    with pytest.raises(ReportError, match=message):
        parser(text)


def test_read_reports_finds_what_a_project_has(tmp_path: Path) -> None:
    report_dir = tmp_path / "dense_ae_prj" / "solution1" / "syn" / "report"
    report_dir.mkdir(parents=True)
    shutil.copy(REPORTS / "vitis_csynth.xml", report_dir / "dense_ae_csynth.xml")
    shutil.copy(REPORTS / "vivado_synth.rpt", tmp_path / "vivado_synth.rpt")
    found = read_reports(tmp_path)
    assert set(found) == {"hls", "vivado_synth.rpt"}
    assert found["hls"].latency_worst == 9 and found["vivado_synth.rpt"].used["LUT"] == 17402
    assert read_reports(tmp_path / "empty") == {}
