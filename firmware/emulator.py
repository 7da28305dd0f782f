"""A batched numpy emulator of an hls4ml network, bit-exact with its fixed-point C-simulation.

The network is a chain of kernels (``firmware.kernel``: a Dense layer and its activation on
integer mantissas, exact by construction), read from the converted model graph.

The network ends in the firmware's score and decision (``firmware.head``): each error term cast
to its type, the sum of squares (exact) cast to the score type, the multiplicity prior's kernels on the inputs
added to it where the model has one, and the decision kernel, a Dense + ReLU whose one-bit result
is 1 when the score mantissa exceeds the threshold's.

Speed: each Dense and the activation after it run as one kernel on mantissas. The power-
of-two scale into the activation's grid is folded into the weights, integer bounds are
carried through the network so overflow handling is skipped where no value can overflow,
and float32 is used wherever the bounds prove it exact.
"""

from __future__ import annotations

from dataclasses import dataclass, fields, replace
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from firmware.element_cast import ElementCast
from firmware.head import ERROR, PRIOR_LAYERS, TOTAL, score_divisor
from firmware.kernel import Bounds, Kernel, as_dense, dense_kernel, fixed_type, may_overflow, round_to
from trigger.errors import TriggerError
from trigger.fixed import FixedType, Overflow, round_scaled
from trigger.npz import load_arrays, save_arrays

__all__ = ("Emulator", "Kernel", "ScoreHead", "fixed_type")

# the .npz written by Emulator.save (2: with the score and decision; 3: the prior; 4: HGQ's quantizers)
FORMAT = "trigger.Emulator/4"
READABLE_FORMATS = ("trigger.Emulator/3", "trigger.Emulator/2")  # read too: nothing they lack is required

F64 = NDArray[np.float64]
LINEAR_LAYERS = ("Dense", "Conv2D", "BatchNormalization")  # emulated as Dense kernels (firmware.kernel)
RESHAPES = ("Reshape", "Flatten")


@dataclass(frozen=True)
class ScoreHead:
    """The firmware's score and decision after the network (see ``firmware.head``)."""

    reconstruction: bool  # mse: errors are output - input; mu2: the outputs (mu) themselves
    error: FixedType  # each error term
    accum: FixedType  # the sum of squares, exact
    score: FixedType
    divisor: int  # software score = firmware score / divisor (the mean for mse)
    threshold: int  # the decision: score mantissa > threshold
    decision: Kernel  # Dense(1) + ReLU into one bit
    squares: FixedType | None = None  # with a prior: the sum of squares' type; ``score`` is then the total's
    prior: tuple[Kernel, ...] = ()  # the multiplicity prior's kernels on the input mantissas

    @property
    def squares_type(self) -> FixedType:
        """The type the sum of squares is cast to (the score's, without a prior)."""
        return self.squares or self.score

    @cached_property
    def prior_table(self) -> NDArray[np.int64]:
        """The prior's score mantissa by (lepton count, jet count), read off its kernels and checked
        on random patterns of filled slots: what the compiled paths look up instead of running them."""
        from models.multiplicity import JET_SLOTS, LEPTON_SLOTS, slot_counts

        table = np.zeros((len(LEPTON_SLOTS) + 1, len(JET_SLOTS) + 1), np.int64)
        if not self.prior:
            return table
        n_inputs = self.prior[0].weight.shape[0]
        patterns = np.zeros((table.size, n_inputs))
        for row, (n_leptons, n_jets) in enumerate(np.ndindex(table.shape)):
            for slot in (*LEPTON_SLOTS[:n_leptons], *JET_SLOTS[:n_jets]):
                patterns[row, 3 * slot] = 1
        table[...] = self.prior_mantissas(patterns).reshape(table.shape)
        rng = np.random.default_rng(0)
        filled = rng.random((4096, n_inputs // 3)) < rng.random((4096, 1))
        values = rng.integers(1, 2**6, (4096, n_inputs)) * rng.choice([-1, 1], (4096, n_inputs))
        q = np.where(np.repeat(filled, 3, axis=1) & (rng.random((4096, n_inputs)) < 0.7), values, 0)
        leptons, jets = slot_counts(q)
        if not np.array_equal(self.prior_mantissas(q), table[leptons, jets]):
            msg = "the multiplicity prior's layers do not depend on the lepton and jet counts alone"
            raise TriggerError(msg)
        return table

    def prior_by_counts(self, q: NDArray[Any]) -> F64:
        """:meth:`prior_mantissas` by the counts of filled slots in ``q`` and :attr:`prior_table`."""
        from models.multiplicity import slot_counts

        leptons, jets = slot_counts(q)
        return self.prior_table[leptons, jets].astype(np.float64)

    def prior_mantissas(self, q: NDArray[Any]) -> F64:
        """The multiplicity prior of input mantissas ``q`` as score mantissas (zeros without one)."""
        if not self.prior:
            return np.zeros(len(q))
        p = np.asarray(q)
        for kernel in self.prior:
            p = kernel(p.astype(kernel.weight.dtype, copy=False))
        last = self.prior[-1].result
        return np.asarray(p, np.float64)[:, 0] * 2.0 ** (self.score.fractional - last.fractional)

    def score_mantissas(self, outputs: NDArray[Any], output_type: FixedType, q: NDArray[Any],
                        input_type: FixedType) -> F64:
        """Score mantissas from the network's output mantissas and the input mantissas ``q``."""
        e = np.asarray(outputs, np.float64) * 2.0 ** (self.error.fractional - output_type.fractional)
        if self.reconstruction:
            e = e - np.asarray(q, np.float64) * 2.0 ** (self.error.fractional - input_type.fractional)
        e = self.error.wrap_or_saturate(round_scaled(e, self.error.rounding))
        total = np.einsum("ij,ij->i", e, e) * 2.0 ** (self.accum.fractional - 2 * self.error.fractional)
        total = self.accum.wrap_or_saturate(total)  # exact unless it overflows (WRAP only, checked)
        squares = self.squares_type
        scaled = total * 2.0 ** (squares.fractional - self.accum.fractional)
        m = squares.wrap_or_saturate(round_scaled(scaled, squares.rounding))
        if not self.prior:
            return m
        return self.score.wrap_or_saturate(m + self.prior_mantissas(q))  # same resolution: exact sum

    def values(self, score_mantissas: Any) -> Any:
        """Score mantissas in the software's units (the order of operations every path uses)."""
        return score_mantissas * self.score.lsb / self.divisor

    def accept(self, score_mantissas: F64) -> F64:
        """The decision bit (0 or 1) of each score mantissa, through the decision kernel."""
        bits = self.decision(score_mantissas[:, None].astype(self.decision.weight.dtype))
        return np.asarray(bits, np.float64)[:, 0] * self.decision.result.lsb


@dataclass(frozen=True)
class Emulator:
    """The network as a chain of kernels, then its score and decision; ``predict`` runs a batch."""

    input_type: FixedType
    kernels: tuple[Kernel, ...]
    head: ScoreHead

    @classmethod
    def from_hls_model(cls, model: Any) -> Emulator:
        """Read layers, weights and precisions from a converted hls4ml ``ModelGraph``."""
        layers = list(model.get_layers())
        if not layers or layers[0].class_name != "Input":
            msg = "hls4ml model has no Input layer first"
            raise TriggerError(msg)
        input_type = fixed_type(layers[0].get_output_variable().type.precision)
        bounds = (np.full(1, float(input_type.int_min)), np.full(1, float(input_type.int_max)))
        prior_names = {f"{name}{suffix}" for name in PRIOR_LAYERS for suffix in ("", "_relu", "_linear")}
        prior, _ = _chain([layer for layer in layers if layer.name in prior_names], 0, input_type, bounds)
        layers = [layer for layer in layers if layer.name not in prior_names]
        kernels, i = _chain(layers, 1, input_type, bounds)
        if not kernels:
            msg = "hls4ml model has no Dense layer after its input"
            raise TriggerError(msg)
        return cls(input_type, kernels, _head(layers[i:], kernels[-1], prior))

    def save(self, path: str | Path) -> None:
        """Write the kernels to one ``.npz`` (arrays plus a JSON description; no pickle)."""
        arrays: dict[str, NDArray[Any]] = {}
        kernels = [_describe(kernel, str(n), arrays) for n, kernel in enumerate(self.kernels)]
        head = {f.name: str(getattr(self.head, f.name)) if isinstance(getattr(self.head, f.name), FixedType)
                else getattr(self.head, f.name) for f in fields(self.head) if f.name not in ("decision", "prior")}
        head["decision"] = _describe(self.head.decision, "decision", arrays)
        head["prior"] = [_describe(kernel, f"prior{n}", arrays) for n, kernel in enumerate(self.head.prior)]
        save_arrays(path, FORMAT, {"input_type": str(self.input_type), "kernels": kernels, "head": head}, arrays)

    @classmethod
    def load(cls, path: str | Path) -> Emulator:
        """Read what :meth:`save` wrote; anything else is a :class:`TriggerError`."""
        meta, data = _load_any_format(path)
        try:
            kernels = tuple(_undescribe(described, str(n), data) for n, described in enumerate(meta["kernels"]))
            head: dict[str, Any] = dict(meta["head"])
            head.update({k: FixedType.parse(head[k]) for k in ("error", "accum", "score")},
                        decision=_undescribe(head["decision"], "decision", data),
                        squares=FixedType.parse(head["squares"]) if head.get("squares") else None,
                        prior=tuple(_undescribe(d, f"prior{n}", data) for n, d in enumerate(head.get("prior", []))))
            return cls(FixedType.parse(meta["input_type"]), kernels, ScoreHead(**head))
        except (KeyError, TypeError, ValueError) as e:
            msg = f"{path}: damaged emulator file ({e})"
            raise TriggerError(msg) from None

    @property
    def output_type(self) -> FixedType:
        """The network's output type (the reconstruction, or mu), before the score."""
        return self.kernels[-1].result

    @property
    def threshold(self) -> int:
        """The decision's threshold as a score mantissa."""
        return self.head.threshold

    @property
    def threshold_value(self) -> float:
        """The threshold in the software's units: a score (from :meth:`scores`) is above it exactly
        when the firmware's accept bit is 1."""
        return float(self.head.values(self.head.threshold))

    def with_threshold(self, mantissa: int) -> Emulator:
        """The same firmware deciding at another threshold (a score mantissa, ``-1 .. int_max``):
        only the decision's bias changes, to what a conversion at that threshold reads (tested)."""
        if not -1 <= mantissa <= self.head.score.int_max:
            msg = f"threshold mantissa {mantissa} outside -1 .. {self.head.score.int_max} of {self.head.score}"
            raise TriggerError(msg)
        decision = self.head.decision
        # the Keras bias -T, cast to accum_t and expressed in the kernel's first-stage units
        bias = np.full_like(decision.bias, -mantissa * 2.0**decision.accum.fractional / decision.accum_scale)
        score = self.head.score
        low = decision.weight.ravel()[0] * float(score.int_min) + bias[0]
        high = decision.weight.ravel()[0] * float(score.int_max) + bias[0]
        out_low, out_high = np.full(1, np.floor(max(low, 0))), np.full(1, np.ceil(max(high, 0)))
        result = decision.result
        decision = replace(decision, bias=bias, may_overflow=may_overflow(out_low, out_high, result),
                           out_bounds=(np.clip(out_low, result.int_min, result.int_max),
                                       np.clip(out_high, result.int_min, result.int_max)))
        return replace(self, head=replace(self.head, threshold=mantissa, decision=decision))

    def predict(self, x: NDArray[np.floating[Any]]) -> F64:
        """(score, accept) of a batch of float inputs, cast to the input type first as the C-sim does."""
        t = self.input_type
        x = np.asarray(x, dtype=np.float64)
        q = round_to(x.reshape(len(x), -1) * 2.0**t.fractional, t.rounding)  # images: io_parallel's flat order
        if len(q) and (q.min() < t.int_min or q.max() > t.int_max):
            q = t.wrap_or_saturate(q)
        return self.predict_mantissas(q)

    def network_mantissas(self, q: NDArray[np.floating[Any]]) -> NDArray[Any]:
        """The network's output mantissas for input mantissas ``q`` (already in range)."""
        for kernel in self.kernels:
            q = kernel(q)
        return q

    def predict_mantissas(self, q: NDArray[np.floating[Any]]) -> F64:
        """(score, accept) for inputs given as integer mantissas of ``input_type`` (already in range):
        the firmware's two outputs, the score in its type's units and the bit as 0 or 1."""
        m = self.head.score_mantissas(self.network_mantissas(q), self.output_type, q, self.input_type)
        return np.column_stack([m * self.head.score.lsb, self.head.accept(m)])

    def scores(self, outputs: NDArray[np.floating[Any]]) -> F64:
        """The software's anomaly score from the firmware's outputs (C-sim, RTL or ``predict``)."""
        return np.asarray(outputs, np.float64)[:, 0] / self.head.divisor

    def network_scores(self, network_outputs: NDArray[np.floating[Any]], q: NDArray[np.floating[Any]]) -> F64:
        """The software's anomaly score from the network's outputs (real values) and input mantissas."""
        out = self.output_type
        m = self.head.score_mantissas(np.asarray(network_outputs, np.float64) * 2.0**out.fractional, out, q,
                                      self.input_type)
        return np.asarray(self.head.values(m), np.float64)


def _load_any_format(path: str | Path) -> tuple[dict[str, Any], dict[str, NDArray[Any]]]:
    """The emulator file's contents in this format or an earlier readable one (else this format's error)."""
    try:
        return load_arrays(path, FORMAT)
    except TriggerError as err:
        for kind in READABLE_FORMATS:
            try:
                return load_arrays(path, kind)
            except TriggerError:
                continue
        raise err from None


def _describe(kernel: Kernel, key: str, arrays: dict[str, NDArray[Any]]) -> dict[str, Any]:
    """A kernel's JSON description; its arrays go into ``arrays`` under ``key``."""
    described: dict[str, Any] = {}
    for f in fields(kernel):
        value = getattr(kernel, f.name)
        if isinstance(value, np.ndarray):
            arrays[f"{key}.{f.name}"] = value
        elif isinstance(value, ElementCast):
            described[f.name], post_arrays = value.describe()
            arrays.update({f"{key}.post.{name}": a for name, a in post_arrays.items()})
        elif f.name == "out_bounds":
            arrays[f"{key}.low"], arrays[f"{key}.high"] = value
        else:
            described[f.name] = str(value) if isinstance(value, FixedType) else value
    return described


def _undescribe(described: dict[str, Any], key: str, data: dict[str, NDArray[Any]]) -> Kernel:
    kw: dict[str, Any] = {k: FixedType.parse(v) if k in ("accum", "mid", "result") and v else v
                          for k, v in described.items()}
    kw.update(weight=data[f"{key}.weight"], bias=data[f"{key}.bias"],
              out_bounds=(data[f"{key}.low"], data[f"{key}.high"]))
    if kw.get("post"):
        prefix = f"{key}.post."
        kw["post"] = ElementCast.undescribe(kw["post"], {k.removeprefix(prefix): v for k, v in data.items()
                                                         if k.startswith(prefix)})
    return Kernel(**kw)


def _chain(layers: list[Any], i: int, x_type: FixedType, bounds: Bounds) -> tuple[tuple[Kernel, ...], int]:
    """The kernels of the layers from ``layers[i]`` on -- Dense, Conv2D and BatchNormalization
    (``firmware.kernel.as_dense``), each with the activation after it; reshapes are free in
    io_parallel -- and where they end."""
    kernels = []
    while i < len(layers) and layers[i].class_name in (*LINEAR_LAYERS, *RESHAPES):
        if layers[i].class_name in RESHAPES:
            i += 1
            continue
        layer = as_dense(layers[i])
        dense_result = fixed_type(layer.get_output_variable().type.precision)
        activation, result = None, dense_result
        if i + 1 < len(layers) and layers[i + 1].class_name == "Activation":
            activation = layers[i + 1]
            name = activation.get_attr("activation")
            if (name or "linear").lower() not in ("relu", "linear"):  # Keras' ReLU layer: "ReLU"
                msg = f"cannot emulate activation {name!r} of {activation.name}"
                raise TriggerError(msg)
            result = fixed_type(activation.get_output_variable().type.precision)
        kernel = dense_kernel(layer, x_type, bounds, dense_result, activation, result)
        i += 2 if activation is not None else 1
        if i < len(layers) and layers[i].class_name == "FixedPointQuantizer":  # HGQ: a type per element
            quantizer = layers[i]
            kernel = kernel.with_post(ElementCast.of(quantizer, result,
                                                     fixed_type(quantizer.get_output_variable().type.precision)))
            i += 1
        kernels.append(kernel)
        x_type, bounds = kernel.result, kernel.out_bounds
    return tuple(kernels), i


def _head(layers: list[Any], last: Kernel, prior: tuple[Kernel, ...] = ()) -> ScoreHead:
    """The score and decision layers that follow the network (``firmware.head``'s); without a
    Subtract, the errors are the network's outputs (the VAE's mu, cast by its last activation)."""
    kinds = [layer.class_name for layer in layers]
    reconstruction = kinds[:1] == ["Merge"]
    expected = (["Merge"] if reconstruction else []) + ["Dot"] + (["Merge"] if prior else []) + ["Dense", "Activation"]
    if (kinds != expected or (reconstruction and (layers[0].name, layers[0].get_attr("op")) != (ERROR, "subtract"))
            or (prior and (layers[-3].name, layers[-3].get_attr("op")) != (TOTAL, "add"))):
        msg = (f"cannot emulate the layers after the network ({', '.join(kinds) or 'none'}): expected the "
               "score and decision of firmware.head (Subtract, Dot, Add of the prior, Dense, ReLU)")
        raise TriggerError(msg)
    if reconstruction:
        error, dot = fixed_type(layers[0].get_output_variable().type.precision), layers[1]
    else:
        error, dot = last.result, layers[0]
    accum = fixed_type(dot.get_attr("accum_t").precision)
    score = squares = fixed_type(dot.get_output_variable().type.precision)
    if prior:
        score = fixed_type(layers[-3].get_output_variable().type.precision)
        if (score.fractional != squares.fractional or prior[-1].result.fractional > score.fractional
                or score.overflow is Overflow.WRAP):
            msg = f"layer {TOTAL}: {score} must hold the score {squares} plus the prior exactly, saturating"
            raise TriggerError(msg)
    terms = int(np.prod(layers[0].get_output_variable().shape)) if reconstruction else last.weight.shape[1]
    largest = max(-error.int_min, error.int_max) ** 2 * terms * 2.0 ** (accum.fractional - 2 * error.fractional)
    if accum.fractional < 2 * error.fractional or (largest > accum.int_max and accum.overflow is not Overflow.WRAP):
        msg = (f"layer {dot.name}: accum_t {accum} does not hold the sum of squares of {error} exactly; "
               "widen it or let it wrap")
        raise TriggerError(msg)
    score_bounds = (np.full(1, float(score.int_min)), np.full(1, float(score.int_max)))
    dense, relu = layers[-2], layers[-1]
    decision = dense_kernel(dense, score, score_bounds, fixed_type(dense.get_output_variable().type.precision), relu,
                       fixed_type(relu.get_output_variable().type.precision))
    threshold = -round(float(np.asarray(dense.weights["bias"].data).ravel()[0]))
    return ScoreHead(reconstruction, error, accum, score, score_divisor(reconstruction, terms), threshold, decision,
                     squares if prior else None, prior)
