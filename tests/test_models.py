from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from conftest import TINY_MODEL, synthetic_events, train_tiny, write_events

from models.artifact import load_artifact
from models.config import load_config
from models.evaluate import evaluate
from trigger.cli import main
from trigger.contracts import Evaluation
from trigger.errors import ArtifactError, UsageError
from trigger.menu import load_menu


def test_artifact_round_trips_with_identical_scores(artifact_dir: Path, files: dict[str, Path]) -> None:
    first = load_artifact(artifact_dir)
    assert first.variants == ["quantized", "float"]
    events = synthetic_events(300, seed=2)
    again = load_artifact(artifact_dir)
    for variant in first.variants:
        np.testing.assert_array_equal(first.score(events, variant), again.score(events, variant))
    manifest = json.loads((artifact_dir / "manifest.json").read_text())
    assert {"config.json", "scaler.json", "thresholds.json", "history.json", "metrics.json",
            "quantized.weights.h5", "float.weights.h5"} <= set(manifest["files"])
    assert manifest["data"]["file"] == "sm.h5" and len(manifest["data"]["sha256"]) == 64
    assert manifest["packages"]["tensorflow"].startswith("2.14")
    assert len(json.loads((artifact_dir / "history.json").read_text())["quantized"]["loss"]) == 2
    decisions = first.accept(events)
    assert decisions.dtype == bool and decisions.shape == (300,)


def test_evaluation_json_has_the_documented_keys(artifact_dir: Path, files: dict[str, Path],
                                                 tmp_path: Path) -> None:
    out = tmp_path / "eval.json"
    assert main(["evaluate", "--model", str(artifact_dir), "--background", str(files["sm"]),
                 "--signal", str(files["signal"]), "--json", str(out)]) == 0
    results = Evaluation.load(out)
    assert json.loads(out.read_text())["format"] == "trigger.evaluation"
    assert set(results.signals) == {"hardjets"}
    assert set(results.signals["hardjets"]) == {"auc", "tpr_at_fpr"}
    assert 0.0 <= results.signals["hardjets"]["auc"] <= 1.0
    assert set(results.models) == {"dense-ae/quantized", "dense-ae/float"}
    point = results.models["dense-ae/float"]["signals"]["hardjets"]["tpr_at_fpr"]["0.01"]
    assert point["tpr_low"] <= point["tpr"] <= point["tpr_high"]
    assert results.models["dense-ae/float"]["signals"]["hardjets"]["tpr_at_fpr"]["1e-05"]["tpr"] is None
    assert "held-out test split" in results.models["dense-ae/float"]["background"]


def test_recalibrated_evaluation_sets_each_threshold_on_the_background_given(
        artifact_dir: Path, files: dict[str, Path]) -> None:
    from models.background import read_background
    from trigger.thresholds import threshold_for

    artifact = load_artifact(artifact_dir)
    fpr = artifact.thresholds["float"].target_fpr  # the stored working point
    stored = evaluate([artifact], files["sm"], [files["signal"]], fpr)
    here = evaluate([artifact], files["sm"], [files["signal"]], fpr, recalibrate=True)
    for variant in artifact.variants:
        at_stored = stored.models[f"dense-ae/{variant}"]["signals"]["hardjets"]["working_point"]
        at_here = here.models[f"dense-ae/{variant}"]["signals"]["hardjets"]["working_point"]
        assert at_stored["threshold_from"].startswith("the artifact's calibration")
        assert at_here["threshold_from"] == "these SM events"
        background = artifact.score(read_background(artifact, [files["sm"]], None).events, variant)
        assert at_here["threshold"] == threshold_for(background, fpr).threshold
        assert at_here["stored_threshold"] == at_stored["fpr_on_these_events"]  # where the stored one lands here
        assert "stored_threshold" not in at_stored


def test_evaluation_separates_an_obvious_signal(artifact_dir: Path, files: dict[str, Path]) -> None:
    results = evaluate([load_artifact(artifact_dir)], files["sm"], [files["signal"]], 2.5e-5)
    assert results.signals["hardjets"]["auc"] > 0.6


def test_calibrate_stores_a_new_working_point(artifact_dir: Path, files: dict[str, Path], tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    import firmware.convert
    from firmware.bundle import BUNDLE_DIR, stored_bundle

    copy = tmp_path / "copy"
    shutil.copytree(artifact_dir, copy)
    before = load_artifact(copy).score(synthetic_events(200, seed=3))
    conversions = []
    convert = firmware.convert.convert
    monkeypatch.setattr(firmware.convert, "convert", lambda *a, **k: conversions.append(1) or convert(*a, **k))
    assert main(["calibrate", "--model", str(copy), "--background", str(files["sm"]),
                 "--accept-rate", "4MHz"]) == 0  # FPR 0.1: 30 of the 300 held-out events
    assert len(conversions) == 1  # one hls4ml conversion scores the events and is stored
    calibrated = load_artifact(copy)
    quantized = calibrated.thresholds["quantized"]
    assert quantized.target_fpr == pytest.approx(0.1) and quantized.path == "emulator"
    assert quantized.events.startswith("held-out test split [1200, 1500) of the training file")
    assert calibrated.thresholds["float"].path == "float"
    bundle = stored_bundle(calibrated)
    assert bundle is not None and (copy / BUNDLE_DIR / "firmware.json").is_file()
    assert bundle.threshold == quantized.threshold and bundle.manifest.threshold_source["path"] == "emulator"

    held_out = synthetic_events(1500, seed=8)[1200:]  # the files["sm"] events the threshold saw
    scores = bundle.scores(held_out)
    assert quantized.threshold not in set(scores.tolist())  # between two SM scores, not on one
    above = np.count_nonzero(scores > quantized.threshold)
    assert above == quantized.achieved.accepted  # 30 of 300, fewer when SM scores tie at the cut:
    assert 30 - np.count_nonzero(scores == np.sort(scores)[-30]) < above <= 30
    # the firmware's own accept bit, at the new threshold, is the bundle's decision
    fresh = synthetic_events(3000, seed=5)
    bits = bundle.emulator.predict(calibrated.inputs(fresh).astype(np.float64))[:, 1]
    np.testing.assert_array_equal(bundle.accept(fresh), bits == 1)
    assert 0.04 < bundle.accept(fresh).mean() < 0.2  # about 0.1 on fresh events of the same kind
    # the model's own scores are the model's: calibrating changed only its thresholds
    np.testing.assert_array_equal(calibrated.score(synthetic_events(200, seed=3)), before)


def test_calibrate_weights_a_set_of_samples_to_the_stream(artifact_dir: Path, tmp_path: Path,
                                                         capsys: pytest.CaptureFixture[str]) -> None:
    """A cocktail of the four SM processes and an oversampled ttbar file: the threshold comes from
    their events weighted to the stream's shares, with effective counts; files that cannot be told
    apart by process are refused with the reason."""
    from firmware.bundle import deployed_scorer
    from trigger.events import EventWriter
    from trigger.generator.processes import COCKTAIL_FRACTIONS, GENERATED

    def generated(path: Path, events: np.ndarray, codes: np.ndarray) -> Path:
        with EventWriter(path, attrs={"process": "sm-cocktail"}, extras={"process_code": np.int8}) as writer:
            writer.append(events, process_code=codes)
        return path

    rng = np.random.default_rng(3)
    names = list(COCKTAIL_FRACTIONS)
    mix = rng.choice([GENERATED[n].code for n in names], 2000, p=[COCKTAIL_FRACTIONS[n] / sum(COCKTAIL_FRACTIONS.values())
                                                                  for n in names])
    mix[:4] = GENERATED["ttbar"].code  # a few in the cocktail, as 0.3 % of it
    cocktail = generated(tmp_path / "cocktail.h5", synthetic_events(2000, seed=31), mix)
    ttbar = generated(tmp_path / "ttbar.h5", synthetic_events(500, seed=32), np.full(500, GENERATED["ttbar"].code))
    copy = tmp_path / "copy"
    shutil.copytree(artifact_dir, copy)
    assert main(["calibrate", "--model", str(copy), "--background", str(cocktail), "--background", str(ttbar),
                 "--accept-rate", "400kHz"]) == 0
    quantized = load_artifact(copy).thresholds["quantized"]
    assert quantized.events.startswith("weighted to the stream's process shares: cocktail.h5")
    assert quantized.achieved.total == 2500 and quantized.achieved.effective_accepted is not None
    assert quantized.achieved.fpr == pytest.approx(0.01, rel=0.3)
    assert quantized.achieved.effective_accepted < quantized.achieved.accepted + 1e-9
    signal = write_events(tmp_path / "signal.h5", synthetic_events(300, seed=34) * [3.0, 1, 1, 1], "hardjets")
    # scored as calibrate scored them (the firmware emulator), so the same events are above the threshold
    results = evaluate([load_artifact(copy)], [cocktail, ttbar], [signal], 0.01, scorer=deployed_scorer)
    model = next(iter(results.models.values()))
    assert results.background_file == "cocktail.h5, ttbar.h5" and model["background"].startswith("weighted")
    on_these = model["signals"]["hardjets"]["working_point"]["fpr_on_these_events"]
    assert on_these["effective_accepted"] is not None and on_these["fpr"] == pytest.approx(quantized.achieved.fpr)
    with pytest.raises(UsageError, match="take one --background file, not a weighted set"):
        evaluate([load_artifact(copy)], [cocktail, ttbar], [signal], 0.01, menu=load_menu("run3"))
    plain = write_events(tmp_path / "public.h5", synthetic_events(300, seed=33), "sm-cocktail")
    assert main(["calibrate", "--model", str(copy), "--background", str(cocktail), "--background", str(plain)]) == 2
    assert "no per-event 'process_code'" in capsys.readouterr().err


def test_a_stored_firmware_bundle_of_an_older_model_is_refused(artifact_dir: Path, files: dict[str, Path],
                                                                tmp_path: Path) -> None:
    from firmware.bundle import stored_bundle
    from trigger.errors import ArtifactError

    copy = tmp_path / "copy"
    shutil.copytree(artifact_dir, copy)
    assert main(["calibrate", "--model", str(copy), "--background", str(files["sm"])]) == 0
    assert stored_bundle(load_artifact(copy)) is not None
    config = copy / "config.json"
    config.write_text(config.read_text() + "\n")  # a file the firmware is made from changed, as in retraining
    from models.artifact import update_manifest

    update_manifest(copy)
    with pytest.raises(ArtifactError, match="another version of this model"):
        stored_bundle(load_artifact(copy))


def test_the_working_point_is_the_calibrated_threshold(artifact_dir: Path, files: dict[str, Path],
                                                       tmp_path: Path) -> None:
    """Evaluated on a few SM events, the working point keeps the threshold (and the statistics) of the
    artifact's calibration; at an FPR it was not calibrated for, it is set on the events at hand."""
    copy = tmp_path / "copy"
    shutil.copytree(artifact_dir, copy)
    assert main(["calibrate", "--model", str(copy), "--background", str(files["sm"]),
                 "--accept-rate", "4MHz"]) == 0  # FPR 0.1 on 300 held-out events: supported
    calibrated = load_artifact(copy)
    few = write_events(tmp_path / "few.h5", synthetic_events(50, seed=3), "sm-cocktail")
    point = evaluate([calibrated], few, [files["signal"]], 0.1).models[
        "dense-ae/quantized"]["signals"]["hardjets"]["working_point"]
    assert point["threshold"] == calibrated.thresholds["quantized"].threshold
    assert point["supported"] and point["threshold_from"].startswith("the artifact's calibration on held-out")
    assert point["fpr_on_these_events"]["total"] == 50
    other = evaluate([calibrated], few, [files["signal"]], 0.05).models[
        "dense-ae/quantized"]["signals"]["hardjets"]["working_point"]
    assert other["threshold_from"] == "these SM events" and not other["supported"]  # 2.5 expected above


@pytest.mark.parametrize("damage", ["weights", "manifest", "version", "missing"])
def test_damaged_artifacts_give_clear_errors(artifact_dir: Path, tmp_path: Path, damage: str) -> None:
    copy = tmp_path / "copy"
    shutil.copytree(artifact_dir, copy)
    if damage == "weights":
        data = bytearray((copy / "float.weights.h5").read_bytes())
        data[len(data) // 2] ^= 0xFF
        (copy / "float.weights.h5").write_bytes(bytes(data))
        message = "float.weights.h5 is damaged"
    elif damage == "manifest":
        (copy / "manifest.json").unlink()
        message = "no manifest.json"
    elif damage == "version":
        manifest = json.loads((copy / "manifest.json").read_text())
        manifest["version"] = 99
        (copy / "manifest.json").write_text(json.dumps(manifest))
        message = "version 99"
    else:
        (copy / "scaler.json").unlink()
        message = "scaler.json is missing"
    with pytest.raises(ArtifactError, match=message):
        load_artifact(copy)


def test_config_rejects_typos_and_mismatches(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match=r"unknown key.*laten"):
        load_config(None, ["model.laten=3"])
    with pytest.raises(UsageError, match="does not fit kind"):
        load_config(None, ["model.kind=vae"])
    bad = tmp_path / "bad.toml"
    bad.write_text("[model\nname = 1")
    with pytest.raises(UsageError, match="not valid TOML"):
        load_config(bad)
    config = load_config(Path(__file__).parents[1] / "models/configs/vae.toml", ["model.latent=4"])
    assert config.model.kind == "vae" and config.model.latent == 4 and config.model.score == "mu2"


@pytest.mark.parametrize("config", ["vae.toml", "ffn_baseline.toml", "cnn_ae.toml", "transformer_ae.toml",
                                    "flow.toml"])
def test_every_bundled_config_trains(config: str, files: dict[str, Path], tmp_path: Path) -> None:
    from models.train import train

    path = Path(__file__).parents[1] / "models/configs" / config
    artifact = train(load_config(path, ["training.epochs=1", "training.max_events=600"]), files["sm"],
                     tmp_path / "a")
    events = synthetic_events(50, seed=3)
    scores = artifact.score(events)
    assert np.all(np.isfinite(scores)) and (artifact.config.model.score == "nll" or np.all(scores >= 0))
    np.testing.assert_array_equal(load_artifact(tmp_path / "a").score(events), scores)  # round trip


def test_a_student_learns_its_teachers_score_and_its_firmware_squares_it_bit_for_bit(
        artifact_dir: Path, files: dict[str, Path], tmp_path: Path) -> None:
    """The bundled student configuration, taught by the tiny test AE: it records its teacher, its
    float output follows the teacher's log-score on events it never saw, its score is that output
    squared plus its multiplicity prior, it round-trips, and the emulator of its firmware (output
    squared, the prior, then the decision) equals hls4ml's C-simulation."""
    from firmware.check import csim_outputs
    from firmware.convert import to_hls
    from firmware.emulator import Emulator
    from models.distill import Distillation
    from models.train import train

    path = Path(__file__).parents[1] / "models/configs/student.toml"
    config = load_config(path, ["model.encoder=[8]", "training.epochs=30", "training.batch_size=32",
                                "training.learning_rate=3e-3", f"training.teacher={artifact_dir}"])
    student = train(config, files["sm"], tmp_path / "student")
    record = json.loads((tmp_path / "student/metrics.json").read_text())["distillation"]
    assert record["teacher"] == "dense-ae" and record["teacher_variant"] == "quantized"
    teacher = load_artifact(artifact_dir)
    events = synthetic_events(2000, seed=21)
    targets = Distillation(teacher, record["offset"]).targets(teacher.score(events))
    output = student.networks["float"].scorer.predict(student.inputs(events), verbose=0)
    assert np.corrcoef(output[:, 0], targets[:, 0])[0, 1] > 0.5  # about 0.68; targets out of step: about 0
    assert student.prior is not None  # the default's: the jet count weighed, higher counts accepted
    squared = output[:, 0].astype(np.float64) ** 2
    np.testing.assert_array_equal(student.score(events, "float"), squared + student.prior.values(student.inputs(events)))
    np.testing.assert_array_equal(load_artifact(tmp_path / "student").score(events), student.score(events))
    x = student.inputs(events).astype(np.float64)
    hls_model = to_hls(student, tmp_path / "hls", threshold=float(np.median(student.score(events))))
    csim = csim_outputs(hls_model, x)
    np.testing.assert_array_equal(Emulator.from_hls_model(hls_model).predict(x), csim)
    assert 0.3 < csim[:, 1].mean() < 0.7  # the decision at the median score: about half accepted
    with pytest.raises(UsageError, match="a student needs a teacher"):
        train(load_config(path, ["training.epochs=1", "training.teacher="]), files["sm"], tmp_path / "none")
    with pytest.raises(UsageError, match="a student regresses one number"):
        load_config(path, ["model.latent=2"])


def test_the_flow_gives_the_exact_density_of_a_gaussian_it_can_represent() -> None:
    """Couplings whose nets output constants make the flow a diagonal affine map: it then is the
    density of N(mu, sigma^2) exactly, so -log p(x) must equal the Gaussian's, input by input."""
    from scipy.stats import norm

    from models.networks import build_networks, coupling_masks
    from models.scores import anomaly_score

    config = load_config(None, ["model.kind=flow", "model.quantized=false", "model.loss=nll", "model.score=nll",
                                "model.encoder=[8]", "model.blocks=2", "model.flow_noise=0", "model.input_type="])
    flow = build_networks(config.model, quantized=False).scorer
    rng = np.random.default_rng(0)
    log_scale, shift = rng.uniform(-2, 2, (2, 57)), rng.normal(0, 1, (2, 57))
    for k in range(2):  # weights: the conditioner's kernel and bias, then the log-scale's, then the shift's
        layer = flow.get_layer(f"coupling{k + 1}")
        weights = [np.zeros_like(w) for w in layer.get_weights()]
        weights[-3] = 3 * np.arctanh(log_scale[k] / 3)  # the log-scale bias, soft-clamped back to log_scale
        weights[-1] = shift[k]
        layer.set_weights(weights)
    s = np.where(coupling_masks(2)[0] == 0, log_scale[0], log_scale[1])  # each input is moved once
    t = np.where(coupling_masks(2)[0] == 0, shift[0], shift[1])
    sigma, mu = np.exp(-s), -t * np.exp(-s)  # z = x * exp(s) + t is N(0, 1) for x ~ N(mu, sigma^2)
    x = rng.normal(mu, sigma, (200, 57)).astype(np.float32)
    expected = -norm.logpdf(x.astype(np.float64), mu, sigma).sum(axis=1)
    scores = anomaly_score("nll", x, flow.predict(x, verbose=0), None)
    np.testing.assert_allclose(scores, expected, rtol=1e-4, atol=1e-3)


def test_given_targets_travel_with_their_events_through_the_shuffle(event_file: Path) -> None:
    """A student's targets: each batch row keeps its own event's target, prepared or not."""
    from models.stream import EventBatches
    from trigger.events import read_events
    from trigger.preprocess import Scaler

    events = read_events(event_file)
    scaler = Scaler("standard", log_pt=True, input_type="ap_fixed<16,6>").fit(events)
    expected = scaler.transform(events[100:900])
    index = np.arange(800, dtype=np.float32)[:, None]  # the target of each event: its place in the span
    for cache in (None, event_file.parent / "cache"):
        stream = EventBatches(event_file, (100, 900), scaler, "mse", 64, seed=3, chunk_events=50, cache=cache,
                              targets=index)
        stream.prepare()
        stacks = list(stream())
        x, y = (np.concatenate([a.reshape(-1, a.shape[-1]) for a in arrays]) for arrays in zip(*stacks, strict=True))
        assert sorted(y[:, 0].tolist()) == index[:, 0].tolist() and y[:, 0].tolist() != index[:, 0].tolist()
        np.testing.assert_array_equal(x, expected[y[:, 0].astype(int)])
    with pytest.raises(ValueError, match="10 targets for the 800 events"):
        EventBatches(event_file, (100, 900), scaler, "mse", 64, targets=index[:10])


def test_training_batches_stream_every_event_once_per_epoch_shuffled_across_chunks(event_file: Path) -> None:
    """The stream reads small chunks, yields each event of the span once per epoch, mixes chunks in
    a batch, reshuffles each epoch (seeded), and keeps file order for validation."""
    from models.stream import EventBatches
    from trigger.events import read_events
    from trigger.preprocess import Scaler

    events = read_events(event_file)  # 1000 synthetic events
    scaler = Scaler("standard", log_pt=True, input_type="ap_fixed<16,6>").fit(events)
    expected = scaler.transform(events[100:900])

    def epoch(stream: EventBatches) -> np.ndarray:
        stacks = list(stream())  # what train() hands to TensorFlow: (batches, <= 64, width) per pool
        assert all(x.shape[1] <= 64 and y.shape == (*x.shape[:2], 114) for x, y in stacks)
        return np.concatenate([x.reshape(-1, 57) for x, _ in stacks])

    stream = EventBatches(event_file, (100, 900), scaler, "masked_mse", 64, seed=3, chunk_events=50, pool_chunks=4)
    first, second = epoch(stream), epoch(stream)
    rows = {row.tobytes(): i for i, row in enumerate(expected)}  # every event once (they are distinct)
    positions = [rows[row.tobytes()] for row in first]
    assert sorted(positions) == list(range(800)) and sorted(rows[r.tobytes()] for r in second) == list(range(800))
    assert not np.array_equal(first, second)  # another order each epoch
    assert len({p // 50 for p in positions[:64]}) > 1  # a batch mixes events of several chunks
    again = EventBatches(event_file, (100, 900), scaler, "masked_mse", 64, seed=3, chunk_events=50, pool_chunks=4)
    np.testing.assert_array_equal(epoch(again), first)  # the seed fixes the order
    validation = EventBatches(event_file, (100, 900), scaler, "masked_mse", 64, chunk_events=50)
    np.testing.assert_array_equal(epoch(validation), expected)


def test_training_reads_float64_files_as_the_public_data_has_them(files: dict[str, Path], tmp_path: Path) -> None:
    from conftest import write_events

    from trigger.events import read_events

    sm64 = write_events(tmp_path / "sm64.h5", read_events(files["sm"]), "sm-cocktail", np.float64)
    assert main(["train", "--data", str(sm64), "--out", str(tmp_path / "ae64"),
                 *[a for o in TINY_MODEL for a in ("--set", o)]]) == 0
    artifact = load_artifact(tmp_path / "ae64")
    assert artifact.manifest["data"]["split"]["test"] == [1200, 1500]
    assert not list((tmp_path / "ae64").glob(".inputs-*"))  # the prepared inputs are removed
    assert np.isfinite(artifact.score(read_events(sm64)[1200:], "quantized")).all()



def test_the_supervised_bound_trains_round_trips_and_never_passes_for_an_anomaly_score(
        files: dict[str, Path], artifact_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from models.supervised import load_supervised, train_supervised

    out = tmp_path / "supervised-hardjets"
    trained = train_supervised(files["sm"], files["signal"], out, fpr=0.01, max_iter=30, dnn_epochs=2)
    events = synthetic_events(200, seed=4)
    np.testing.assert_array_equal(load_supervised(out).score(events), trained.score(events))
    assert trained.signal == "hardjets" and trained.manifest["signal_data"]["train"] == [0, 240]
    candidates = trained.manifest["candidates"]  # both were trained; the one kept keeps more signal at FPR 1e-3
    assert set(candidates) == {"gradient-boosted", "seed-000 dnn"}
    merit = {k: (c["validation_tpr_at_fpr_1e-3"], c["validation_auc"]) for k, c in candidates.items()}
    assert trained.manifest["classifier"] == max(merit, key=lambda k: merit[k])
    from models import supervised

    fit_both = supervised._fit_candidates  # the seed-000 DNN alone, to test the artifact it leaves
    monkeypatch.setattr(supervised, "_fit_candidates", lambda *a: {k: v for k, v in fit_both(*a).items()
                                                                   if k == "seed-000 dnn"})
    dnn = train_supervised(files["sm"], files["signal"], tmp_path / "dnn", fpr=0.01, dnn_epochs=2)
    assert dnn.manifest["classifier"] == "seed-000 dnn" and not (tmp_path / "dnn/classifier.joblib").exists()
    np.testing.assert_array_equal(load_supervised(tmp_path / "dnn").score(events), dnn.score(events))
    with pytest.raises(ArtifactError, match=r"supervised classifier for hardjets.*not an anomaly score"):
        load_artifact(out)  # so no command can take it as a trigger's model
    with pytest.raises(ArtifactError, match="not a supervised classifier"):
        load_supervised(artifact_dir)
    results = evaluate([load_artifact(artifact_dir)], files["sm"], [files["signal"]], 0.01, supervised=[trained])
    row = results.models["supervised-hardjets/supervised"]
    assert row["supervised"] and "not an anomaly detector" in row["note"]
    assert row["signals"]["hardjets"]["events"] == 400 - 240  # its own signal's held-out events only
    assert row["signals"]["hardjets"]["auc"] > 0.9  # the signal's jets are three times harder


def test_the_seed_000_dnn_learns_a_separable_signal_and_round_trips(tmp_path: Path) -> None:
    from models.seed_dnn import SeedDNN

    rng = np.random.default_rng(0)
    x = rng.normal(0, 1, (3000, 5)).astype(np.float32)
    y = (x[:, 0] + 0.5 * x[:, 1] > 0.8).astype(np.float64)
    weights = np.ones(len(y))
    dnn = SeedDNN.fit(x[:2000], y[:2000], weights[:2000], (x[2000:], y[2000:], weights[2000:]), max_epochs=5)
    from sklearn.metrics import roc_auc_score

    assert roc_auc_score(y[2000:], dnn.decision_function(x[2000:])) > 0.95
    dnn.save(tmp_path)
    np.testing.assert_array_equal(SeedDNN.load(tmp_path).decision_function(x), dnn.decision_function(x))


@pytest.mark.slow
def test_the_sweep_writes_a_pareto_front(files: dict[str, Path], artifact_dir: Path, tmp_path: Path,
                                         monkeypatch) -> None:
    from firmware import sweep
    from trigger.contracts import Sweep

    monkeypatch.setattr(sweep, "SHAPE_SPACE", {"width": (4, 8, 4), "latent": (2, 3, 1)})  # a tiny space
    monkeypatch.setattr(sweep, "QKERAS_SPACE", {"weight_bits": (4, 5, 1), "activation_bits": (4, 5, 1)})
    config = load_config(Path(__file__).parents[1] / "models/configs/tiny_ae_qat.toml", ["training.max_events=600"])
    summary = sweep.run_sweep(config, files["sm"], [files["signal"]], tmp_path / "sweep", trials=2, epochs=1,
                              fpr=0.01, progress=lambda _: None, include=[artifact_dir])
    assert Sweep.load(tmp_path / "sweep" / "sweep.json") == summary
    written = json.loads((tmp_path / "sweep" / "sweep.json").read_text())
    assert written["format"] == "trigger.sweep" and len(written["trials"]) == 3
    assert written["pareto"] and set(written["pareto"]) <= {t["number"] for t in written["trials"]}
    *trials, included = written["trials"]
    for trial in written["trials"]:
        assert 0 <= trial["efficiency"] <= 1 and trial["cost"] > 0 and trial["latency_ns"] > 0
    for trial in trials:
        assert 4 <= trial["params"]["width"] <= 8 and trial["params"]["quantizer"] == "qkeras"
        assert not trial["artifact"]
    # the included model is measured as a trial is: its firmware's scores at the same working point
    from firmware.bundle import bundle_for
    from models.background import background_events
    from models.evaluate import read_signals
    from trigger.thresholds import threshold_for

    model = load_artifact(artifact_dir)
    firmware, (background, _) = bundle_for(model), background_events(model, files["sm"])
    threshold = threshold_for(firmware.scores(background), 0.01).threshold
    signal = next(iter(read_signals([files["signal"]]).values()))
    assert included["number"] == 2 and included["artifact"] == str(artifact_dir)
    assert included["params"]["model"] == model.name and included["params"]["kind"] == "ae"
    assert included["efficiency"] == pytest.approx(np.mean(firmware.scores(signal) > threshold))


def test_the_sweep_includes_only_models_with_firmware(files: dict[str, Path], tmp_path: Path) -> None:
    from firmware.sweep import included_models

    float_model = train_tiny(files["sm"], tmp_path / "float", "model.quantized=false")
    with pytest.raises(UsageError, match=r"--include .*float: .* is a float model; the front holds models with "):
        included_models([float_model])


def test_a_sweep_trial_picks_its_quantizer_and_only_that_quantizers_parameters() -> None:
    import optuna

    from firmware.sweep import _config, suggest

    base = load_config(Path(__file__).parents[1] / "models/configs/hgq_ae.toml")
    hgq = suggest(optuna.trial.FixedTrial({"width": 8, "latent": 2, "quantizer": "hgq", "hgq_beta": 3e-6}),
                  ("qkeras", "hgq"))
    assert hgq == {"width": 8, "latent": 2, "quantizer": "hgq", "hgq_beta": 3e-6}
    model = _config(base, hgq, epochs=1).model
    assert (model.quantizer, model.hgq_beta, model.encoder, model.latent) == ("hgq", 3e-6, (8,), 2)
    fixed = {"width": 12, "latent": 3, "weight_bits": 5, "activation_bits": 6}
    qkeras = suggest(optuna.trial.FixedTrial(fixed), ("qkeras",))  # one quantizer: not a choice
    assert qkeras == {**fixed, "quantizer": "qkeras"}
    model = _config(base, qkeras, epochs=1).model
    assert (model.quantizer, model.weight_bits, model.activation_bits) == ("qkeras", 5, 6)


def test_the_pareto_front_keeps_only_unbeaten_trials() -> None:
    from firmware.sweep import TrialResult, pareto_front

    def trial(n: int, efficiency: float, cost: float) -> TrialResult:
        return TrialResult(n, {}, efficiency, {}, cost, 10.0, {})

    trials = [trial(0, 0.5, 100), trial(1, 0.6, 200), trial(2, 0.4, 150), trial(3, 0.6, 250), trial(4, 0.7, 400)]
    assert [t.number for t in pareto_front(trials)] == [0, 1, 4]
