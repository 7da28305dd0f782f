"""Cross-stage files as versioned records: written and read by one class, checked as they are read."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from trigger.contracts import Estimate, FirmwareManifest, Record, ReplayManifest, Sweep
from trigger.errors import InputFileError


@dataclass
class Example(Record):
    FORMAT = "trigger.example"
    VERSION = 2

    name: str
    count: int
    ratio: float
    ok: bool | None
    tags: list[str] = field(default_factory=list)
    nested: FirmwareManifest | None = None


def example(**changes: Any) -> Example:
    return Example(**{"name": "a", "count": 3, "ratio": 0.5, "ok": None, **changes})


def manifest() -> FirmwareManifest:
    return FirmwareManifest(model="tiny-ae", score="mse", threshold=2.5, threshold_mantissa=40960,
                            threshold_source={"path": "emulator"}, artifact="models/artifacts/tiny-ae",
                            artifact_files={"config.json": "0" * 64}, part="xcvu9p", clock_ns=5.0,
                            files={"emulator.npz": "1" * 64})


def test_a_record_round_trips_with_its_format_and_version(tmp_path: Path) -> None:
    record = example(tags=["x"], nested=manifest())
    path = record.save(tmp_path / "example.json")
    written = json.loads(path.read_text())
    assert (written["format"], written["version"]) == ("trigger.example", 2)
    assert Example.load(path) == record and isinstance(Example.load(path).nested, FirmwareManifest)
    assert not list(tmp_path.glob(".*partial"))  # written in one step


@pytest.mark.parametrize(("change", "message"), [
    ({"count": "3"}, "'count' is '3', expected int"),
    ({"count": True}, "'count' is True, expected int"),  # a bool is not a count
    ({"ok": 1}, "'ok' is 1, expected bool | None"),
    ({"tags": "x"}, "'tags' is 'x', expected list[str]"),
    ({"extra": 1}, "unknown key(s) extra in a trigger.example file"),
    ({"version": 1}, "a 'trigger.example' file of version 1; expected 'trigger.example' version 2"),
    ({"format": "trigger.other"}, "a 'trigger.other' file of version 2"),
    ({"nested": {"model": "x"}}, "missing key(s) score, threshold"),
])
def test_a_file_that_breaks_the_contract_is_a_one_line_error_naming_it(tmp_path: Path, change: dict[str, Any],
                                                                       message: str) -> None:
    path = tmp_path / "example.json"
    path.write_text(json.dumps({**example().as_dict(), **change}))
    with pytest.raises(InputFileError, match=re.escape(message)) as error:
        Example.load(path)
    assert str(error.value).startswith(str(path)) and "\n" not in str(error.value)


def test_a_missing_key_is_named_and_an_int_reads_as_a_float(tmp_path: Path) -> None:
    data = example().as_dict()
    del data["count"]
    with pytest.raises(InputFileError, match=re.escape("missing key(s) count")):
        Example.from_dict(data, tmp_path / "x.json")
    assert Example.from_dict({**example().as_dict(), "ratio": 1}).ratio == 1


def test_a_file_written_before_records_had_versions_reads_as_version_one() -> None:
    data = manifest().as_dict()
    del data["format"], data["version"]
    assert FirmwareManifest.from_dict(data) == manifest()


def test_checks_the_annotations_cannot_express(tmp_path: Path) -> None:
    trial = {"number": 0, "params": {}, "efficiency": 0.1, "cost": 10.0, "latency_ns": 40.0}
    sweep = Sweep(base="tiny-ae", epochs=1, working_point_fpr=1e-3, objectives=[], trials=[trial], pareto=[0],
                  checked=[])
    assert Sweep.from_dict(sweep.as_dict()) == sweep
    with pytest.raises(InputFileError, match="the Pareto front names trials the file does not have"):
        Sweep.from_dict({**sweep.as_dict(), "pareto": [7]})
    with pytest.raises(InputFileError, match="a trial lacks cost"):
        Sweep.from_dict({**sweep.as_dict(), "trials": [{k: v for k, v in trial.items() if k != "cost"}]})


def test_every_record_names_its_own_format() -> None:
    formats = [cls.FORMAT for cls in (Estimate, FirmwareManifest, ReplayManifest, Sweep)]
    assert len(set(formats)) == len(formats) and all(f.startswith("trigger.") for f in formats)
