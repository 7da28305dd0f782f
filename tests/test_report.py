"""``trigger report`` on a tiny model, with replay and firmware inputs written by the tests."""

from __future__ import annotations

import base64
import io
import json
import re
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from trigger.cli import main
from trigger.contracts import RunSummary
from trigger.errors import InputFileError, UsageError
from trigger.pareto import pareto_front
from trigger.report.html import SECTIONS
from trigger.report.inputs import read_replay

REPORTS = Path(__file__).parent / "data" / "reports"
LATENCY = {"p50": 1.5, "p90": 2.5, "p99": 4.0, "max": 6.0}


def replay_summary(**changes: Any) -> dict[str, Any]:
    """A run's summary.json as ``replay.pipeline`` writes it (``RunSummary``), with ``changes``."""
    summary = RunSummary(
        rate="40MHz-sim", mode="simulated", target_rate_hz=4e7, inputs=["sm.h5"], model="ae", threshold=0.5,
        working_point={"source": "the artifact's calibration", "threshold": 0.5}, reference_threshold=0.6,
        workers=2, transport="ipc", batch_size=16384, events_in=1000, events_decided=990, events_quarantined=10,
        events_accepted=3, accounting_ok=True, accept_rate_hz_at_bx=1200.0, events_per_second=54321.0,
        real_time_factor=0.0014, wall_seconds=0.02, reference_backend="numpy", reference_events=500,
        reference_skipped=490, reference_prescale=1, reference_model="ae/float", reference_twin=True,
        reference_disagreements=1, reference_only_accepts=0, trigger_only_accepts=1, reference_missing=0,
        reference_max_abs_score_difference=0.25, deadline_misses=2, deadline_s=None, batch_latency_ms=LATENCY,
        batch_scoring_ms=LATENCY, latency_clock="this host's", round_trip_ms=LATENCY,
        quarantine_reasons={"BAD_SHAPE": 10}, rejected_frames={}, duplicate_batches=0, restarts={}, source={})
    return {**summary.as_dict(), **changes}


def write_run(path: Path, latencies: bool = True, **changes: Any) -> Path:
    path.mkdir(parents=True)
    (path / "summary.json").write_text(json.dumps(replay_summary(**changes)))
    if latencies:
        np.save(path / "batch_latency_ms.npy", np.random.default_rng(0).lognormal(0.4, 0.3, 200))
    return path


def write_estimate(path: Path) -> Path:
    path.mkdir(parents=True)
    estimate = {
        "label": "open-source estimate (yosys, test)", "part": "xcvu9p", "clock_ns": 5.0,
        "latency_cycles": 7, "latency_ns": 35.0,
        "resources": {"LUT": 1234, "FF": 567, "DSP": 0, "BRAM_36K": 0},
        "available": {"LUT": 1182240, "FF": 2364480, "DSP": 6840, "BRAM_36K": 2160},
        "fractions": {"LUT": 1234 / 1182240, "FF": 567 / 2364480, "DSP": 0.0, "BRAM_36K": 0.0},
        "rtl_check": {"simulator": "iverilog", "events": 100, "mismatches": 0},
        "targets": [{"name": "latency_ns", "limit": 100, "value": 35.0, "met": True}],
        "tools": {"yosys": "0.40"},
    }
    (path / "estimate.json").write_text(json.dumps(estimate))
    return path


@pytest.fixture(scope="module")
def baseline_dir(files: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny float-only seed-003 baseline."""
    from models.config import load_config
    from models.train import train

    config = Path(__file__).parents[1] / "models/configs/ffn_baseline.toml"
    out = tmp_path_factory.mktemp("base") / "ffn"
    train(load_config(config, ["model.encoder=[8]", "model.latent=2", "model.decoder=[8]",
                               "training.epochs=1", "training.max_events=600"]), files["sm"], out)
    return out


def report_args(artifact_dir: Path, files: dict[str, Path], out: Path, *extra: str) -> list[str]:
    return ["report", "--model", str(artifact_dir), "--background", str(files["sm"]),
            "--signal", str(files["signal"]), "--out", str(out), *extra]


def decoded_images(page: str) -> list[np.ndarray]:
    from PIL import Image

    sources = re.findall(r'<img [^>]*src="([^"]*)"', page)
    images = []
    for src in sources:
        assert src.startswith("data:image/png;base64,")
        with Image.open(io.BytesIO(base64.b64decode(src.split(",", 1)[1], validate=True))) as image:
            images.append(np.asarray(image))
    return images


def test_report_renders_page_json_and_figures(artifact_dir: Path, baseline_dir: Path, files: dict[str, Path],
                                              tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "report"
    run = write_run(tmp_path / "run")
    fw = write_estimate(tmp_path / "fw")
    assert main(report_args(artifact_dir, files, out, "--model", str(baseline_dir), "--replay", str(run),
                            "--firmware", str(fw), "--check-events", "200")) == 0
    assert capsys.readouterr().out.strip().endswith(str(out / "report.html"))

    data = json.loads((out / "report.json").read_text())
    assert {"title", "working_point", "signals", "models", "comparison", "replay", "images"} <= set(data)
    ae, base = data["models"].values()
    assert set(ae["variants"]) == {"quantized", "float", "emulator"} and set(base["variants"]) == {"float"}
    assert base["baseline"] == "seed-003 FFN baseline" and base["exactness"] is None
    signal = ae["variants"]["quantized"]["signals"]["hardjets"]
    assert {"auc", "auc_error", "working_point", "tpr_at_fpr", "roc"} <= set(signal)
    assert ae["background_events"] == 300  # the held-out 20 % of 1500 SM training events
    assert ae["exactness"]["events"] == 200 and ae["exactness"]["csim_vs_emulator_exact"]
    assert ae["agreement"]["quantized vs emulator"]["decisions_differ"] <= 3  # QKeras squares unrounded errors
    assert ae["firmware"]["label"] == "open-source estimate (yosys, test)"
    assert ae["firmware"]["resources"]["LUT"] == 1234
    assert base["firmware"]["source"] is None
    assert data["replay"]["accounting"]["holds"] and data["replay"]["latency_histogram"]["batches"] == 200
    assert [r["model"] for r in data["comparison"]["rows"]] == list(data["models"])
    _check_latency_and_only_reference(data)

    page = (out / "report.html").read_text()
    assert "<title>Anomaly-detection trigger report</title>" in page
    for heading in SECTIONS.values():
        assert f"<h2>{heading}</h2>" in page
    assert "http://" not in page and "https://" not in page and "<script" not in page
    assert f"{signal['auc']:.4f} ± {signal['auc_error']:.4f}" in page
    assert "open-source estimate (yosys, test)" in page and "bit-exact" in page
    assert "not applicable: float-only model" in page
    images = decoded_images(page)
    assert len(images) == len(data["images"]) == len(list(out.glob("*.png")))
    assert {"roc_hardjets.png", "replay_latency.png", "comparison_pareto.png",
            "comparison_latency.png"} <= set(data["images"])
    assert "Signal events only the reference catches" in page and "Accuracy against latency" in page
    assert all(image.ndim == 3 and image.shape[0] > 100 and image.shape[1] > 100 and image.std() > 0
               for image in images)
    _rebuild_without_tensorflow(out, tmp_path / "again", data)


def _check_latency_and_only_reference(data: dict[str, Any]) -> None:
    """One FPGA point (the estimate's latency, the emulator's efficiency) and one measured point
    per scored variant; the signal events each reference and the trigger accept, event by event."""
    from trigger.bitmask import decode_mask

    (ae_label, ae), (base_label, _) = data["models"].items()
    points = {(p["model"], p["variant"], p["path"] == "FPGA"): p for p in data["comparison"]["latency"]}
    fpga = points[ae_label, "emulator", True]
    assert fpga["latency_ns"] == 35.0 and fpga["source"] == ae["firmware"]["label"]
    assert {(ae_label, "quantized", False), (ae_label, "float", False), (base_label, "float", False)} <= set(points)
    assert (ae_label, "emulator", False) not in points  # scored with the firmware's build and check: not timed
    assert all(p["latency_ns"] > 0 and p["source"] == "measured in this report's run" for p in points.values()
               if p["path"] != "FPGA")
    only = data["comparison"]["only_reference"]
    assert (only["trigger"], only["variant"]) == (ae_label, "emulator")
    assert [(r["reference"], r["variant"]) for r in only["rows"]] == [(ae_label, "float"), (base_label, "float")]
    for row in only["rows"]:
        counts = row["signals"]["hardjets"]
        reference = data["models"][row["reference"]]["variants"]["float"]["signals"]["hardjets"]
        trigger = ae["variants"]["emulator"]["signals"]["hardjets"]
        assert counts["only_reference"] + counts["both"] == round(reference["working_point"]["tpr"] * counts["events"])
        assert counts["only_trigger"] + counts["both"] == decode_mask(trigger["accepted_at_wp"], counts["events"]).sum()


def _rebuild_without_tensorflow(report: Path, again: Path, data: dict[str, Any]) -> None:
    """``trigger report --rebuild`` renders the same page from report.json where TensorFlow, QKeras,
    hls4ml and scikit-learn cannot be imported."""
    import subprocess
    import sys

    blocked = ["tensorflow", "keras", "qkeras", "hls4ml", "sklearn", "da4ml"]
    code = (f"import sys\nfor m in {blocked!r}: sys.modules[m] = None\n"
            "from trigger.cli import main\nsys.exit(main(sys.argv[1:]))")
    done = subprocess.run([sys.executable, "-c", code, "report", "--rebuild", str(report / "report.json"),
                           "--out", str(again)], capture_output=True, text=True, check=False, timeout=300)
    assert done.returncode == 0, done.stderr
    rebuilt = json.loads((again / "report.json").read_text())
    assert dict(rebuilt.items()) == data
    page, before = (again / "report.html").read_text(), (report / "report.html").read_text()
    assert page == before and sorted(p.name for p in again.glob("*.png")) == data["images"]


def test_report_without_replay_or_latencies_says_so(artifact_dir: Path, files: dict[str, Path],
                                                    tmp_path: Path) -> None:
    out = tmp_path / "report"
    run = write_run(tmp_path / "run", latencies=False)
    assert main(report_args(artifact_dir, files, out, "--check-events", "0", "--replay", str(run))) == 0
    page = (out / "report.html").read_text()
    assert "No batch_latency_ms.npy in the run" in page and "check not run" in page
    assert "not available (no --firmware given)" in page and "One model given" in page
    assert "No architecture search given" in page
    data = json.loads((out / "report.json").read_text())
    assert data["comparison"] is None and data["models"]["dense-ae"]["exactness"] is None
    assert len(decoded_images(page)) == len(data["images"]) == 3  # ROC, scores, agreement


def test_a_run_rebuilt_from_its_journal_renders(artifact_dir: Path, files: dict[str, Path], tmp_path: Path) -> None:
    """``replay --recover`` writes accounting_ok null: the report says the invariant is not known."""
    note = "rebuilt from the journal of a run that did not finish"
    run = write_run(tmp_path / "run", accounting_ok=None, recovered=True, note=note,
                    batch_latency_ms={"p50": None, "p90": None, "p99": None, "max": None})
    out = tmp_path / "report"
    assert main(report_args(artifact_dir, files, out, "--check-events", "0", "--replay", str(run))) == 0
    page = (out / "report.html").read_text()
    assert f"Accounting invariant not known: {note}" in page and "VIOLATED" not in page
    assert "n/a / n/a / n/a / n/a ms" in page


def sweep_json(path: Path, **changes: Any) -> Path:
    """A sweep.json as ``trigger sweep`` writes it: three trials, two on the front, one checked."""
    def trial(number: int, width: int, efficiency: float, cost: float) -> dict[str, Any]:
        return {"number": number, "params": {"width": width, "latent": 3}, "efficiency": efficiency,
                "efficiencies": {"hardjets": efficiency}, "cost": cost, "latency_ns": 40.0, "auc": {"hardjets": 0.9}}

    sweep = {"base": "tiny-ae", "space": {}, "epochs": 5, "working_point_fpr": 2.5e-5, "background": "sm.h5",
             "signals": ["hardjets"], "objectives": ["mean efficiency", "da4ml cost"],
             "trials": [trial(0, 8, 0.02, 5000.0), trial(1, 16, 0.05, 9000.0), trial(2, 24, 0.04, 14000.0)],
             "pareto": [0, 1], "checked": [{"trial": 0, "cost": 5000.0, "LUT": 5321, "latency_ns": 40.0}]}
    path.write_text(json.dumps({**sweep, **changes}))
    return path


def test_report_draws_a_sweeps_pareto_front(artifact_dir: Path, files: dict[str, Path], tmp_path: Path,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "report"
    sweep = sweep_json(tmp_path / "sweep.json")
    assert main(report_args(artifact_dir, files, out, "--check-events", "0", "--sweep", str(sweep))) == 0
    page, data = (out / "report.html").read_text(), json.loads((out / "report.json").read_text())
    assert data["sweep"]["pareto"] == [0, 1] and "sweep.png" in data["images"]
    assert "3 trials of tiny-ae" in page and "5,321" in page and "14,000" not in page  # the front only
    assert len(decoded_images(page)) == len(data["images"]) == 4
    bad = sweep_json(tmp_path / "bad.json", pareto=[7])
    assert main(report_args(artifact_dir, files, tmp_path / "r2", "--sweep", str(bad))) == 2
    assert "the Pareto front names trials the file does not have" in capsys.readouterr().err


def test_vendor_reports_take_precedence_over_an_estimate(tmp_path: Path) -> None:
    from firmware.summary import read_firmware

    fw = write_estimate(tmp_path / "fw")
    report_dir = fw / "prj" / "solution1" / "syn" / "report"
    report_dir.mkdir(parents=True)
    shutil.copy(REPORTS / "vitis_csynth.xml", report_dir / "top_csynth.xml")
    info = read_firmware(fw)
    assert info["source"] == "vendor report" and info["label"].startswith("vendor report")
    assert (info["latency_cycles"], info["latency_ns"], info["resources"]["LUT"]) == (9, 45.0, 18844)
    assert info["fractions"]["LUT"] == pytest.approx(18844 / 1182240)
    shutil.copy(REPORTS / "vivado_synth.rpt", fw / "vivado_synth.rpt")
    assert read_firmware(fw)["resources"]["LUT"] == 17402  # post-synthesis numbers win


def test_firmware_dir_without_results_is_not_available(tmp_path: Path) -> None:
    from firmware.summary import read_firmware

    assert read_firmware(tmp_path)["source"] is None
    with pytest.raises(InputFileError, match="not a firmware directory"):
        read_firmware(tmp_path / "absent")


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda d: d, "not a replay run directory"),
        (lambda d: d.mkdir(), "summary.json: missing"),
        (lambda d: write_run(d, events_in="many"), "'events_in' is 'many', expected int"),
        (lambda d: write_run(d, batch_latency_ms={"p50": 1.0}), "batch_latency_ms lacks p90, p99, max"),
        (lambda d: (d.mkdir(), (d / "summary.json").write_text("{oops")), "not readable JSON"),
    ],
)
def test_bad_replay_input_is_a_one_line_error(tmp_path: Path, make: Any, message: str) -> None:
    make(tmp_path / "run")
    with pytest.raises(InputFileError, match=re.escape(message)):
        read_replay(tmp_path / "run")


def test_missing_summary_key_is_named(tmp_path: Path) -> None:
    run = write_run(tmp_path / "run")
    summary = replay_summary()
    del summary["accounting_ok"]
    (run / "summary.json").write_text(json.dumps(summary))
    with pytest.raises(InputFileError, match=r"missing key\(s\) accounting_ok"):
        read_replay(run)


def test_command_refuses_bad_inputs(artifact_dir: Path, files: dict[str, Path], tmp_path: Path,
                                    capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "report"
    assert main(report_args(artifact_dir, files, out, "--replay", str(tmp_path / "nowhere"))) == 2
    assert "not a replay run directory" in capsys.readouterr().err
    (out / "old.txt").write_text("keep me")
    assert main(report_args(artifact_dir, files, out)) == 2
    assert "--overwrite" in capsys.readouterr().err and (out / "old.txt").is_file()
    fw = str(tmp_path)
    assert main(report_args(artifact_dir, files, tmp_path / "r2", "--firmware", fw, "--firmware", fw)) == 2
    assert "2 --firmware directories for 1 models" in capsys.readouterr().err
    signal = files["signal"]
    assert main(report_args(artifact_dir, files, tmp_path / "r3", "--signal", str(signal))) == 2
    assert "a second signal file of process 'hardjets'; give one file per process" in capsys.readouterr().err
    assert main(["report", "--out", str(tmp_path / "r4")]) == 2
    assert "--model, --background, --signal required (or --rebuild REPORT_JSON)" in capsys.readouterr().err
    (tmp_path / "bad.json").write_text(json.dumps({"format": "trigger.report", "version": 2, "title": "x",
                                                   "working_point": {}, "signals": {}}))
    assert main(["report", "--rebuild", str(tmp_path / "bad.json"), "--out", str(tmp_path / "r5")]) == 2
    assert "missing key(s) models" in capsys.readouterr().err


def test_pareto_front_keeps_points_nothing_beats() -> None:
    assert pareto_front([1, 2, 3, 3], [0.1, 0.3, 0.2, 0.3]) == [True, True, False, False]


def test_masks_round_trip_as_text_and_refuse_a_wrong_length() -> None:
    from trigger.bitmask import decode_mask, encode_mask

    mask = np.random.default_rng(1).random(1001) < 0.3
    text = encode_mask(mask)
    np.testing.assert_array_equal(decode_mask(text, 1001), mask)
    with pytest.raises(ValueError, match="1008 bits for 2000"):
        decode_mask(text, 2000)


@pytest.mark.parametrize(("low", "scale"), [(-130.0, "symlog"), (1e-3, "log"), (-1.0, "linear")])
def test_score_histograms_choose_their_axis(low: float, scale: str) -> None:
    """A flow's -log p(x) reaches below zero and spans decades above it: symmetric-log bins."""
    from models.summary import _histograms

    rng = np.random.default_rng(2)
    high = 7e6 if scale != "linear" else 50.0
    scores = {"SM": np.r_[low, high, rng.uniform(low, min(high, 100.0), 500)], "signal": rng.uniform(low, high, 300)}
    hist = _histograms(scores)
    edges = np.asarray(hist["edges"])
    assert hist["x_scale"] == scale and np.all(np.diff(edges) > 0)
    assert edges[0] == pytest.approx(low) and edges[-1] == pytest.approx(high, rel=1e-5)
    assert sum(hist["counts"]["SM"]) == 502 and sum(hist["counts"]["signal"]) == 300


def test_the_level1_view_counts_what_no_seed_takes(artifact_dir: Path, files: dict[str, Path], tmp_path: Path) -> None:
    """``--menu run3``: per signal the trigger's, the menu's and the pure fractions, event by event
    the trigger's accepted events less those any seed takes; the page shows them and rebuilds."""
    from trigger.bitmask import decode_mask
    from trigger.events import read_events
    from trigger.menu import load_menu

    out = tmp_path / "report"
    assert main(report_args(artifact_dir, files, out, "--menu", "run3", "--check-events", "0")) == 0
    data = json.loads((out / "report.json").read_text())
    assert data["menu"]["name"] == "run3-like" and data["menu"]["background_process"] == "sm-cocktail"
    fires = load_menu("run3").any(read_events(files["signal"]))
    assert 0 < fires.sum() < len(fires)
    for variant in next(iter(data["models"].values()))["variants"].values():
        signal = variant["signals"]["hardjets"]
        accepted = decode_mask(signal["accepted_at_wp"], signal["events"])
        view = signal["menu"]
        assert view["anomaly"]["count"] == accepted.sum() and view["menu"]["count"] == fires.sum()
        assert view["pure"]["count"] == np.sum(accepted & ~fires)
        sm = variant["menu_background"]
        assert sm["events"] == 300 and sm["pure"]["count"] <= sm["anomaly"]["count"]
        assert sm["pure"]["rate_hz"] == pytest.approx(sm["pure"]["fraction"] * 40e6)
    page = (out / "report.html").read_text()
    assert "hardjets: trigger / menu / pure" in page and "not zero bias" in page
    assert main(["report", "--rebuild", str(out / "report.json"), "--out", str(tmp_path / "again")]) == 0
    assert "hardjets: trigger / menu / pure" in (tmp_path / "again" / "report.html").read_text()


def test_without_a_menu_the_level1_section_says_how_to_get_one(artifact_dir: Path, files: dict[str, Path],
                                                                tmp_path: Path) -> None:
    from trigger.report.html import render_html

    out = tmp_path / "report"
    assert main(report_args(artifact_dir, files, out, "--check-events", "0")) == 0
    data = json.loads((out / "report.json").read_text())
    assert data["menu"] is None
    assert "trigger report --menu run3" in render_html(data, {})


def test_a_weighted_set_of_sm_files_gives_the_weighted_figures_of_evaluate(
        artifact_dir: Path, files: dict, tmp_path: Path) -> None:
    """``--background`` twice: a cocktail and an oversampled ttbar file, weighted to the stream by
    process as ``trigger evaluate`` weighs them: the same AUC and working point per signal."""
    from conftest import synthetic_events

    from models.artifact import load_artifact
    from models.evaluate import evaluate
    from trigger.events import EventWriter
    from trigger.generator.processes import GENERATED
    from trigger.report import build_report

    def generated(path: Path, events: np.ndarray, codes: np.ndarray) -> Path:
        with EventWriter(path, attrs={"process": "sm-cocktail"}, extras={"process_code": np.int8}) as writer:
            writer.append(events, process_code=codes)
        return path

    codes = np.full(1500, GENERATED["w"].code)
    codes[:500], codes[500:600], codes[600:605] = GENERATED["qcd"].code, GENERATED["z"].code, GENERATED["ttbar"].code
    sm = [generated(tmp_path / "cocktail.h5", synthetic_events(1500, seed=41), codes),
          generated(tmp_path / "ttbar.h5", synthetic_events(400, seed=42), np.full(400, GENERATED["ttbar"].code))]
    build_report(tmp_path / "report", [artifact_dir], sm, [files["signal"]], check_events=0, accept_rate="400kHz",
                 progress=lambda _: None)
    data = json.loads((tmp_path / "report" / "report.json").read_text())
    assert data["background_file"] == "cocktail.h5, ttbar.h5"
    model = next(iter(data["models"].values()))
    assert model["background"].startswith("weighted to the stream's process shares")
    expected = evaluate([load_artifact(artifact_dir)], sm, [files["signal"]], 1e-2).models
    for variant in ("quantized", "float"):
        ours, theirs = model["variants"][variant]["signals"]["hardjets"], expected[f"dense-ae/{variant}"]["signals"]
        assert ours["auc"] == pytest.approx(theirs["hardjets"]["auc"])
        assert ours["working_point"]["tpr"] == theirs["hardjets"]["working_point"]["tpr"]
    assert model["statistics"]["min_supported_fpr"] > 10 / 1900  # effective counts: fewer than the events
    with pytest.raises(UsageError, match="one --background file, not a weighted set"):
        build_report(tmp_path / "again", [artifact_dir], sm, [files["signal"]], menu="run3", progress=lambda _: None)
