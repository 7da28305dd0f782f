from __future__ import annotations

import subprocess
import sys

import pytest

from trigger.cli import SUBCOMMANDS, main


def test_no_subcommand_prints_help_and_fails(capsys: pytest.CaptureFixture[str]) -> None:
    assert main([]) == 2
    assert "generate" in capsys.readouterr().err


@pytest.mark.parametrize("command", list(SUBCOMMANDS))
def test_every_subcommand_explains_itself(command: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main([command, "--help"])
    assert info.value.code == 0
    assert "usage: trigger " + command in capsys.readouterr().out


def test_console_script_reports_user_errors_in_one_line(tmp_path) -> None:
    out = tmp_path / "x.h5"
    out.write_bytes(b"")
    done = subprocess.run(
        [sys.executable, "-m", "trigger.cli", "generate", "--process", "w", "--events", "5",
         "-o", str(out)], capture_output=True, text=True, check=False)
    assert done.returncode == 2
    assert done.stderr.strip() == (f"trigger generate: error: {out} exists; pass --resume to "
                                   "continue it or --overwrite to replace it")


def test_missing_sample_is_a_clear_error(tmp_path, monkeypatch, capsys) -> None:
    monkeypatch.setenv("TRIGGER_SAMPLE_DIR", str(tmp_path))
    assert main(["demo"]) == 2
    assert "bundled sample file missing; run `make sample`" in capsys.readouterr().err


def test_demo_names_a_missing_compiler_before_it_starts(monkeypatch, capsys) -> None:
    import shutil

    real_which = shutil.which
    monkeypatch.setattr(shutil, "which", lambda tool: None if tool == "g++" else real_which(tool))
    assert main(["demo"]) == 2
    captured = capsys.readouterr()
    assert "== stage 1" not in captured.out
    assert "missing g++" in captured.err and "apt-get install g++ make" in captured.err


def test_demo_refuses_a_folder_it_did_not_write(tmp_path, capsys) -> None:
    """``--out ~`` must not wipe a home directory: a non-empty folder without the demo's marker is refused,
    with or without --overwrite, and nothing in it is touched."""
    keep = tmp_path / "thesis.tex"
    keep.write_text("years of work")
    for extra in ([], ["--overwrite"]):
        assert main(["demo", "--out", str(tmp_path), *extra]) == 2
        assert "the folder is not empty and no demo wrote it" in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["thesis.tex"] and keep.read_text() == "years of work"


def test_demo_replaces_an_earlier_demo_only_with_overwrite(tmp_path, capsys) -> None:
    from trigger.cli.demo import MARKER, _prepare_out

    out = tmp_path / "demo"
    _prepare_out(out, overwrite=False)  # a new folder: created and marked
    (out / "report").mkdir()
    (out / "report" / "report.html").write_text("old")
    (out / "notes.txt").write_text("mine")
    assert main(["demo", "--out", str(out)]) == 2
    assert "an earlier demo's output is there; use --overwrite" in capsys.readouterr().err
    _prepare_out(out, overwrite=True)
    assert sorted(p.name for p in out.iterdir()) == sorted([MARKER, "notes.txt"])


@pytest.mark.slow
def test_demo_runs_every_stage_on_the_bundled_sample(capsys, tmp_path) -> None:
    from trigger.sample import DEFAULT_MODEL, sample_dir

    if not (sample_dir() / "htaunu.h5").is_file() or not (DEFAULT_MODEL / "manifest.json").is_file():
        pytest.fail("the bundled sample or default model is missing from the repository")
    # the estimate (minutes of yosys on the full model) has its own test on a tiny model
    assert main(["demo", "--firmware-events", "2000", "--replay-events", "200000", "--estimate-events", "0",
                 "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    for stage in ("stage 1", "stage 2", "stage 3", "stage 4", "stage 6", "stage 7"):
        assert stage in out
    assert "csim vs emulator  scores differ in 0 events" in out
    assert "events in 200,000 = decided 200,000 + quarantined 0: accounting OK" in out
    assert (tmp_path / "report" / "report.html").is_file()
    assert f"Report: {tmp_path / 'report' / 'report.html'}" in out
