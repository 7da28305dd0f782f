"""Build and run ``export_client.cpp``: exported packages loaded with ``dlopen`` through ``create_model``.

The client is what a CMSSW producer does with a package, in a few lines of C++: it includes each
package's interface header (the types ``interface.json`` names), loads each ``NAME_vN.so`` into one
process and scores events through ``prepare_input`` / ``predict`` / ``read_result``. The tests and
``benchmarks/export.py`` compare its scores and decisions with the Python emulator bit for bit.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from firmware.export import load_interface
from trigger.errors import TriggerError

__all__ = ("CLIENT_SOURCE", "ExportClient", "build_library")

CLIENT_SOURCE = Path(__file__).with_name("export_client.cpp")


def _run(command: list[str], cwd: Path | None = None) -> str:
    done = subprocess.run(command, cwd=cwd, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        tail = (done.stderr or done.stdout).strip().splitlines()[-5:]
        msg = f"{' '.join(command[:3])} ... failed (exit {done.returncode}): {' | '.join(tail)}"
        raise TriggerError(msg)
    return done.stdout


def build_library(out: str | Path, jobs: int = 1) -> Path:
    """``make -C out``: the package's shared library, built with its own Makefile."""
    if shutil.which("make") is None:
        msg = "make is not on PATH; install make and a C++17 compiler (g++)"
        raise TriggerError(msg)
    _run(["make", "-C", str(out), f"-j{jobs}"])
    return Path(out) / str(load_interface(out)["library"])


class ExportClient:
    """The client compiled against ``packages`` (exported package folders), in ``work``."""

    def __init__(self, packages: Sequence[str | Path], work: str | Path) -> None:
        self.packages = [Path(p).resolve() for p in packages]
        self.interfaces = [load_interface(p) for p in self.packages]
        self.work = Path(work)
        self.work.mkdir(parents=True, exist_ok=True)
        self.program = self.work / "export_client"
        models = self.work / "models.h"
        includes = "".join(f'#include "{p / i["header"]}"\n' for p, i in zip(self.packages, self.interfaces, strict=True))
        entries = " ".join(f"X({i['input_type']}, {i['result_type']}, {i['namespace']})" for i in self.interfaces)
        models.write_text(f"{includes}#define MODELS(X) {entries}\n")
        first = self.packages[0]
        _run(["g++", "-O2", "-std=c++17", f"-I{first}", f"-I{first / 'ap_types'}", "-include", str(models),
              str(CLIENT_SOURCE), "-ldl", "-o", str(self.program)])

    def describe(self) -> list[dict[str, Any]]:
        """What each package's header says: the input, result and score types and the sizes."""
        return [json.loads(line) for line in _run([str(self.program), "describe"]).splitlines()]

    def score(self, inputs: Sequence[NDArray[np.floating[Any]]]) -> list[NDArray[np.float64]]:
        """Each package's (score, accept) per event, as its library computes them, all in one process;
        ``inputs[k]`` are the grid values (``firmware.export.grid_values``) for package ``k``."""
        command = [str(self.program), "score"]
        outputs = []
        for k, (package, interface, given) in enumerate(zip(self.packages, self.interfaces, inputs, strict=True)):
            x = np.ascontiguousarray(given, np.float64)
            if x.ndim != 2 or x.shape[1] != interface["n_inputs"]:
                msg = f"inputs for {package.name}: shape {x.shape}, expected (N, {interface['n_inputs']})"
                raise TriggerError(msg)
            x.tofile(self.work / f"inputs{k}.bin")
            outputs.append(self.work / f"outputs{k}.bin")
            command += [str(package / interface["library"]), str(self.work / f"inputs{k}.bin"), str(outputs[-1])]
        _run(command)
        return [np.fromfile(path, np.float64).reshape(-1, 2) for path in outputs]
