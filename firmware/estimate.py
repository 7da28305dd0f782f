"""An open-source resource and latency estimate: da4ml Verilog -> Yosys ``synth_xilinx``.

No vendor tools: the network is written as distributed-arithmetic RTL (``firmware.rtl``,
DSP-free by construction), synthesized by yosys for the part's family, and the LUT, FF,
DSP and block-RAM cells are counted. Latency is the pipeline depth times the clock
period. Timing closure is not checked (yosys has no Xilinx timing model), so every number
is labelled an estimate. The RTL ends in the score and the accept bit (``firmware.head``), so
the figures include the score datapath and the comparator; it is simulated on real events and
its score and decision compared bit for bit with the emulator's.
"""

from __future__ import annotations

import json
import re
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from firmware.bundle import bundle_for
from firmware.convert import DEFAULT_CLOCK_NS, DEFAULT_PART, project_name
from firmware.emulator import Emulator
from firmware.rtl import LATENCY_TARGET_NS, RtlDesign, simulate, write_verilog
from firmware.tools import YOWASP, tool_versions, yosys_command
from models.region_artifact import TriggerModel
from trigger.contracts import Estimate
from trigger.errors import TriggerError

__all__ = ("LABEL", "PART_RESOURCES", "cells_to_resources", "estimate", "estimate_emulator", "parse_yosys_stat",
           "run_yosys", "yosys_family")

LABEL = "open-source estimate (da4ml + yosys synth_xilinx), not a vendor report"
#: resources of parts we know; others get no percentages
PART_RESOURCES = {
    "xcvu9p": {"LUT": 1_182_240, "FF": 2_364_480, "DSP": 6_840, "BRAM_36K": 2_160},
}
#: 2 % of a VU9P's LUTs: the logic a trigger's firmware may take
LUT_BUDGET = 23_640
#: the targets of a trigger's firmware: 50 ns at 200 MHz, 2 % of a VU9P's LUTs, no DSP
TARGETS = (("latency_ns", LATENCY_TARGET_NS), ("LUT", LUT_BUDGET), ("DSP", 0))


def yosys_family(part: str) -> str:
    """``synth_xilinx -family`` for a part name: 7-series, UltraScale or UltraScale+."""
    p = part.lower()
    if p.startswith(("xc7", "xa7", "xq7")):
        return "xc7"
    if re.match(r"^xc(ku|vu)\d+(?!\d|p)", p):  # UltraScale (no "p")
        return "xcu"
    return "xcup"


def parse_yosys_stat(stat_json: str, top: str) -> dict[str, int]:
    """Cell counts of module ``top`` in the output of yosys ``stat -json``."""
    try:
        modules = json.loads(stat_json)["modules"]
    except (json.JSONDecodeError, KeyError, TypeError) as err:
        msg = f"not the output of yosys `stat -json`: {err}"
        raise TriggerError(msg) from err
    module = modules.get(f"\\{top}", modules.get(top))
    if module is None:
        msg = f"yosys `stat -json` has no module {top!r}; it has {', '.join(modules) or 'none'}"
        raise TriggerError(msg)
    cells = {str(k): int(v) for k, v in module.get("num_cells_by_type", {}).items() if not k.startswith("$scope")}
    if not cells:
        msg = f"the yosys cell statistics of {top!r} are empty"
        raise TriggerError(msg)
    return cells


def cells_to_resources(cells: dict[str, int]) -> dict[str, int]:
    """Xilinx primitives -> LUT, FF, DSP, BRAM_36K (two RAMB18 count as one RAMB36)."""
    def total(pattern: str) -> int:
        return sum(n for name, n in cells.items() if re.fullmatch(pattern, name))

    return {  # INV is a LUT1 and SRL16E/SRLC32E a LUT used as a shift register
        "LUT": total(r"LUT[1-6](_2)?|INV|SRL16E|SRLC32E"),
        "FF": total(r"FD[A-Z]*"),
        "DSP": total(r"DSP48E?\d*|DSP58\w*"),
        "BRAM_36K": total(r"RAMB36\w*") + (total(r"RAMB18\w*") + 1) // 2,
        "CARRY": total(r"CARRY\d"),
    }


def run_yosys(design: RtlDesign, part: str, yosys: str = YOWASP) -> dict[str, int]:
    """``synth_xilinx`` of the design's top module, run in its folder (``yosys.log`` and
    ``stat.json`` are written there); returns the cell counts."""
    files = " ".join(str(p) for p in design.sources())  # relative: YoWASP sees only the folder
    # the score's lookup tables are ROMs: mapped to logic (LUTs) first, as a distributed ROM is
    script = (f"read_verilog -defer -sv {files}; hierarchy -top {design.top}; proc; memory -nomap; memory_map; "
              f"synth_xilinx -family {yosys_family(part)} -top {design.top} -flatten -noiopad; "
              "tee -q -o stat.json stat -json")
    run = subprocess.run([*yosys_command(yosys), "-q", "-l", "yosys.log", "-p", script], cwd=design.directory,
                         capture_output=True, text=True, check=False)
    if run.returncode != 0:
        msg = (
            f"yosys failed (log: {design.directory / 'yosys.log'}): "
            f"{(run.stderr or run.stdout).strip()[-800:]}"
        )
        raise TriggerError(msg)
    return parse_yosys_stat((design.directory / "stat.json").read_text(), design.top)


def estimate(artifact: TriggerModel, out_dir: str | Path, events: NDArray[Any], part: str = DEFAULT_PART,
             clock_ns: float = DEFAULT_CLOCK_NS, latency_cutoff: float = 5.0, yosys: str = YOWASP,
             progress: Callable[[str], None] = print, depth_slack: int | None = None) -> Estimate:
    """Write the artifact's firmware as RTL to ``out_dir``, check it against the emulator on
    ``events`` (raw, of the dataset the model reads), synthesize it, and write ``estimate.json``.
    The firmware is the artifact's bundle (``firmware.bundle.bundle_for``)."""
    firmware = bundle_for(artifact)  # the arithmetic does not depend on the part or the clock
    return estimate_emulator(firmware.emulator, project_name(artifact), out_dir,
                             artifact.inputs(events).astype(np.float64), part, clock_ns, latency_cutoff,
                             yosys, progress, depth_slack)


def estimate_emulator(emulator: Emulator, name: str, out_dir: str | Path, check_inputs: NDArray[np.floating[Any]],
                      part: str = DEFAULT_PART, clock_ns: float = DEFAULT_CLOCK_NS, latency_cutoff: float = 5.0,
                      yosys: str = YOWASP, progress: Callable[[str], None] = print,
                      depth_slack: int | None = None) -> Estimate:
    """:func:`estimate` of the firmware an emulator describes, checked on ``check_inputs`` (the
    network's inputs, e.g. region counts, as ``Emulator.predict`` takes them). ``depth_slack``: da4ml's
    ``hard_dc`` (default: the cheapest of ``firmware.rtl.DEPTH_SLACKS`` within the latency target)."""
    check_inputs = np.asarray(check_inputs, np.float64).reshape(len(check_inputs), -1)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    seconds: dict[str, float] = {}
    start = time.monotonic()
    depth = (f"the cheapest adder depth within {LATENCY_TARGET_NS:g} ns" if depth_slack is None
             else f"adder depth slack {depth_slack}")
    progress(f"tracing the network with da4ml ({depth}) and writing pipelined Verilog")
    design = write_verilog(emulator, name, out / "rtl", part, clock_ns, latency_cutoff, depth_slack)
    seconds["rtl"] = time.monotonic() - start
    progress(f"building the RTL with Verilator and simulating {len(check_inputs)} events")
    start = time.monotonic()
    rtl_out, emulated = simulate(design, check_inputs), emulator.predict(check_inputs)
    rtl_check = {"simulator": "verilator", "events": len(check_inputs),
                 "scores_differ": int(np.count_nonzero(rtl_out[:, 0] != emulated[:, 0])),
                 "decisions_differ": int(np.count_nonzero(rtl_out[:, 1] != emulated[:, 1])),
                 "accepted": int(np.count_nonzero(emulated[:, 1])),  # decisions exercised both ways?
                 "mismatches": int(np.count_nonzero(np.any(rtl_out != emulated, axis=1)))}
    seconds["simulation"] = time.monotonic() - start
    progress(f"synthesizing with yosys synth_xilinx -family {yosys_family(part)} (minutes for a full model)")
    start = time.monotonic()
    cells = run_yosys(design, part, yosys)
    seconds["synthesis"] = time.monotonic() - start
    resources = cells_to_resources(cells)
    available = next((r for prefix, r in PART_RESOURCES.items() if part.lower().startswith(prefix)), {})
    latency_ns = design.latency_cycles * clock_ns
    values = {"latency_ns": latency_ns, **resources}
    result = Estimate(
        label=LABEL, part=part, clock_ns=clock_ns, latency_cycles=design.latency_cycles, latency_ns=latency_ns,
        resources={k: resources[k] for k in ("LUT", "FF", "DSP", "BRAM_36K")}, available=available,
        fractions={k: resources[k] / available[k] for k in available},
        rtl_check=rtl_check, includes_decision=True,
        targets=[{"name": n, "limit": lim, "value": values[n], "met": values[n] <= lim} for n, lim in TARGETS],
        tools=tool_versions(yosys), latency_cutoff=latency_cutoff, da4ml_cost=design.cost, seconds=seconds,
        adder_depth_slack=design.depth_slack)
    result.save(out / "estimate.json")
    return result
