"""The replay command line: one-line errors for bad working points, role help as typed."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.mark.parametrize(("argv", "message"), [
    (["--threshold", "nan"], "--threshold must be a finite number"),
    (["--threshold", "inf"], "--threshold must be a finite number"),
    (["--accept-rate", "50MHz"], "must be positive and at most the bunch-crossing rate"),
    (["--accept-rate", "fast"], "cannot read"),
    (["--calibration", "x.h5"], "--calibration is for --accept-rate"),
])
def test_bad_working_points_are_one_line_errors(tmp_path: Path, artifact_dir: Path, capsys, argv: list[str],
                                                message: str) -> None:
    from replay.cli import main

    assert main(["--model", str(artifact_dir), "--events", "10", "--out", str(tmp_path / "r"), *argv]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1 and not (tmp_path / "r").exists()


def test_role_help_shows_the_default_addresses_as_typed(capsys) -> None:
    from replay.cli import build_parser

    for role, default in (("source", "127.0.0.1:5555"), ("collector", "127.0.0.1:5558")):
        with pytest.raises(SystemExit):
            build_parser().parse_args([role, "--help"])
        assert f"(default: {default})" in capsys.readouterr().out
    assert build_parser().parse_args(["source", "--collector", "h:1"]).bind == ("127.0.0.1", 5555)
