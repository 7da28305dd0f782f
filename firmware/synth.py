"""Vendor synthesis: write the full HLS/Vivado project and run it where the tools exist.

hls4ml 1.3's Vitis backend builds with ``vitis-run --tcl build_prj.tcl --mode hls``, reading
its options from ``build_opt.tcl``. Without the tool on PATH nothing runs and the caller
gets the exact command to run on a machine that has it.
"""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from firmware.reports import read_reports

__all__ = ("BUILD_COMMAND", "SynthResult", "synthesize", "write_build_options")

BUILD_COMMAND = ("vitis-run", "--tcl", "build_prj.tcl", "--mode", "hls")
BUILD_OPTIONS = {"reset": 1, "csim": 0, "synth": 1, "cosim": 0, "validation": 0, "export": 0,
                 "vsynth": 1, "fifo_opt": 0}


@dataclass(frozen=True)
class SynthResult:
    project: Path
    ran: bool
    command: str  # what to run, in the project directory
    reports: dict[str, Any]


def write_build_options(project: Path, **changes: int) -> Path:
    """``build_opt.tcl``: C-synthesis plus Vivado logic synthesis, no co-simulation."""
    options = {**BUILD_OPTIONS, **changes}
    body = "".join(f"    {key:<10} {value}\n" for key, value in options.items())
    path = project / "build_opt.tcl"
    path.write_text("array set opt {\n" + body + "}\n")
    return path


def synthesize(project: str | Path, run: bool | None = None) -> SynthResult:
    """Run the vendor build in an hls4ml project if ``vitis-run`` is on PATH (or ``run`` says so)."""
    project = Path(project)
    write_build_options(project)
    command = " ".join(BUILD_COMMAND)
    tool = shutil.which(BUILD_COMMAND[0])
    should_run = tool is not None if run is None else run
    if should_run:
        log = project / "build.log"
        with log.open("w") as out:
            subprocess.run(BUILD_COMMAND, cwd=project, stdout=out, stderr=subprocess.STDOUT, check=True)
    return SynthResult(project, should_run, f"cd {project} && {command}", read_reports(project))
