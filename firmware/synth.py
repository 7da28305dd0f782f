"""Vendor synthesis at the trigger's clock: the HLS/Vivado scripts, their dry run, and the build.

hls4ml 1.3's Vitis backend builds with ``vitis-run --tcl build_prj.tcl --mode hls``, reading
its options from ``build_opt.tcl``: C-synthesis, then (``vsynth``) ``vivado -mode batch -source
vivado_synth.tcl``. Here that Vivado script is out-of-context synthesis *and* implementation
(place and route) of the HLS top at the project's clock, with utilization and timing reports
(``util.rpt``, ``timing.rpt``, read by ``firmware.reports``), and the top function is pipelined
at II = 1 under a latency target (``#pragma HLS LATENCY max=N``): by default the cycles the
Global Trigger's 50 ns budget allows at the clock (10 at 200 MHz, 2 at 40 MHz).

Without the tools nothing runs and the caller gets the exact command to run on a machine that
has them. :func:`dry_run` checks the generated scripts without them: it runs ``build_prj.tcl``
and ``vivado_synth.tcl`` in a Tcl interpreter (Python's ``tkinter``) where every vendor command
only records its call, then checks the calls: top, part, clock, C-synthesis, the Vivado step,
out-of-context synthesis, place, route, the reports, and the pragmas in the top function.
"""

from __future__ import annotations

import math
import os
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from firmware.reports import read_reports
from trigger.errors import TriggerError

__all__ = ("BUILD_COMMAND", "LATENCY_BUDGET_NS", "DryRun", "SynthResult", "SynthScriptError", "dry_run",
           "latency_cycles", "prepare_project", "synthesize", "write_build_options")

BUILD_COMMAND = ("vitis-run", "--tcl", "build_prj.tcl", "--mode", "hls")
BUILD_OPTIONS = {"reset": 1, "csim": 0, "synth": 1, "cosim": 0, "validation": 0, "export": 0,
                 "vsynth": 1, "fifo_opt": 0}
#: the Global Trigger's latency budget for the model: 2 cycles at 40 MHz, 10 at 200 MHz
LATENCY_BUDGET_NS = 50.0
VIVADO_SCRIPT, CLOCK_XDC = "vivado_synth.tcl", "ooc_clock.xdc"
_PIPELINE = re.compile(r"^(\s*)#pragma HLS PIPELINE\b[^\n]*$", re.MULTILINE)
_LATENCY = re.compile(r"#pragma HLS LATENCY max=(\d+)")
_LATENCY_LINE = re.compile(r"^[ \t]*#pragma HLS LATENCY\b[^\n]*\n", re.MULTILINE)


class SynthScriptError(TriggerError):
    """A generated vendor script that would not build what was asked (found by the dry run)."""


@dataclass(frozen=True)
class SynthResult:
    project: Path
    ran: bool
    command: str  # what to run, in the project directory
    reports: dict[str, Any]


def latency_cycles(clock_ns: float, budget_ns: float = LATENCY_BUDGET_NS) -> int:
    """The most whole clock cycles within ``budget_ns`` (at least one)."""
    if clock_ns <= 0 or budget_ns <= 0:
        msg = f"clock {clock_ns} ns, latency budget {budget_ns} ns: both must be positive"
        raise TriggerError(msg)
    return max(1, math.floor(budget_ns / clock_ns + 1e-9))


def write_build_options(project: Path, **changes: int) -> Path:
    """``build_opt.tcl``: C-synthesis plus the Vivado step (``vsynth``), no co-simulation."""
    options = {**BUILD_OPTIONS, **changes}
    body = "".join(f"    {key:<10} {value}\n" for key, value in options.items())
    path = project / "build_opt.tcl"
    path.write_text("array set opt {\n" + body + "}\n")
    return path


def _top_source(project: Path, top: str) -> Path:
    path = project / "firmware" / f"{top}.cpp"
    if not path.is_file():
        msg = f"{project}: no firmware/{top}.cpp; write the HLS project first (trigger firmware convert)"
        raise SynthScriptError(msg)
    return path


def _set_pipeline(project: Path, top: str, latency: int) -> None:
    """II = 1 and ``LATENCY max=latency`` on the top function (replacing hls4ml's bare PIPELINE)."""
    path = _top_source(project, top)
    text = _LATENCY_LINE.sub("", path.read_text())
    text, found = _PIPELINE.subn(lambda m: f"{m[1]}#pragma HLS PIPELINE II=1\n{m[1]}#pragma HLS LATENCY "
                                           f"max={latency}", text, count=1)
    if not found:
        msg = f"{path}: no '#pragma HLS PIPELINE' in the top function to set II and latency on"
        raise SynthScriptError(msg)
    path.write_text(text)


def _write_vivado_script(project: Path, clock_ns: float) -> None:
    """Out-of-context synthesis and implementation of the HLS RTL, in place of hls4ml's synthesis-only script."""
    (project / CLOCK_XDC).write_text(f"create_clock -period {clock_ns:.3f} -name ap_clk [get_ports ap_clk]\n")
    (project / VIVADO_SCRIPT).write_text(f"""\
# Out-of-context synthesis and implementation of the HLS top at the project's clock
# (build_prj.tcl runs it after C-synthesis when vsynth is set): utilization and timing reports.
set tcldir [file dirname [info script]]
source [file join $tcldir project.tcl]

add_files ${{project_name}}_prj/solution1/syn/verilog
read_xdc -mode out_of_context [file join $tcldir {CLOCK_XDC}]
synth_design -top ${{project_name}} -part $part -mode out_of_context
report_utilization -file vivado_synth.rpt
opt_design
place_design
phys_opt_design
route_design
report_utilization -file util.rpt
report_timing_summary -file timing.rpt
""")


def prepare_project(project: str | Path, top: str, clock_ns: float, latency: int | None = None) -> int:
    """Make a written hls4ml project build at the trigger's clock: II = 1, the latency target (default
    :func:`latency_cycles`), the build options and the out-of-context Vivado script. Returns the target."""
    project = Path(project)
    latency = latency_cycles(clock_ns) if latency is None else latency
    if latency < 1:
        msg = f"latency target {latency} cycles: use at least 1"
        raise TriggerError(msg)
    _set_pipeline(project, top, latency)
    _write_vivado_script(project, clock_ns)
    write_build_options(project)
    return latency


def synthesize(project: str | Path, run: bool | None = None) -> SynthResult:
    """Run the vendor build in an hls4ml project if ``vitis-run`` is on PATH (or ``run`` says so)."""
    project = Path(project)
    if not (project / "build_opt.tcl").is_file():
        write_build_options(project)
    command = " ".join(BUILD_COMMAND)
    tool = shutil.which(BUILD_COMMAND[0])
    should_run = tool is not None if run is None else run
    if should_run:
        log = project / "build.log"
        with log.open("w") as out:
            subprocess.run(BUILD_COMMAND, cwd=project, stdout=out, stderr=subprocess.STDOUT, check=True)
    return SynthResult(project, should_run, f"cd {project} && {command}", read_reports(project))


# Tcl in which every command Tcl itself lacks (the vendor's) records its call and returns "";
# exec records too, exit ends the script it is called from instead of the interpreter, and the
# RTL folder C-synthesis writes exists once csynth_design was called.
_RECORDER = """
set ::dry_calls {}
set ::dry_rtl 0
proc csynth_design {args} { lappend ::dry_calls [concat csynth_design $args]; set ::dry_rtl 1; return "" }
rename file ::tcl_file
proc file {command args} {
    if {$command in {exist exists} && $::dry_rtl && [string match */syn/verilog [lindex $args 0]]} { return 1 }
    return [::tcl_file $command {*}$args]
}
proc unknown {args} { lappend ::dry_calls $args; return "" }
rename exec ::tcl_exec
proc exec {args} { lappend ::dry_calls [concat exec $args]; return "" }
catch {rename exit ::tcl_exit}
proc exit {{status 0}} { lappend ::dry_calls [list exit $status]; return -code return }
rename puts ::tcl_puts
proc puts {args} {}
"""


@dataclass(frozen=True)
class DryRun:
    """What the vendor scripts would do: each script's recorded calls, its variables, and the checks passed."""

    calls: dict[str, list[list[str]]]
    variables: dict[str, str]
    checks: list[str]


def _trace(project: Path, script: str) -> tuple[list[list[str]], dict[str, str]]:
    """Run ``script`` in the project directory with the vendor commands recorded, not run."""
    try:
        import tkinter as tk
    except ModuleNotFoundError as err:
        msg = "the dry run needs Tcl through Python's tkinter (Debian/Ubuntu: apt-get install python3-tk)"
        raise TriggerError(msg) from err
    tcl = tk.Tcl()
    tcl.eval(_RECORDER)
    cwd = Path.cwd()
    os.chdir(project)
    try:
        tcl.eval(f"source {{{script}}}")
    except tk.TclError as err:
        msg = f"{project / script}: Tcl error: {err}"
        raise SynthScriptError(msg) from None
    finally:
        os.chdir(cwd)
    calls = [[str(word) for word in tcl.splitlist(c)] for c in tcl.splitlist(tcl.eval("set ::dry_calls"))]
    names = ("project_name", "part", "clock_period")
    return calls, {n: tcl.eval(f"set ::{n}") for n in names if tcl.eval(f"info exists ::{n}") == "1"}


def _option(call: list[str], flag: str) -> str | None:
    return call[call.index(flag) + 1] if flag in call[:-1] else None


def _require(condition: bool, what: str, checks: list[str]) -> None:
    if not condition:
        msg = f"dry run: {what}: not so"
        raise SynthScriptError(msg)
    checks.append(what)


def dry_run(project: str | Path, part: str, clock_ns: float, latency: int) -> DryRun:
    """Check ``build_prj.tcl`` and ``vivado_synth.tcl`` of a prepared project without the vendor tools;
    a :class:`SynthScriptError` names the first check that fails."""
    project = Path(project)
    hls, variables = _trace(project, "build_prj.tcl")
    top = variables.get("project_name", "")
    first = {call[0]: call for call in reversed(hls)}
    order = [call[0] for call in hls]
    checks: list[str] = []
    exits = [call for call in hls if call[0] == "exit" and call[1:] not in ([], ["0"])]
    _require(not exits, "build_prj.tcl ends without an error exit", checks)
    _require(first.get("set_top") == ["set_top", top], f"HLS top is {top}", checks)
    _require(["add_files", f"firmware/{top}.cpp"] == first.get("add_files", [])[:2]
             and (project / "firmware" / f"{top}.cpp").is_file(), f"source firmware/{top}.cpp exists", checks)
    _require(first.get("set_part") == ["set_part", part], f"part {part}", checks)
    period = _option(first.get("create_clock", []), "-period")
    _require(period is not None and float(period) == clock_ns, f"HLS clock {clock_ns} ns", checks)
    source = _top_source(project, top).read_text()
    _require("#pragma HLS PIPELINE II=1\n" in source, "top pipelined at II = 1", checks)
    _require(_LATENCY.findall(source) == [str(latency)], f"latency target <= {latency} cycles", checks)
    vivado = ["exec", "vivado", "-mode", "batch", "-source", VIVADO_SCRIPT]
    _require("csynth_design" in order and vivado in [c[:6] for c in hls]
             and order.index("csynth_design") < [c[:6] for c in hls].index(vivado),
             "C-synthesis, then Vivado", checks)
    impl, _ = _trace(project, VIVADO_SCRIPT)
    steps = [call[0] for call in impl]
    synth = next((c for c in impl if c[0] == "synth_design"), [])
    _require(_option(synth, "-mode") == "out_of_context" and _option(synth, "-top") == top
             and _option(synth, "-part") == part, "Vivado synthesis out of context, same top and part", checks)
    xdc = (project / CLOCK_XDC).read_text() if (project / CLOCK_XDC).is_file() else ""
    clock = re.search(r"create_clock -period ([\d.]+) -name ap_clk \[get_ports ap_clk\]", xdc)
    _require(next((c[:3] for c in impl if c[0] == "read_xdc"), []) == ["read_xdc", "-mode", "out_of_context"]
             and clock is not None and float(clock[1]) == clock_ns, f"Vivado clock ap_clk {clock_ns} ns", checks)
    _require(all(s in steps for s in ("place_design", "route_design"))
             and steps.index("synth_design") < steps.index("place_design") < steps.index("route_design"),
             "implementation: place and route after synthesis", checks)
    routed = steps.index("route_design")
    reports = {(c[0], _option(c, "-file")) for c in impl[routed:]}
    _require({("report_utilization", "util.rpt"), ("report_timing_summary", "timing.rpt")} <= reports,
             "utilization and timing reports after routing", checks)
    return DryRun({"build_prj.tcl": hls, VIVADO_SCRIPT: impl}, variables, checks)
