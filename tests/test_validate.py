from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import h5py
import numpy as np
import pytest

from trigger.cli import main
from trigger.events import EventWriter
from trigger.validate import Violation, validate_file


def _write(path: Path, events: np.ndarray) -> Path:
    with EventWriter(path) as writer:
        writer.append(events)
    return path


def test_valid_events_pass_and_are_summarised(event_file: Path) -> None:
    report = validate_file(event_file, batch_size=300)
    assert report.ok, report.violations
    summary = report.summary()
    assert summary["events"] == 1000
    assert summary["mean_multiplicity"]["met"] == 1.0
    assert summary["lepton_trigger_fraction"] == 1.0
    q = summary["pt_quantiles"]["leading jet"]
    assert q == sorted(q) and q[0] > 3.0


def _set(event: int, row: int, col: int, value: float) -> Callable[[np.ndarray], None]:
    def defect(x: np.ndarray) -> None:
        x[event, row, col] = value
    return defect


def _swap_jets(x: np.ndarray) -> None:
    x[42, 9:19] = 0.0
    x[42, 9] = [10.0, 0.1, 0.2, 4.0]
    x[42, 10] = [50.0, 0.3, 0.4, 4.0]  # both filled, rising pT


def _gap(x: np.ndarray) -> None:
    x[77, 9:19] = 0.0
    x[77, 10] = [30.0, 0.5, 0.5, 4.0]  # slot 9 empty, slot 10 filled


DEFECTS = {  # kind: (the event it damages, how)
    Violation.NON_FINITE: (3, _set(3, 1, 1, np.nan)),
    Violation.NEGATIVE_PT: (5, _set(5, 0, 0, -4.0)),
    Violation.CLASS_CODE: (7, _set(7, 1, 3, 3.0)),  # an electron labelled as a muon
    Violation.PADDING: (11, _set(11, 18, 1, 0.7)),  # eta set in an empty jet slot
    Violation.GAP: (77, _gap),
    Violation.PT_ORDER: (42, _swap_jets),
    Violation.ETA_RANGE: (13, _set(13, 0, 1, 0.3)),  # MET must have eta = 0
    Violation.PHI_RANGE: (17, _set(17, 1, 2, 4.0)),
}


@pytest.mark.parametrize("kind", list(DEFECTS), ids=lambda k: k.name.lower())
def test_each_defect_is_reported_with_its_first_event(tmp_path: Path, events: np.ndarray,
                                                      kind: Violation) -> None:
    bad = events.copy()
    bad[:, 18] = 0.0  # make room: the last jet slot is empty everywhere
    assert validate_file(_write(tmp_path / "good.h5", bad)).ok
    event, damage = DEFECTS[kind]
    damage(bad)
    report = validate_file(_write(tmp_path / "bad.h5", bad), batch_size=64)
    assert not report.ok
    assert report.violations == {kind: 1}
    assert report.first_events[kind] == [event]


def test_first_indices_are_capped_but_counts_are_complete(tmp_path: Path, events: np.ndarray) -> None:
    bad = events.copy()
    bad[100:400, 0, 0] = -1.0
    report = validate_file(_write(tmp_path / "bad.h5", bad), batch_size=128)
    assert report.violations[Violation.NEGATIVE_PT] == 300
    assert report.first_events[Violation.NEGATIVE_PT] == [100, 101, 102, 103, 104]


def test_validate_command_exit_codes_and_output(tmp_path: Path, event_file: Path, events: np.ndarray,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["validate", str(event_file)]) == 0
    assert "checks: PASS" in capsys.readouterr().out
    bad = events.copy()
    bad[2, 1, 1] = np.inf
    assert main(["validate", str(_write(tmp_path / "bad.h5", bad))]) == 1
    out = capsys.readouterr().out
    assert "checks: FAIL" in out and "non_finite: 1 events" in out and "first: 2" in out
    assert main(["inspect", "--json", str(event_file)]) == 0
    assert json.loads(capsys.readouterr().out)[0]["ok"] is True


def test_layout_problems_fail_validation_and_unreadable_files_are_errors(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    wrong = tmp_path / "wrong.h5"
    with h5py.File(wrong, "w") as h5:
        h5["Particles"] = np.zeros((4, 19, 3), np.float32)
    assert main(["validate", str(wrong)]) == 1
    assert "FAIL: 'Particles' has shape (N, 19, 3)" in capsys.readouterr().out
    assert main(["validate", str(tmp_path / "absent.h5")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"trigger validate: error: {tmp_path / 'absent.h5'}: no such file"]
