"""The multiplicity prior: counts and tables, the artifact's score, and the firmware that adds it
exactly (C-simulation == emulator == compiled == native == da4ml trace)."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from conftest import TINY_MODEL, synthetic_events

from models.multiplicity import MultiplicityPrior, slot_counts
from trigger.errors import ArtifactError, UsageError

ROOT = Path(__file__).resolve().parents[1]


def _inputs(leptons: list[int], jets: list[int]) -> np.ndarray:
    """(N, 57) inputs with the first ``leptons[i]`` lepton and ``jets[i]`` jet slots filled."""
    x = np.zeros((len(leptons), 57), np.float32)
    x[:, 0] = 1.0  # MET: never counted
    for row, (n_lep, n_jet) in enumerate(zip(leptons, jets, strict=True)):
        for slot in [*range(1, 1 + n_lep), *range(9, 9 + n_jet)]:
            x[row, 3 * slot + 1] = 0.5  # only eta non-zero: still filled
    return x


def test_counts_and_tables_from_a_hand_built_sample() -> None:
    x = _inputs([1] * 90 + [2] * 9 + [3], [0] * 50 + [2] * 30 + [4] * 20)
    x[0, 3 * 2:3 * 3] = 0.0  # a slot whose three inputs are all 0 counts as empty
    leptons, jets = slot_counts(x)
    assert leptons[:2].tolist() == [1, 1] and leptons[-1] == 3 and jets[-1] == 4
    prior = MultiplicityPrior.fit(x, weight=2.0, step=1 / 64)
    assert prior.leptons[1] == 0 and prior.jets[0] == 0  # the commonest counts cost nothing
    expected = 2.0 * np.log((90 + 0.5) / (9 + 0.5))
    assert abs(prior.leptons[2] - expected) <= 1 / 128
    assert prior.leptons[8] > prior.leptons[3] > prior.leptons[2] > 0  # never seen: rarest, finite
    assert all(v * 64 == round(v * 64) for v in (*prior.leptons, *prior.jets))
    values = prior.values(_inputs([3, 1], [4, 0]))
    assert values.tolist() == [prior.leptons[3] + prior.jets[4], 0.0]


def test_counts_above_the_training_are_accepted_and_jets_weighed_apart() -> None:
    x = _inputs([1] * 90 + [2] * 9 + [3], [0] * 50 + [2] * 30 + [4] * 20)
    prior = MultiplicityPrior.fit(x, weight=0.0, step=1 / 64, jet_weight=1.0, ceiling=10.0)
    assert prior.leptons[:4] == (0.0,) * 4 and set(prior.leptons[4:]) == {prior.accept}  # none: weighed (by 0)
    weighed = prior.jets[:5]  # 1 and 3 jets were never seen either, but are below the training's 4: weighed
    assert weighed[0] == 0 < weighed[2] < weighed[4] < weighed[3] and 0 < weighed[1] < prior.accept
    assert set(prior.jets[5:]) == {prior.accept}
    assert prior.accept > 10.0 + max(weighed) and prior.accept * 64 == round(prior.accept * 64)
    events = _inputs([4, 3, 1, 2, 0], [4, 4, 3, 0, 6])
    assert prior.accepted(events).tolist() == [True, False, False, False, True]
    assert prior.values(events)[[1, 2, 3]].tolist() == [weighed[4], weighed[3], 0.0]
    assert not MultiplicityPrior.fit(x, 1.0, 1 / 64).accepted(events).any()


def test_a_first_version_prior_file_still_loads(tmp_path: Path) -> None:
    import json

    prior = MultiplicityPrior.fit(_inputs([1, 2], [0, 1]), 1.0, 0.25)
    data = {"format": "trigger.multiplicity", "version": 1, "weight": 1.0, "step": 0.25,
            "leptons": prior.leptons, "jets": prior.jets, "n_fit": 2}
    (tmp_path / "prior.json").write_text(json.dumps(data))
    assert MultiplicityPrior.load(tmp_path / "prior.json") == prior


def test_prior_files_round_trip_and_damage_is_one_line(tmp_path: Path) -> None:
    prior = MultiplicityPrior.fit(_inputs([1, 2], [0, 1]), 1.0, 0.25)
    prior.save(tmp_path / "prior.json")
    assert MultiplicityPrior.load(tmp_path / "prior.json") == prior
    (tmp_path / "prior.json").write_text((tmp_path / "prior.json").read_text()[:40])
    with pytest.raises(ArtifactError, match="unusable multiplicity prior"):
        MultiplicityPrior.load(tmp_path / "prior.json")
    with pytest.raises(ArtifactError, match="whole, non-negative"):
        MultiplicityPrior(1.0, 0.25, (0.1,) * 9, (0.0,) * 11, 2)


def test_the_weight_is_checked() -> None:
    from models.config import load_config

    with pytest.raises(UsageError, match="multiplicity_weight"):
        load_config(ROOT / "models" / "configs" / "tiny_ae.toml", ["model.multiplicity_weight=-1"])
    with pytest.raises(UsageError, match="multiplicity_weight"):
        load_config(ROOT / "models" / "configs" / "flow.toml", ["model.multiplicity_weight=1"])


@pytest.fixture(scope="module")
def prior_artifact(files: dict[str, Path], tmp_path_factory: pytest.TempPathFactory):
    """A tiny autoencoder with a multiplicity prior of weight 2, trained as the default is."""
    from models.config import load_config
    from models.train import train

    config = load_config(ROOT / "models" / "configs" / "tiny_ae.toml",
                         [*TINY_MODEL, "training.epochs=1", "model.multiplicity_weight=2"])
    return train(config, files["sm"], tmp_path_factory.mktemp("prior") / "ae", log=io.StringIO())


def _many_counts(n: int, seed: int) -> np.ndarray:
    """Synthetic events with every lepton count from 0 to 8 (muons added to the electrons)."""
    events = synthetic_events(n, seed=seed)
    rng = np.random.default_rng(seed)
    extra = rng.integers(0, 5, n)
    for slot in range(4):
        rows = np.flatnonzero(extra > slot)
        events[rows, 5 + slot] = [10.0 - slot, 0.3, -0.2, 2.0]  # muons, pT-ordered
    events[: n // 10, 1:5] = 0.0  # some without any electron
    return events


def test_the_artifact_scores_with_its_prior(prior_artifact) -> None:
    from models.scores import anomaly_score

    events = _many_counts(300, seed=3)
    x = prior_artifact.inputs(events)
    outputs = prior_artifact.networks["quantized"].scorer.predict(x, verbose=0)
    plain = anomaly_score("mse", x, outputs, None)
    np.testing.assert_allclose(prior_artifact.score(events, "quantized") - plain, prior_artifact.prior.values(x),
                               atol=1e-9)
    assert prior_artifact.prior.n_fit == 900 and prior_artifact.prior.weight == 2.0


def test_the_firmware_adds_the_prior_exactly(prior_artifact, tmp_path: Path) -> None:
    """C-simulation, emulator, compiled, native and da4ml's trace agree on every event; the firmware
    score minus the sum of squares is the artifact's prior, to the bit."""
    from da4ml.trace import comb_trace

    from firmware.compiled import CompiledEmulator
    from firmware.convert import to_hls
    from firmware.emulator import Emulator
    from firmware.head import PriorTables
    from firmware.rtl import trace_network

    events = _many_counts(2000, seed=4)
    x = prior_artifact.inputs(events).astype(np.float64)
    scores = prior_artifact.score(events, "quantized")
    threshold = float(np.quantile(scores, 0.7))
    model = to_hls(prior_artifact, tmp_path / "hls", threshold=threshold)
    emulator = Emulator.from_hls_model(model)
    head = emulator.head
    assert head.prior and head.squares is not None and head.score.width > head.squares.width
    csim = np.column_stack([np.asarray(o).reshape(len(x), -1)[:, 0] for o in model.predict(np.ascontiguousarray(x))])
    predicted = emulator.predict(x)
    np.testing.assert_array_equal(csim, predicted)
    assert 0 < predicted[:, 1].sum() < len(x)

    leptons, _ = slot_counts(x)
    assert set(leptons.tolist()) == set(range(9))
    tables = PriorTables.of(prior_artifact.prior, head.squares, head.divisor)
    table = np.add.outer(tables.leptons, tables.jets)
    np.testing.assert_array_equal(head.prior_table, table)
    q = np.round(x / emulator.input_type.lsb)
    np.testing.assert_array_equal(head.prior_mantissas(q), head.prior_by_counts(q))
    without = Emulator(emulator.input_type, emulator.kernels,
                       type(head)(head.reconstruction, head.error, head.accum, head.squares, head.divisor,
                                  head.threshold, head.decision))
    difference = emulator.scores(predicted) - without.scores(without.predict(x))
    np.testing.assert_allclose(difference, prior_artifact.prior.values(x), rtol=0, atol=1e-9)

    compiled = CompiledEmulator(prior_artifact.scaler, emulator)
    expected = emulator.scores(predicted)
    np.testing.assert_array_equal(compiled.compiled_scores(events), expected)
    if compiled.native is not None:  # g++ is there wherever the C-simulation built
        np.testing.assert_array_equal(compiled.scores(events), expected)
    np.testing.assert_array_equal(comb_trace(*trace_network(emulator)).predict(x[:500]), predicted[:500])

    emulator.save(tmp_path / "emulator.npz")
    loaded = Emulator.load(tmp_path / "emulator.npz")
    np.testing.assert_array_equal(loaded.predict(x), predicted)


def test_the_replay_bundle_scores_both_paths_with_the_prior(prior_artifact, tmp_path: Path) -> None:
    """The emulated path decides with the prior, and the float reference adds the twin's prior too."""
    from replay.bundle import load_emulated, load_reference, write_bundle

    write_bundle(prior_artifact.path, tmp_path / "bundle")
    events = _many_counts(500, seed=5)
    reference = load_reference(tmp_path / "bundle", "numpy")
    assert reference.prior == prior_artifact.prior
    np.testing.assert_allclose(reference.scores(events), prior_artifact.score(events, "float"), rtol=1e-5, atol=1e-5)
    emulated = load_emulated(tmp_path / "bundle")
    x = prior_artifact.inputs(events)
    prior = prior_artifact.prior.values(x)
    assert np.mean(prior > 0.5) > 0.5  # the check below would fail without the prior
    np.testing.assert_allclose(emulated.scores(events), prior_artifact.score(events, "quantized"), atol=0.5)


@pytest.fixture(scope="module")
def accepting_artifact(files: dict[str, Path], tmp_path_factory: pytest.TempPathFactory):
    """A tiny autoencoder whose prior weighs the jets only and accepts counts above the training's."""
    from models.config import load_config
    from models.train import train

    config = load_config(ROOT / "models" / "configs" / "tiny_ae.toml",
                         [*TINY_MODEL, "training.epochs=1", "model.multiplicity_weight=0",
                          "model.jet_multiplicity_weight=1", "model.accept_higher_counts=true"])
    return train(config, files["sm"], tmp_path_factory.mktemp("accepting") / "ae", log=io.StringIO())


def test_the_firmware_accepts_higher_counts_at_any_threshold(accepting_artifact, tmp_path: Path) -> None:
    """The accepted counts' prior tops the largest score the firmware can reach (the config's
    ceiling is the firmware's), so such events pass even the highest threshold; C-sim == emulator.
    The prior is refitted on the events with at most two leptons, so that three or more are above it."""
    import dataclasses

    from firmware.convert import to_hls
    from firmware.emulator import Emulator

    assert accepting_artifact.prior.accept > 0 and min(accepting_artifact.prior.jets) == 0
    mc = accepting_artifact.config.model
    events = _many_counts(1000, seed=5)
    x = accepting_artifact.inputs(events).astype(np.float64)
    leptons, _ = slot_counts(x)
    prior = MultiplicityPrior.fit(x[leptons <= 2], 0.0, mc.score_step, 1.0, mc.score_ceiling)
    artifact = dataclasses.replace(accepting_artifact, prior=prior)
    higher = prior.accepted(x)
    assert np.array_equal(higher[leptons >= 3], np.ones(np.count_nonzero(leptons >= 3), bool))
    assert 0 < higher.sum() < len(x)
    model = to_hls(artifact, tmp_path / "hls", threshold=mc.score_ceiling)
    emulator = Emulator.from_hls_model(model)
    head = emulator.head
    assert head.squares is not None
    assert mc.score_ceiling == head.squares.int_max * head.squares.lsb / head.divisor
    csim = np.column_stack([np.asarray(o).reshape(len(x), -1)[:, 0] for o in model.predict(np.ascontiguousarray(x))])
    predicted = emulator.predict(x)
    np.testing.assert_array_equal(csim, predicted)
    np.testing.assert_array_equal(predicted[:, 1].astype(bool), higher)
