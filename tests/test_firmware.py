from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from conftest import float64_native, synthetic_events

from firmware.bundle import FirmwareBundle, build_bundle
from firmware.check import compare_paths, csim_outputs
from firmware.compiled import CompiledEmulator
from firmware.convert import to_hls
from firmware.emulator import Emulator
from models.artifact import load_artifact
from trigger.cli import main


@pytest.fixture(scope="module")
def hls_model(artifact_dir: Path, tmp_path_factory: pytest.TempPathFactory):
    """Converted and compiled once per module (g++ takes about 10 s)."""
    return to_hls(load_artifact(artifact_dir), tmp_path_factory.mktemp("fw") / "hls")


def test_emulator_matches_csim_bit_for_bit(artifact_dir: Path, hls_model) -> None:
    artifact = load_artifact(artifact_dir)
    x = artifact.inputs(synthetic_events(3000, seed=11)).astype(np.float64)
    x[:5] = np.array([32.0, -32.0, 31.999, 1e-4, -1e-4])[:, None]  # saturated and tiny inputs too
    csim = csim_outputs(hls_model, x)
    assert csim.shape == (3000, 2)  # the firmware's outputs: the score and the accept bit
    np.testing.assert_array_equal(Emulator.from_hls_model(hls_model).predict(x), csim)
    assert set(np.unique(csim[:, 1])) <= {0.0, 1.0}


def test_three_paths_agree_on_scores_and_decisions(artifact_dir: Path, hls_model) -> None:
    artifact = load_artifact(artifact_dir)
    pairs, scores = compare_paths(artifact, hls_model, synthetic_events(2000, seed=12), build_bundle(artifact))
    exact = {(p.first, p.second): p for p in pairs}
    assert exact[("csim", "emulator")].exact  # scores and decisions
    assert exact[("qkeras", "csim")].decisions_differ <= 2  # >= 99.9 % identical decisions
    assert scores["emulator"].shape == (2000,)


def test_float64_native_events_score_alike_in_software_csim_emulator_and_replay(artifact_dir: Path, hls_model,
                                                                              tmp_path: Path) -> None:
    """Values a float32 cast changes, as in the public float64 files: the C-simulation is fed the
    inputs of the input rule, and the replay's emulated path scores exactly what it does."""
    from replay.bundle import load_emulated, write_bundle

    artifact = load_artifact(artifact_dir)
    events = float64_native(synthetic_events(400, seed=13), artifact.scaler)
    pairs, scores = compare_paths(artifact, hls_model, events, build_bundle(artifact))
    assert {(p.first, p.second): p for p in pairs}[("csim", "emulator")].scores_differ == 0
    write_bundle(artifact_dir, tmp_path / "bundle")
    np.testing.assert_array_equal(load_emulated(tmp_path / "bundle").scores(events), scores["csim"])
    np.testing.assert_array_equal(artifact.inputs(events), artifact.inputs(events.astype(np.float32)))


def test_emulator_reads_types_from_the_model(hls_model) -> None:
    emulator = Emulator.from_hls_model(hls_model)
    assert str(emulator.input_type) == "ap_fixed<16,6,AP_TRN,AP_WRAP>"
    relus = [k for k in emulator.kernels if k.relu]
    assert len(relus) == 2 and all(str(k.result) == "ap_ufixed<8,3,AP_RND_CONV,AP_SAT>" for k in relus)
    assert [k.relu for k in emulator.kernels] == [True, False, True, False]  # 57-8-2-8-57


@pytest.mark.slow
def test_firmware_check_command_reports_zero_differences(artifact_dir: Path, files: dict[str, Path],
                                                         capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["firmware", "check", "--model", str(artifact_dir), "--data", str(files["sm"]),
                 "--events", "1000"]) == 0
    out = capsys.readouterr().out
    assert "csim vs emulator" in out and "1000 events" in out


def test_synth_without_vendor_tools_writes_the_project_and_says_what_to_run(
        artifact_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("PATH", "/usr/bin:/bin")
    out = tmp_path / "fw"
    assert main(["firmware", "synth", "--model", str(artifact_dir), "--out", str(out)]) == 3
    text = capsys.readouterr().out
    assert "vitis-run (AMD Vitis) is not on PATH" in text
    assert f"cd {out} && vitis-run --tcl build_prj.tcl --mode hls" in text
    assert (out / "build_prj.tcl").is_file()
    assert "vsynth     1" in (out / "build_opt.tcl").read_text()


def test_synth_runs_the_vendor_build_and_parses_its_report(
        artifact_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    """A stand-in vitis-run that leaves a csynth report where Vitis does."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    fixture = Path(__file__).parent / "data" / "reports" / "vitis_csynth.xml"
    script = bin_dir / "vitis-run"
    script.write_text("#!/bin/sh\n[ \"$*\" = \"--tcl build_prj.tcl --mode hls\" ] || exit 9\n"
                      "mkdir -p tiny_prj/solution1/syn/report\n"
                      f"cp {fixture} tiny_prj/solution1/syn/report/tiny_csynth.xml\n")
    script.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}:/usr/bin:/bin")
    out = tmp_path / "fw"
    assert main(["firmware", "synth", "--model", str(artifact_dir), "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert "latency 9 cycles = 45.0 ns" in text and "LUT" in text


@pytest.mark.slow
def test_a_narrow_accumulator_wraps_exactly_and_a_saturating_one_is_refused(artifact_dir: Path,
                                                                          tmp_path: Path) -> None:
    """A wrapping accum_t that overflows is emulated (modular sums: one wrap of the total is exact);
    a saturating one saturates at each addition in the adder tree's order, and is refused."""
    from trigger.errors import TriggerError

    artifact = load_artifact(artifact_dir)  # inputs: 10 fractional bits, weights 6: products 16
    wrapping = to_hls(artifact, tmp_path / "wrap", precisions={"enc_dense1.accum": "ap_fixed<17,1,AP_TRN,AP_WRAP>"})
    emulator = Emulator.from_hls_model(wrapping)
    assert emulator.kernels[0].accum_may_wrap
    x = artifact.inputs(synthetic_events(2000, seed=14)).astype(np.float64)
    np.testing.assert_array_equal(emulator.predict(x), csim_outputs(wrapping, x))
    wide = Emulator.from_hls_model(to_hls(artifact, tmp_path / "wide", compile=False))
    assert np.any(emulator.predict(x) != wide.predict(x))  # the sums did wrap on these events
    saturating = to_hls(artifact, tmp_path / "sat", compile=False,
                        precisions={"enc_dense1.accum": "ap_fixed<17,1,AP_TRN,AP_SAT>"})
    with pytest.raises(TriggerError, match=r"enc_dense1: accum_t .*AP_SAT.* saturates .* let it wrap"):
        Emulator.from_hls_model(saturating)


@pytest.mark.slow
def test_emulator_follows_every_rounding_and_overflow_mode_it_is_given(artifact_dir: Path,
                                                                      tmp_path: Path) -> None:
    """Narrow result types with non-default modes: rounding ties, saturation and wrap all occur."""
    overrides = {
        "enc_act1": "ap_ufixed<5,1,AP_RND,AP_WRAP>",  # ReLU output wrapping above 2
        "latent": "ap_fixed<8,2,AP_RND_ZERO,AP_SAT_SYM>",  # Dense result, symmetric saturation
        "outputs": "ap_fixed<6,-2,AP_RND_INF,AP_SAT>",  # [-1/8, 1/8): saturates
    }
    artifact = load_artifact(artifact_dir)
    model = to_hls(artifact, tmp_path / "hls", precisions=overrides)
    emulator = Emulator.from_hls_model(model)
    assert str(emulator.kernels[0].result) == "ap_ufixed<5,1,AP_RND,AP_WRAP>"
    # hls4ml keeps a linear activation after the narrowed Dense: two casts in a row
    assert str(emulator.kernels[1].mid) == "ap_fixed<8,2,AP_RND_ZERO,AP_SAT_SYM>"
    x = artifact.inputs(synthetic_events(3000, seed=13)).astype(np.float64) * 4.0  # push into overflow
    np.testing.assert_array_equal(emulator.predict(x), csim_outputs(model, x))
    out = emulator.network_mantissas(emulator.input_type.to_integers(x)) * emulator.output_type.lsb
    assert np.any(out == 0.125 - 2**-8) and np.any(out == -0.125)  # saturated at both ends


@pytest.mark.slow
def test_score_saturates_and_a_threshold_on_a_tie_is_not_accepted(artifact_dir: Path, tmp_path: Path) -> None:
    """A narrow declared score type saturates at its top in the C-sim as in the emulator; a threshold
    equal to an event's score rejects that event (the decision is score > threshold) in both."""
    from firmware.head import threshold_mantissa

    artifact = load_artifact(artifact_dir)
    x = artifact.inputs(synthetic_events(2000, seed=15)).astype(np.float64)
    x[:3] = np.array([31.0, -31.0, 0.0])[:, None]  # errors beyond the error type's range, both signs
    narrow = {"score": "ap_ufixed<10,6,AP_TRN,AP_SAT>", "error": "ap_fixed<6,4,AP_RND,AP_SAT_SYM>"}
    first = Emulator.from_hls_model(to_hls(artifact, tmp_path / "probe", compile=False, precisions=narrow))
    scores = first.scores(first.predict(x))
    top = first.head.score.max_value / first.head.divisor
    assert scores.max() == top and np.count_nonzero(scores == top) >= 2  # saturated
    tie = float(np.sort(np.unique(scores))[-5])  # the fifth-highest distinct score: a tie at the threshold
    model = to_hls(artifact, tmp_path / "hls", precisions=narrow, threshold=tie)
    emulator = Emulator.from_hls_model(model)
    assert emulator.threshold == threshold_mantissa(tie, emulator.head.score, emulator.head.divisor)
    csim = csim_outputs(model, x)
    np.testing.assert_array_equal(emulator.predict(x), csim)
    np.testing.assert_array_equal(csim[:, 1] == 1, scores > tie)
    assert np.count_nonzero(scores == tie) >= 1 and np.count_nonzero(csim[:, 1]) == np.count_nonzero(scores > tie)
    # the compiled emulator (check, report, replay) from raw events: the same scores, and its
    # decision, score > threshold_value, is the firmware's bit
    events = synthetic_events(2000, seed=15)
    compiled = CompiledEmulator(artifact.scaler, emulator).scores(events)
    on_events = csim_outputs(model, artifact.inputs(events).astype(np.float64))
    np.testing.assert_array_equal(compiled, emulator.scores(on_events))
    np.testing.assert_array_equal(compiled > emulator.threshold_value, on_events[:, 1] == 1)
    assert 0 < np.count_nonzero(on_events[:, 1]) < len(events)


def test_a_bundle_moved_to_another_threshold_is_a_conversion_at_that_threshold(artifact_dir: Path,
                                                                              tmp_path: Path) -> None:
    """``with_threshold`` (calibrate's one conversion) gives the emulator a conversion at the new
    threshold reads, down to the decision kernel's bias and overflow flag."""
    artifact = load_artifact(artifact_dir)
    bundle = build_bundle(artifact)
    events = synthetic_events(2000, seed=16)
    x = artifact.inputs(events).astype(np.float64)
    scores = bundle.scores(events)
    for n, threshold in enumerate((float(np.quantile(scores, 0.9)), float(np.sort(scores)[-7]), 0.0, float("inf"))):
        moved = bundle.with_threshold(threshold, {"source": "test"})
        fresh = Emulator.from_hls_model(to_hls(artifact, tmp_path / f"hls{n}", compile=False, threshold=threshold))
        assert moved.emulator.threshold == fresh.threshold == moved.manifest.threshold_mantissa
        np.testing.assert_array_equal(moved.emulator.head.decision.bias, fresh.head.decision.bias)
        assert moved.emulator.head.decision.may_overflow == fresh.head.decision.may_overflow
        np.testing.assert_array_equal(moved.emulator.predict(x), fresh.predict(x))
        np.testing.assert_array_equal(moved.accept(events), fresh.predict(x)[:, 1] == 1)


def test_a_bundle_round_trips_and_refuses_a_changed_file(artifact_dir: Path, tmp_path: Path) -> None:
    from trigger.errors import ArtifactError

    bundle = build_bundle(load_artifact(artifact_dir))
    events = synthetic_events(500, seed=17)
    loaded = FirmwareBundle.load(bundle.save(tmp_path / "fw"))
    np.testing.assert_array_equal(loaded.scores(events), bundle.scores(events))
    assert loaded.threshold == bundle.threshold and loaded.manifest.files.keys() == {"emulator.npz", "scaler.json"}
    scaler = tmp_path / "fw" / "scaler.json"
    scaler.write_text(scaler.read_text().replace("1", "2", 1))
    with pytest.raises(ArtifactError, match=r"scaler.json is missing, damaged or was changed"):
        FirmwareBundle.load(tmp_path / "fw")
    with pytest.raises(ArtifactError, match=r"no firmware\.json, not a firmware bundle"):
        FirmwareBundle.load(tmp_path)
