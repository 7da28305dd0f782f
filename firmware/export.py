"""Export a model as a CMSSW-style emulator package: HLS source, ``hls4mlEmulator::Model``, Makefile.

``trigger firmware export --model DIR --name NAME --version N --out OUT`` writes::

    OUT/interface.json            what a client needs: library, header, types, sizes, preprocessing
    OUT/Makefile                  `make -C OUT` builds OUT/NAME_vN.so (g++, C++17, -fPIC)
    OUT/emulator.h                the hls4mlEmulator::Model interface (cms-hls4ml/hls4mlEmulatorExtras)
    OUT/NAME_emulator_vN.h        input_t, result_t, N_INPUTS, N_RESULTS, SCORE_INDEX, ACCEPT_INDEX
    OUT/NAME_emulator_vN.cpp      the Model class, extern "C" create_model() / destroy_model()
    OUT/NN/                       the HLS source of the model with its score and decision (top
                                  function NAME_vN), weights compiled in, nnet_utils
    OUT/ap_types/                 the ap_fixed headers hls4ml ships

The HLS source is one hls4ml conversion (``firmware.convert``) at the threshold of the artifact's
firmware bundle, written with hls4ml's ``Namespace``, ``WriteWeightsTxt=False`` and
``WriteEmulationConstants``: every type, weight and config lives in namespace ``hls4ml_NAME_vN``
(include guards renamed to match) and no file is read at run time, so several models, or versions
of one, live in one process. The package's library computes exactly what the bundle's emulator
does (tested bit for bit through ``firmware.export_client``).
"""

from __future__ import annotations

import json
import re
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import NDArray

from firmware.bundle import FirmwareBundle, converted_with_bundle
from firmware.convert import convert
from firmware.export_cpp import EMULATOR_H, PackageNames, emulator_source, interface_header, makefile
from trigger.errors import TriggerError, UsageError
from trigger.fixed import FixedType
from trigger.preprocess import Scaler
from trigger.schema import N_INPUTS

if TYPE_CHECKING:
    from models.artifact import Artifact

__all__ = ("INTERFACE", "ExportedPackage", "export_package", "grid_values", "load_interface", "package_names",
           "preprocessing_rule")

INTERFACE = "interface.json"
_IDENTIFIER = re.compile(r"[A-Za-z][A-Za-z0-9_]*")
_GUARD = re.compile(r"^#ifndef (\w+)\n#define \1\b", re.MULTILINE)


@dataclass(frozen=True)
class ExportedPackage:
    """An exported package: where it is, its names, its ``interface.json`` and the firmware it holds."""

    out: Path
    names: PackageNames
    interface: dict[str, Any]
    bundle: FirmwareBundle

    @property
    def library(self) -> Path:
        """Where ``make -C OUT`` puts the shared library."""
        return self.out / self.names.library


def package_names(name: str, version: int) -> PackageNames:
    """The package's names; ``name`` must be a C++ identifier and ``version`` a positive integer."""
    if not _IDENTIFIER.fullmatch(name):
        msg = f"--name {name!r}: use letters, digits and '_' starting with a letter (it names C++ symbols and files)"
        raise UsageError(msg)
    if version < 1:
        msg = f"--version {version}: use a positive integer (the library is NAME_v{{N}}.so)"
        raise UsageError(msg)
    return PackageNames(name, version)


def grid_values(scaler: Scaler, particles: NDArray[np.floating[Any]]) -> NDArray[np.float64]:
    """(N, 57) inputs on the model's input grid, as ``prepare_input`` takes them (``trigger firmware inputs``)."""
    scaler.grid  # noqa: B018 - an ArtifactError for a model without an input grid
    return scaler.transform(particles).astype(np.float64)


def preprocessing_rule(scaler: Scaler) -> dict[str, Any]:
    """The rule from ADC2021 events to the input grid, exactly, as stated in ``interface.json``: a client
    in any language reproduces ``grid_values`` from it (float64 numbers are written round-trip exact)."""
    grid = scaler.grid
    return {
        "events": "ADC2021 arrays (N, 19, 4): slot 0 MET, 1-4 e/gamma, 5-8 muons, 9-18 jets; "
                  "columns pT, eta, phi, class",
        "input_index": "input i = 3 * slot + feature, feature 0 pT, 1 eta, 2 phi; the class column is no input",
        "float32_first": True,
        "filled_slot": "a slot is filled when its pT, rounded to float32, is > 0; the 3 inputs of an empty slot are 0",
        "log1p_pt": bool(scaler.log_pt),
        "center": [float(c) for c in scaler.center],
        "mantissa_step": [float(s) for s in scaler.mantissa_step],
        "grid": {"type": str(grid), "fractional_bits": grid.fractional, "mantissa_min": grid.int_min,
                 "mantissa_max": grid.int_max, "rounding": "floor (toward minus infinity)",
                 "overflow": "saturate to mantissa_min .. mantissa_max"},
        "rule": "filled slot, input i: v = float64(float32(x)); if log1p_pt and i % 3 == 0: v = log1p(v); "
                "m = floor((v - center[i]) / mantissa_step[i]) in IEEE float64 (a division, not a product with "
                "the reciprocal); m = min(max(m, mantissa_min), mantissa_max); input = m * 2**-fractional_bits",
    }


def _result_type(score: FixedType) -> str:
    """An unsigned type holding every score and the accept bit (0 or 1) exactly."""
    integer = max(score.integer, 1)
    return f"ap_ufixed<{score.fractional + integer},{integer}>"


def _interface(names: PackageNames, scaler: Scaler) -> dict[str, Any]:
    return {"library": names.library, "header": names.header, "namespace": names.namespace,
            "input_type": f"{names.namespace}::input_t", "n_inputs": N_INPUTS,
            "result_type": f"{names.namespace}::result_t", "n_results": 2, "score_index": 0, "accept_index": 1,
            "preprocessing": preprocessing_rule(scaler)}


def _prepare_out(out: Path) -> None:
    """``out`` empty or absent, or an earlier export (replaced); anything else is refused."""
    if out.exists() and not out.is_dir():
        msg = f"--out {out}: exists and is not a directory"
        raise TriggerError(msg)
    if out.is_dir() and any(out.iterdir()):
        if not (out / INTERFACE).is_file():
            msg = f"--out {out}: not empty and not an exported package; choose a new directory"
            raise TriggerError(msg)
        shutil.rmtree(out)
    out.mkdir(parents=True, exist_ok=True)


def _copy_hls_source(firmware: Path, out: Path, names: PackageNames) -> None:
    """The HLS source into ``out/NN`` (include guards made the package's own) and ap_types into ``out``."""
    nn = out / "NN"
    (nn / "weights").mkdir(parents=True)
    own = [f"{names.stem}.cpp", f"{names.stem}.h", "defines.h", "parameters.h",
           *(f"weights/{p.name}" for p in sorted((firmware / "weights").glob("*.h")))]
    prefix = names.namespace.upper()
    for relative in own:
        text = (firmware / relative).read_text()
        (nn / relative).write_text(_GUARD.sub(lambda m: f"#ifndef {prefix}_{m[1]}\n#define {prefix}_{m[1]}", text))
    shutil.copytree(firmware / "nnet_utils", nn / "nnet_utils")
    shutil.copytree(firmware / "ap_types", out / "ap_types")
    leftover = [p.name for p in (firmware / "weights").glob("*.txt")]
    if leftover or "load_weights_from_txt" in (nn / f"{names.stem}.cpp").read_text():
        msg = f"hls4ml wrote weights to text files ({', '.join(leftover)}); the package must compile them in"
        raise TriggerError(msg)


def export_package(artifact: Artifact, out: str | Path, name: str, version: int) -> ExportedPackage:
    """Write the artifact's firmware as an emulator package in ``out`` (see the module docstring)."""
    names = package_names(name, version)
    out = Path(out)
    _prepare_out(out)
    with tempfile.TemporaryDirectory() as tmp:
        model, bundle = converted_with_bundle(  # converted, not yet written: the writer's settings come first
            artifact, lambda threshold: convert(artifact, Path(tmp) / "hls", threshold=threshold))
        writer = model.config.get_writer_config()
        writer.update(Namespace=names.namespace, WriteWeightsTxt=False, WriteEmulationConstants=True)
        model.config.config["ProjectName"] = names.stem  # the top function and its files: NAME_vN
        model.write()
        _copy_hls_source(Path(tmp) / "hls" / "firmware", out, names)
    interface = _interface(names, bundle.particle_scaler)
    (out / "emulator.h").write_text(EMULATOR_H)
    (out / names.header).write_text(interface_header(names, _result_type(bundle.emulator.head.score)))
    (out / f"{names.emulator_class}.cpp").write_text(emulator_source(names))
    (out / "Makefile").write_text(makefile(names))
    (out / INTERFACE).write_text(json.dumps(interface, indent=1) + "\n")
    return ExportedPackage(out, names, interface, bundle)


def load_interface(out: str | Path) -> dict[str, Any]:
    """An exported package's ``interface.json``; a one-line error when ``out`` is not a package."""
    path = Path(out) / INTERFACE
    try:
        return dict(json.loads(path.read_text()))
    except (OSError, ValueError) as err:
        msg = f"{out}: not an exported package ({INTERFACE}: {err})"
        raise TriggerError(msg) from None
