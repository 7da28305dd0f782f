"""The bundled sample: Pythia8 stand-in events shipped in ``data/sample`` of the repository.

``make sample`` regenerates it. Set ``TRIGGER_SAMPLE_DIR`` to use another directory
with the same file names (for instance a larger sample made the same way).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from trigger.errors import InputFileError

__all__ = ("BACKGROUND", "DEFAULT_MODEL", "LARGER_MODEL", "SIGNALS", "Sample", "bundled_sample", "default_model")

BACKGROUND = "sm_cocktail.h5"
#: signal name -> file name; the names follow the public ADC2021 signals
SIGNALS = {
    "ato4l": "ato4l.h5",
    "leptoquark": "leptoquark.h5",
    "htautau": "htautau.h5",
    "htaunu": "htaunu.h5",
}


#: the model `make demo` and `replay` use unless told otherwise, trained by `make models`: the
#: student distilled from the flow, with the multiplicity prior (docs/decisions.md)
DEFAULT_MODEL = Path(__file__).resolve().parents[1] / "models" / "artifacts" / "student"
#: the larger 8-bit autoencoder the demo compares the default with (63k LUTs: beyond the FPGA budget)
LARGER_MODEL = DEFAULT_MODEL.parent / "dense-ae"


def default_model() -> Path:
    """The bundled default model directory; a clear error if it is missing."""
    if not (DEFAULT_MODEL / "manifest.json").is_file():
        raise InputFileError(DEFAULT_MODEL, "bundled default model missing; run `make models`")
    return DEFAULT_MODEL


@dataclass(frozen=True)
class Sample:
    background: Path
    signals: dict[str, Path]


def sample_dir() -> Path:
    override = os.environ.get("TRIGGER_SAMPLE_DIR")
    return Path(override) if override else Path(__file__).resolve().parents[1] / "data" / "sample"


def bundled_sample() -> Sample:
    """Paths of the bundled SM and signal files; a clear error if any is missing."""
    root = sample_dir()
    sample = Sample(root / BACKGROUND, {name: root / file for name, file in SIGNALS.items()})
    for path in (sample.background, *sample.signals.values()):
        if not path.is_file():
            raise InputFileError(path, "bundled sample file missing; run `make sample` to make it")
    return sample
