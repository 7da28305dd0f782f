"""``trigger pileup-scan``: files grouped by their pileup, each model at the same rate of each
⟨μ⟩'s zero bias, and the scan drawn by ``trigger report --pileup-scan``."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from conftest import synthetic_events

from trigger.cli import main
from trigger.errors import InputFileError, UsageError
from trigger.events import EventWriter

ACCEPT = "400kHz"  # 1 % of 40 MHz: a rate these small files resolve


def write(path: Path, events: np.ndarray, process: str, mu: float | None) -> Path:
    attrs = {"process": process} | ({} if mu is None else {"pileup": {"mu": mu, "library": "test"}})
    with EventWriter(path, attrs=attrs) as writer:
        writer.append(events)
    return path


@pytest.fixture(scope="module")
def samples(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Zero bias and a signal at <mu> = 0 and 60 (more and harder jets at 60)."""
    root = tmp_path_factory.mktemp("pileup")
    out = {}
    for mu, seed in ((0, 20), (60, 30)):
        zero_bias, signal = synthetic_events(3000, seed=seed), synthetic_events(500, seed=seed + 1)
        signal[:, 9:, 0] *= 3.0
        for events in (zero_bias, signal):
            events[:, 9:, 0] *= 1 + mu / 60
        out[f"zb{mu}"] = write(root / f"zb{mu}.h5", zero_bias, "zerobias", mu)
        out[f"sig{mu}"] = write(root / f"sig{mu}.h5", signal, "hardjets", mu)
    return out


@pytest.fixture(scope="module")
def model(artifact_dir: Path, samples: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny model calibrated at the scan's rate of the zero bias at <mu> = 0, its firmware bundle stored."""
    import shutil

    copy = tmp_path_factory.mktemp("model") / "ae"
    shutil.copytree(artifact_dir, copy)
    assert main(["calibrate", "--model", str(copy), "--background", str(samples["zb0"]), "--accept-rate", ACCEPT]) == 0
    return copy


def report_args(model: Path, files: dict[str, Path], out: Path, *extra: str) -> list[str]:
    return ["report", "--model", str(model), "--background", str(files["sm"]), "--signal", str(files["signal"]),
            "--check-events", "0", "--out", str(out), *extra]


def scan_args(model: Path, samples: dict[str, Path], *extra: str) -> list[str]:
    return ["pileup-scan", "--model", str(model), "--accept-rate", ACCEPT,
            "--background", str(samples["zb60"]), "--background", str(samples["zb0"]),
            "--signal", str(samples["sig0"]), "--signal", str(samples["sig60"]), *extra]


def test_each_pileup_sets_its_own_threshold_and_counts_what_no_seed_takes(
        model: Path, samples: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from firmware.bundle import stored_bundle
    from models.region_artifact import load_model
    from trigger.contracts import PileupScan
    from trigger.events import read_events
    from trigger.menu import load_menu
    from trigger.thresholds import threshold_for

    assert main(scan_args(model, samples, "--json", str(tmp_path / "scan.json"))) == 0
    assert "<mu> = 60" in capsys.readouterr().out
    scan = PileupScan.load(tmp_path / "scan.json")
    assert [p["mu"] for p in scan.points] == [0.0, 60.0]  # sorted, whatever the order given
    artifact = load_model(model)
    firmware, menu = stored_bundle(artifact), load_menu("run3")
    assert firmware is not None
    thresholds = []
    for point, mu in zip(scan.points, (0, 60), strict=True):
        model = point["models"][artifact.name]
        assert model["variant"] == "quantized" and model["scored_by"] == "firmware emulator"
        zero_bias = firmware.scores(read_events(samples[f"zb{mu}"]))
        assert model["threshold"] == threshold_for(zero_bias, scan.working_point_fpr).threshold
        stored = artifact.thresholds["quantized"].threshold
        assert model["stored_threshold_rate_hz"] == pytest.approx(np.mean(zero_bias > stored) * 40e6)
        signal = read_events(samples[f"sig{mu}"])
        accepted, fires = firmware.scores(signal) > model["threshold"], menu.any(signal)
        cell = model["signals"]["hardjets"]
        assert cell["anomaly"]["count"] == accepted.sum() and cell["menu"]["count"] == fires.sum()
        assert cell["pure"]["count"] == np.sum(accepted & ~fires)
        thresholds.append(model["threshold"])
    assert thresholds[0] != thresholds[1]


def test_files_are_grouped_by_their_pileup_or_as_given(samples: dict[str, Path], tmp_path: Path) -> None:
    from models.pileup_scan import group_by_pileup

    plain = write(tmp_path / "adc2021_PU20.h5", synthetic_events(10), "hardjets", None)
    groups = group_by_pileup([samples["zb0"], f"20={samples['zb60']}"], [f"20={plain}", samples["sig0"]])
    assert groups == {0.0: (samples["zb0"], [samples["sig0"]]), 20.0: (samples["zb60"], [plain])}
    with pytest.raises(InputFileError, match=r"no 'pileup' attribute.*MU=FILE"):
        group_by_pileup([plain], [samples["sig0"]])
    with pytest.raises(UsageError, match="at <mu> = 60, where no zero-bias file was given"):
        group_by_pileup([samples["zb0"]], [samples["sig60"]])
    with pytest.raises(UsageError, match="two zero-bias files at <mu> = 0"):
        group_by_pileup([samples["zb0"], f"0={samples['zb60']}"], [samples["sig0"]])
    with pytest.raises(UsageError, match="no signal file at <mu> = 60"):
        group_by_pileup([samples["zb0"], samples["zb60"]], [samples["sig0"]])


def test_the_report_draws_the_scan(model: Path, samples: dict[str, Path], files: dict[str, Path],
                                   tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    scan = tmp_path / "scan.json"
    assert main(scan_args(model, samples, "--json", str(scan))) == 0
    out = tmp_path / "report"
    assert main(report_args(model, files, out, "--pileup-scan", str(scan))) == 0
    data = json.loads((out / "report.json").read_text())
    assert [p["mu"] for p in data["pileup"]["points"]] == [0.0, 60.0] and "pileup.png" in data["images"]
    page = (out / "report.html").read_text()
    assert "hardjets: trigger / menu / pure" in page and "each model&#x27;s threshold takes 400 kHz" in page
    broken = tmp_path / "broken.json"
    broken.write_text(json.dumps({**json.loads(scan.read_text()), "points": [{"mu": 60.0}]}))
    assert main(report_args(model, files, tmp_path / "r2", "--pileup-scan", str(broken))) == 2
    assert "a point lacks background, signals, models" in capsys.readouterr().err
