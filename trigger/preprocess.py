"""Events -> the 57 model inputs: per-input scaling fitted on SM events, then the firmware grid.

**The input rule, for float32 and float64 files alike**: an event's values are first rounded
to float32 (round to nearest, :func:`event_values`), whatever the file stores; everything
after that (log1p, scaling, the projection onto the grid) is computed in float64 from those
float32 values. Our own files are float32, the public ADC2021 files float64; float32 keeps
about 7 significant digits, far finer than the input grid's step, and one rule makes every
path -- training, evaluation, the C-simulation feed, the emulator, the replay's compiled
step and the RTL test vectors -- see the same inputs. A slot is filled when its rounded pT
is above 0.

``to_inputs`` drops the class column: input ``3 * row + feature`` is (pT, eta, phi) of
slot ``row``. A :class:`Scaler` is fitted on SM training events only, over filled
slots (zero padding is masked out of the statistics and stays exactly zero). With an
``input_type`` such as ``ap_fixed<16,6>`` the scaled inputs are then projected onto
that fixed-point grid (truncation toward minus infinity, saturation), because the
firmware sees quantized inputs: a model trained and evaluated on the grid scores
events exactly as the FPGA does.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
from numpy.typing import NDArray

from trigger.errors import ArtifactError, UsageError
from trigger.fixed import FixedType, Overflow, Rounding
from trigger.schema import N_INPUTS, N_OBJECTS, PT

__all__ = ("EVENT_DTYPE", "Scaler", "event_values", "filled_mask", "to_inputs")

Method = Literal["standard", "maxabs", "none"]
METHODS: tuple[Method, ...] = ("standard", "maxabs", "none")
FORMAT_VERSION = 1
_PT_COLUMNS = np.arange(N_OBJECTS) * 3 + PT
_SLOT_OF_INPUT = np.repeat(np.arange(N_OBJECTS), 3)  # input column -> its slot


#: what every event value is rounded to before the inputs are computed (the input rule above)
EVENT_DTYPE = np.float32


def event_values(particles: NDArray[np.floating[Any]]) -> NDArray[np.float32]:
    """(N, 19, 4) events as contiguous float32, the input rule's first step (no copy if they are)."""
    return np.ascontiguousarray(particles, dtype=EVENT_DTYPE)


def to_inputs(particles: NDArray[np.floating[Any]]) -> NDArray[np.float32]:
    """(N, 19, 4) events -> (N, 57) float32 inputs, [pT, eta, phi] per slot."""
    values = event_values(particles)
    return np.ascontiguousarray(values[..., :3]).reshape(len(values), N_INPUTS)


def filled_mask(particles: NDArray[np.floating[Any]]) -> NDArray[np.bool_]:
    """(N, 57) True where the input belongs to a filled slot (pT > 0 after the float32 rounding)."""
    return input_mask(event_values(particles)[..., PT] > 0)


def input_mask(slots: NDArray[np.bool_]) -> NDArray[np.bool_]:
    """A per-slot mask (N, 19) as a per-input mask (N, 57): each slot's pT, eta and phi."""
    return np.take(slots, _SLOT_OF_INPUT, axis=1)


def _batches(events: NDArray[np.floating[Any]] | Iterable[NDArray[np.floating[Any]]]) -> Iterable[NDArray[Any]]:
    if isinstance(events, np.ndarray):
        yield events
    else:
        yield from events


@dataclass
class Scaler:
    """Per-input affine scaling ``(f(x) - center) / scale`` with f = log1p on pT if ``log_pt``."""

    method: Method = "standard"
    log_pt: bool = False
    input_type: FixedType | None = None
    center: NDArray[np.float64] = field(default_factory=lambda: np.zeros(N_INPUTS))
    scale: NDArray[np.float64] = field(default_factory=lambda: np.ones(N_INPUTS))
    n_fit: int = 0

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            msg = f"unknown scaling {self.method!r}; choose one of {', '.join(METHODS)}"
            raise UsageError(msg)
        given: object = self.input_type  # callers may pass the grid as text, e.g. "ap_fixed<16,6>"
        if isinstance(given, str):
            self.input_type = self.input_grid(given)
        self.center = np.asarray(self.center, dtype=np.float64).reshape(N_INPUTS)
        self.scale = np.asarray(self.scale, dtype=np.float64).reshape(N_INPUTS)

    @staticmethod
    def input_grid(text: str) -> FixedType:
        """The documented input projection: ``ap_fixed<W,I>`` with truncation and saturation."""
        parsed = FixedType.parse(text)
        return FixedType(parsed.width, parsed.integer, parsed.signed, Rounding.TRN, Overflow.SAT)

    @property
    def grid(self) -> FixedType:
        """The fixed-point input grid; an error for a model without one."""
        if self.input_type is None:
            msg = "the model has no fixed-point input grid"
            raise ArtifactError(msg)
        return self.input_type

    @property
    def mantissa_step(self) -> NDArray[np.float64]:
        """Per input, one grid mantissa in shaped units: ``(f(x) - center) / mantissa_step``
        rounds to the mantissa (a power-of-two scaling commutes with rounding)."""
        return self.scale * 2.0**-self.grid.fractional

    def _shape_pt(self, x: NDArray[np.float64]) -> NDArray[np.float64]:
        if self.log_pt:
            x[:, _PT_COLUMNS] = np.log1p(np.maximum(x[:, _PT_COLUMNS], 0.0))
        return x

    def fit(self, events: NDArray[np.floating[Any]] | Iterable[NDArray[np.floating[Any]]]) -> Scaler:
        """Fit on SM events (an array or an iterable of batches), masking zero padding."""
        count = np.zeros(N_INPUTS)
        total = np.zeros(N_INPUTS)
        total_sq = np.zeros(N_INPUTS)
        max_abs = np.zeros(N_INPUTS)
        n_events = 0
        for batch in _batches(events):
            x = self._shape_pt(to_inputs(batch).astype(np.float64))
            mask = filled_mask(batch)
            x = np.where(mask, x, 0.0)
            count += mask.sum(axis=0)
            total += x.sum(axis=0)
            total_sq += (x * x).sum(axis=0)
            max_abs = np.maximum(max_abs, np.abs(x).max(axis=0, initial=0.0))
            n_events += len(batch)
        if n_events == 0:
            msg = "cannot fit a scaler on zero events"
            raise UsageError(msg)
        seen = count > 0
        mean = np.divide(total, count, out=np.zeros(N_INPUTS), where=seen)
        var = np.divide(total_sq, count, out=np.zeros(N_INPUTS), where=seen) - mean**2
        std = np.sqrt(np.maximum(var, 0.0))
        if self.method == "standard":
            self.center, self.scale = mean, std
        elif self.method == "maxabs":
            self.center, self.scale = np.zeros(N_INPUTS), max_abs
        else:
            self.center, self.scale = np.zeros(N_INPUTS), np.ones(N_INPUTS)
        self.scale = np.where(self.scale > 1e-12, self.scale, 1.0)  # constant inputs (MET eta)
        self.n_fit = n_events
        return self

    def transform(self, particles: NDArray[np.floating[Any]], quantize: bool = True) -> NDArray[np.float32]:
        """(N, 19, 4) events -> (N, 57) model inputs, on the input grid if one is set."""
        x = self._shape_pt(to_inputs(particles).astype(np.float64))
        x = np.where(filled_mask(particles), (x - self.center) / self.scale, 0.0)
        if quantize and self.input_type is not None:
            x = self.input_type.quantize(x)
        return x.astype(np.float32)

    def inverse_transform(self, inputs: NDArray[np.floating[Any]]) -> NDArray[np.float64]:
        """(N, 57) model inputs (or reconstructions) -> (N, 57) physical pT, eta, phi."""
        x = np.asarray(inputs, dtype=np.float64) * self.scale + self.center
        if self.log_pt:
            x[:, _PT_COLUMNS] = np.expm1(x[:, _PT_COLUMNS])
        return x

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": "trigger.Scaler",
            "version": FORMAT_VERSION,
            "method": self.method,
            "log_pt": self.log_pt,
            "input_type": None if self.input_type is None else str(self.input_type),
            "center": self.center.tolist(),
            "scale": self.scale.tolist(),
            "n_fit": self.n_fit,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Scaler:
        if data.get("format") != "trigger.Scaler" or data.get("version") != FORMAT_VERSION:
            msg = (
                f"not a version-{FORMAT_VERSION} scaler: "
                f"format={data.get('format')!r} version={data.get('version')!r}"
            )
            raise ArtifactError(msg)
        try:
            return cls(data["method"], bool(data["log_pt"]),
                       None if data["input_type"] is None else FixedType.parse(data["input_type"]),
                       np.asarray(data["center"], float), np.asarray(data["scale"], float),
                       int(data["n_fit"]))
        except (KeyError, TypeError, ValueError) as err:
            msg = f"damaged scaler: {err}"
            raise ArtifactError(msg) from err

    def save(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps(self.to_dict(), indent=1))

    @classmethod
    def load(cls, path: str | Path) -> Scaler:
        try:
            data = json.loads(Path(path).read_text())
        except FileNotFoundError:
            msg = f"{path}: no such scaler file"
            raise ArtifactError(msg) from None
        except ValueError as err:
            msg = f"{path}: not a JSON scaler file ({err})"
            raise ArtifactError(msg) from err
        return cls.from_dict(data)
