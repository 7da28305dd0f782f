"""The firmware's whole scoring in one compiled C++ kernel on integer mantissas, bit-exact.

``native_scoring.cpp`` runs what :class:`firmware.compiled.CompiledEmulator` runs in three
compiled steps and BLAS (grid projection, every Dense layer with its casts, the score) per
event in integer arithmetic, the layers on int32 SIMD lanes. It is compiled with g++ for this
machine's CPU on first use (``trigger.native``) and covers the kernels whose arithmetic it can
prove exact in integers (:func:`unsupported` says why not otherwise); the compiled emulator
uses it where it can and keeps its numpy-based steps for the rest and as the reference. A
process loads and checks each kernel once, however many emulators of the firmware it makes
(thresholds are not in the kernel).

Why integers are exact: every weight and bias of a :class:`~firmware.emulator.Kernel` is a
multiple of a power of two in units of the result mantissa, so scaled by ``2**shift`` they
are integers and the accumulator is the very integer the emulator's float product holds;
rounding is then a shift, saturation a clamp. The bounds that keep int32 accumulators and
int64 score sums from overflowing are checked here, from the fixed-point types, before the
kernel is used. Each scorer also checks itself against the compiled emulator on a fixed set
of events when it is built and steps aside, with a warning, if they differ.
"""

from __future__ import annotations

import ctypes
import hashlib
import os
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from firmware.emulator import Emulator, Kernel
from models.multiplicity import JET_SLOTS, LEPTON_SLOTS
from trigger.fixed import FixedType, Overflow, Rounding
from trigger.native import FOR_THIS_CPU, cache_dir, cached, load_helper
from trigger.preprocess import Scaler, event_values
from trigger.schema import N_FEATURES, N_OBJECTS

__all__ = ("DISABLE", "IntegerLayer", "NativeScorer", "NotNative", "check_events", "checked_kernel", "compile_kernel",
           "model_source", "network_source", "unsupported")

SOURCE = Path(__file__).with_name("native_scoring.cpp")
LANES = Path(__file__).with_name("native_lanes.hpp")  # shared by every kernel
#: set to 0 to score on the compiled emulator's numpy-based steps instead
DISABLE = "TRIGGER_NATIVE_SCORING"
_ROUNDINGS = {Rounding.TRN: 0, Rounding.RND: 1, Rounding.RND_CONV: 2}
_INT32 = 2**31 - 1
_MAX_SHIFT = 30

F64 = NDArray[np.float64]
Scores = Callable[[NDArray[np.float32]], F64]


@dataclass(frozen=True)
class IntegerLayer:
    """A kernel on integer mantissas: ``cast(x @ weight + bias)``, where the accumulator is the
    result mantissa times ``2**shift``."""

    weight: NDArray[np.int64]
    bias: NDArray[np.int64]
    shift: int
    rounding: int
    relu: bool
    low: int
    high: int
    post: tuple[tuple[int, int, int, int], ...] = ()  # HGQ: per output (shift, low, high, scale-up bits)
    post_rounding: int = 0
    mid: tuple[int, int, int, int] | None = None  # a narrower Dense result first: (rounding, low, high, bits to result)

    def source(self, name: str, inputs: str) -> str:
        """C++ statements computing ``name[j]`` for each output from the Lanes array ``inputs``."""
        n_out = self.weight.shape[1]
        lines = [f"    Lanes {name}[{n_out}];"]
        for j in range(n_out):
            terms = [f"(Lanes{{}} + {int(self.bias[j])})"]
            for i in np.flatnonzero(self.weight[:, j]):
                w = int(self.weight[i, j])
                terms.append(f"{inputs}[{i}]" if w == 1 else f"{inputs}[{i}] * {w}")
            lines.append(f"    {name}[{j}] = {' + '.join(terms)};")
        relu = str(self.relu).lower()
        if self.mid is None:
            lines.append(f"    for (int j = 0; j < {n_out}; ++j) {name}[j] = cast<{self.shift}, {self.rounding}, "
                         f"{relu}, {self.low}, {self.high}>({name}[j]);")
        else:  # the Dense's result type, then the activation's cast from it
            rounding, low, high, bits = self.mid
            second = (f"cast<0, {self.rounding}, {relu}, {self.low}, {self.high}>({name}[j] * {1 << bits})"
                      if bits >= 0 else f"cast<{-bits}, {self.rounding}, {relu}, {self.low}, {self.high}>({name}[j])")
            lines.append(f"    for (int j = 0; j < {n_out}; ++j) {{ {name}[j] = cast<{self.shift}, {rounding}, false, "
                         f"{low}, {high}>({name}[j]); {name}[j] = {second}; }}")
        for j, (shift, low, high, up) in enumerate(self.post):  # each element to its own type, then the result's
            lines.append(f"    {name}[{j}] = cast<{shift}, {self.post_rounding}, false, {low}, {high}>({name}[{j}])"
                         f" * {1 << up};")
        return "\n".join(lines)


def _integer_shift(*values: NDArray[Any]) -> int | None:
    """The smallest ``s`` for which every value times ``2**s`` is an integer; None beyond 30."""
    for shift in range(_MAX_SHIFT + 1):
        if all(np.array_equal(v * 2.0**shift, np.round(v * 2.0**shift)) for v in values):
            return shift
    return None


def _bound(t: FixedType) -> int:
    return max(-t.int_min, t.int_max)


def _layer(kernel: Kernel, input_bounds: NDArray[np.float64]) -> IntegerLayer | str:
    """The kernel on integer mantissas, or why its arithmetic cannot be proven exact in int32."""
    t = kernel.cast_type
    if kernel.accum_may_wrap:
        return f"{kernel.name}: an accumulator that can wrap"
    post, mid = _element_casts(kernel), _mid_cast(kernel)
    if isinstance(post, str) or isinstance(mid, str):
        return post if isinstance(post, str) else str(mid)
    if t.rounding not in _ROUNDINGS or (kernel.may_overflow and t.overflow not in (Overflow.SAT, Overflow.SAT_SYM)):
        return f"{kernel.name}: rounding {t.rounding.value} / overflow {t.overflow.value}"
    weight, bias = np.asarray(kernel.weight, np.float64), np.asarray(kernel.bias, np.float64)
    shift = _integer_shift(weight, bias)
    if shift is None:
        return f"{kernel.name}: weights off a power-of-two grid"
    w, b = weight * 2.0**shift, bias * 2.0**shift
    if float((input_bounds @ np.abs(w) + np.abs(b)).max(initial=0.0)) > _INT32:
        return f"{kernel.name}: its accumulator could leave int32"
    low, high = t.kept_range if kernel.may_overflow else (-_INT32 - 1, _INT32)
    return IntegerLayer(w.astype(np.int64), b.astype(np.int64), shift, _ROUNDINGS[t.rounding], kernel.relu,
                        low, high, post, _ROUNDINGS[kernel.post.rounding] if kernel.post else 0, mid)


def _mid_cast(kernel: Kernel) -> tuple[int, int, int, int] | str | None:
    """A Dense result narrower than its accumulator (``Kernel.mid``) as (rounding, saturation
    bounds, fractional bits from it to the activation's type); None without one; or why not."""
    m = kernel.mid
    if m is None:
        return None
    if m.rounding not in _ROUNDINGS or (kernel.mid_may_overflow and m.overflow not in (Overflow.SAT, Overflow.SAT_SYM)):
        return f"{kernel.name}: Dense result rounding {m.rounding.value} / overflow {m.overflow.value}"
    bits = kernel.cast_type.fractional - m.fractional
    if m.width + max(bits, 0) > _MAX_SHIFT:
        return f"{kernel.name}: its Dense result could leave int32 on the activation's grid"
    low, high = m.kept_range if kernel.mid_may_overflow else (-_INT32 - 1, _INT32)
    return _ROUNDINGS[m.rounding], low, high, bits


def _element_casts(kernel: Kernel) -> tuple[tuple[int, int, int, int], ...] | str:
    """An HGQ quantizer after the kernel (``ElementCast``) as, per output, the shift down to the
    element's grid, its saturation bounds and the shift up to the result's grid; or why not."""
    p = kernel.post
    if p is None:
        return ()
    if p.rounding not in (Rounding.TRN, Rounding.RND) or p.overflow not in (Overflow.SAT, Overflow.SAT_SYM):
        return f"{kernel.name}: per-element rounding {p.rounding.value} / overflow {p.overflow.value}"
    casts = [(0, 0, 0, 0)] * len(p.bits)  # an element of no bits is 0
    for t, columns in p.types.items():
        down, up = p.source.fractional - t.fractional, p.result.fractional - t.fractional
        if down < 0 or up < 0 or up > _MAX_SHIFT:
            return f"{kernel.name}: an element's type {t} is finer than {p.source} or {p.result}"
        for j in columns:
            casts[j] = (down, *t.kept_range, up)
    return tuple(casts)


def _hex(values: Any) -> str:
    return ", ".join(float(v).hex() for v in np.ravel(values))


def network_source(emulator: Emulator, input_bound: int) -> tuple[str, str]:
    """The C++ of the network and its score on input mantissas of magnitude up to ``input_bound``
    (each layer's accumulators are bounded with the emulator's bounds of its inputs, ``Kernel.out_bounds``):
    (the score's constants, the body of ``net::network``); raises :class:`NotNative` with the
    reason where the integer arithmetic cannot be proven exact."""
    from firmware.compiled import HeadScore

    head, out, inp = emulator.head, emulator.output_type, emulator.input_type
    if HeadScore.of(emulator) is None:
        msg = "the score needs the emulator's general casts"
        raise NotNative(msg)
    n_inputs = emulator.kernels[0].weight.shape[0] if emulator.kernels else 0
    body, bounds, x = [], np.full(n_inputs, float(input_bound)), "q"
    for i, kernel in enumerate(emulator.kernels):
        layer = _layer(kernel, bounds)
        if isinstance(layer, str):
            raise NotNative(layer)
        body.append(layer.source(f"h{i}", x))
        bounds = np.maximum(np.abs(kernel.out_bounds[0]), np.abs(kernel.out_bounds[1]))  # each output's, carried
        x = f"h{i}"
    bound = float(bounds.max(initial=0.0))
    e = head.error
    a = e.fractional - out.fractional
    b = e.fractional - inp.fractional if head.reconstruction else 0
    t = max(0, -a, -b)
    low, high = e.kept_range
    n_out = emulator.kernels[-1].weight.shape[1]
    if (bound * 2.0 ** (a + t) + (input_bound * 2.0 ** (b + t) if head.reconstruction else 0) > _INT32
            or max(-low, high) ** 2 * n_out > _INT32):
        msg = "an error term or the sum of squares could leave int32"
        raise NotNative(msg)
    error = f"{x}[k] * {2 ** (a + t)}" + (f" - q[k] * {2 ** (b + t)}" if head.reconstruction else "")
    body.append(f"""    Lanes sum = {{}};
    for (int k = 0; k < {n_out}; ++k) {{
        const Lanes e = clamp<{low}, {high}>(round_shift<{t}, {_ROUNDINGS[e.rounding]}>({error}));
        sum += e * e;
    }}
    *totals = sum;""")
    constants = f"""constexpr int kScoreShift = {head.squares_type.fractional - 2 * e.fractional};
constexpr int64_t kSquaresHigh = {head.squares_type.int_max}, kScoreHigh = {head.score.int_max};
constexpr double kLsb = {head.score.lsb.hex()}, kDivisor = {float(head.divisor).hex()};"""
    return constants, "\n".join(body)


def model_source(scaler: Scaler, emulator: Emulator) -> str:
    """The model's part of the particle kernel's C++ (namespace ``net``); raises :class:`NotNative`
    with the reason where the integer arithmetic cannot be proven exact."""
    grid, head = scaler.grid, emulator.head
    if scaler.input_type is None:
        msg = "no fixed-point input grid"
        raise NotNative(msg)
    constants, body = network_source(emulator, _bound(grid))
    return f"""namespace net {{
constexpr double kCenter[kInputs] = {{{_hex(scaler.center)}}};
constexpr double kStep[kInputs] = {{{_hex(scaler.mantissa_step)}}};
constexpr bool kLogPt = {str(bool(scaler.log_pt)).lower()};
constexpr double kGridLow = {float(grid.int_min).hex()}, kGridHigh = {float(grid.int_max).hex()};
{constants}
constexpr bool kHasPrior = {str(bool(head.prior)).lower()};
constexpr int kLeptonSlots[2] = {{{LEPTON_SLOTS[0]}, {LEPTON_SLOTS[-1] + 1}}}, kJetSlots[2] = {{{JET_SLOTS[0]}, {JET_SLOTS[-1] + 1}}};
constexpr int64_t kPrior[] = {{{", ".join(str(int(v)) for v in head.prior_table.ravel())}}};  // by leptons * {len(JET_SLOTS) + 1} + jets

inline void network(const Lanes* __restrict q, Lanes* __restrict totals) {{
{body}
}}
}}  // namespace net
"""


class NotNative(Exception):
    """This firmware's arithmetic is not one the native kernel can prove exact."""


def unsupported(scaler: Scaler, emulator: Emulator) -> str | None:
    """Why the kernel cannot score this firmware exactly, or None when it can."""
    try:
        model_source(scaler, emulator)
    except NotNative as e:
        return str(e)
    return None


def compile_kernel(template: Path, source: str) -> Any:
    """The kernel ``template`` (a .cpp with ``@LANES@`` and ``@MODEL@`` lines) with the shared lanes
    and a model's ``source`` written in, compiled and loaded; or why it is not available (a string)."""
    try:
        text = (template.read_text().replace("// @LANES@", LANES.read_text())
                .replace("// @MODEL@", source))
        path = cached(f"{template.stem}-{hashlib.sha256(text.encode()).hexdigest()[:16]}.cpp",
                      lambda p: p.write_text(text))
    except OSError as e:
        return f"cannot write the kernel's source: {e}"
    return load_helper(path, FOR_THIS_CPU)


def _library(source: str) -> Any:
    """The compiled particle kernel of a model's source, prepared, or why it is not available (a string)."""
    library = compile_kernel(SOURCE, source)
    if isinstance(library, str):
        return library
    library.native_prepare.restype = ctypes.c_int
    library.native_scores.argtypes = [ctypes.c_int64, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p]
    library.native_scores.restype = ctypes.c_int64
    library.native_prepare()
    return library


def check_events(n: int = 4096, seed: int = 0) -> NDArray[np.float32]:
    """Events the scorer checks itself on: random filled slots over every range the grid sees,
    saturating pT and angles, empty events, and events with every slot filled."""
    rng = np.random.default_rng(seed)
    events = np.zeros((n, N_OBJECTS, N_FEATURES), np.float32)
    filled = rng.random((n, N_OBJECTS)) < 0.3
    filled[: n // 16] = True
    filled[n // 16: n // 8] = False
    events[..., 0] = np.where(filled, rng.exponential(40.0, (n, N_OBJECTS)) * rng.choice([1, 1, 1, 50], (n, 1)), 0.0)
    events[..., 1] = np.where(filled, rng.uniform(-6.0, 6.0, (n, N_OBJECTS)), 0.0)
    events[..., 2] = np.where(filled, rng.uniform(-4.0, 4.0, (n, N_OBJECTS)), 0.0)
    events[-8:, :, 0] = np.float32(3e38)  # the grid's far ends
    events[-4:, :, 1:3] = np.float32(-3e38)
    return events


#: per (cache folder, kernel source): the loaded kernel once it passed its check, else None
_CHECKED: dict[tuple[str, str], Any] = {}


def checked_kernel(source: Callable[[], str], load: Callable[[str], Any], agrees: Callable[[Any], bool],
                   what: str) -> Any:
    """The kernel of a model, loaded and checked once per process and cache folder (the threshold is
    not in it, so every emulator of one firmware shares it): ``load(source())`` (a library, or a
    string saying why there is none) if ``agrees(library)``. None where native scoring is switched
    off (:data:`DISABLE`), where ``source`` raises :class:`NotNative`, where the kernel could not be
    built, and, with a warning naming ``what`` it disagrees with, where the check fails."""
    if os.environ.get(DISABLE, "1") == "0":
        return None
    try:
        text = source()
    except NotNative:
        return None
    key = (str(cache_dir()), text)
    if key not in _CHECKED:
        library = load(text)
        if isinstance(library, str):
            library = None
        elif not agrees(library):
            warnings.warn(f"the native scoring kernel disagrees with {what}; scoring without it", RuntimeWarning,
                          stacklevel=3)
            library = None
        _CHECKED[key] = library
    return _CHECKED[key]


class NativeScorer:
    """The compiled kernel of one firmware: ``scorer(events)`` -> the firmware's scores."""

    def __init__(self, library: Any, fallback: Scores) -> None:
        self._library, self._fallback = library, fallback

    @classmethod
    def of(cls, scaler: Scaler, emulator: Emulator, fallback: Scores) -> NativeScorer | None:
        """The scorer of this firmware, checked equal to ``fallback`` (the compiled emulator's
        scores, which also rescore events with NaN); None where the kernel cannot be used."""
        def agrees(library: Any) -> bool:
            events = check_events()
            return np.array_equal(cls(library, fallback)(events), fallback(events))

        library = checked_kernel(lambda: model_source(scaler, emulator), _library, agrees,
                                 "the compiled emulator on its check events")
        return None if library is None else cls(library, fallback)

    def __call__(self, particles: NDArray[np.floating[Any]]) -> F64:
        """The firmware's scores (software units) of raw events, after the input rule."""
        values = event_values(particles)
        scores = np.empty(len(values))
        with_nan = self._library.native_scores(len(values), values.ctypes.data, scores.ctypes.data, None)
        if with_nan:
            rows = np.flatnonzero(np.isnan(scores))
            scores[rows] = self._fallback(values[rows])
        return scores

    def checked(self, particles: NDArray[np.floating[Any]]) -> tuple[F64, NDArray[np.bool_]]:
        """The scores of the events whose values (after the input rule) are all finite, and which
        those are, in one pass; the other events' scores are left unspecified."""
        values = event_values(particles)
        scores, finite = np.empty(len(values)), np.empty(len(values), np.bool_)
        self._library.native_scores(len(values), values.ctypes.data, scores.ctypes.data, finite.ctypes.data)
        return scores, finite
