"""Whole replays in this process (``run_replay``): every event decided once, working points,
held-out counts, quarantine, a killed worker, paced runs, another model as the reference."""

from __future__ import annotations

import io
import json
import multiprocessing
import os
import signal
import threading
import time
from dataclasses import replace
from pathlib import Path

import h5py
import numpy as np
import pytest
from conftest import decided_batches, expected_accepts, synthetic_events
from replay_helpers import FAST, whole_run

from replay.bundle import load_emulated, write_bundle
from replay.config import ReplayConfig, WorkingPoint, parse_replay_rate
from replay.pipeline import _Roles
from replay.stream import EventStream
from trigger.errors import InputFileError, TriggerError


@pytest.mark.slow
@pytest.mark.parametrize("transport", ["ipc", "tcp"])
def test_replay_decides_every_event_once(tmp_path: Path, artifact_dir: Path, files: dict, bundle: Path,
                                         transport: str) -> None:
    progress = io.StringIO()
    summary = whole_run(tmp_path, artifact_dir, files["sm"], "run", events=4000, transport=transport, progress=progress)
    assert summary.events_in == 4000
    assert summary.accounting_ok and summary.events_decided == 4000
    assert summary.source["packed_batches"] is (transport == "tcp")  # packed where bytes cost more
    with h5py.File(tmp_path / "run" / "accepted.h5") as f:
        bx = np.sort(f["bx"][:])
        assert f["Particles"].shape == (len(bx), 19, 4)
        assert (f["score"][:] > summary.threshold).all()
    np.testing.assert_array_equal(bx, expected_accepts(bundle, files["sm"], 4000))
    assert summary.events_accepted == len(bx)
    # the reference takes a batch only when it is free (on idle CPU time): all of them on an idle machine
    assert summary.reference_events + summary.reference_skipped == 4000 and summary.reference_events > 0
    assert summary.reference_disagreements <= 0.05 * summary.reference_events
    # the source's own round trip ends at the ACK, after the collector decided and journaled the batch, so
    # each order statistic of the round trips is at least the latencies' (the histogram's p50 is the
    # nearest-rank one, within its bin's 1.2 %)
    latencies = np.sort(np.load(tmp_path / "run" / "batch_latency_ms.npy"))
    assert summary.round_trip_ms["p50"] >= 0.98 * latencies[int(np.ceil(0.5 * len(latencies))) - 1]
    assert summary.round_trip_ms["max"] >= summary.batch_latency_ms["max"]
    # each batch's scoring, on the worker's clock (this host's too), is a part of its latency
    unsorted = np.load(tmp_path / "run" / "batch_latency_ms.npy")
    scoring = np.load(tmp_path / "run" / "batch_scoring_ms.npy")
    assert scoring.shape == unsorted.shape and (scoring > 0).all() and (scoring <= unsorted).all()
    assert summary.batch_scoring_ms["max"] == scoring.max() <= summary.batch_latency_ms["max"]
    written = json.loads((tmp_path / "run" / "summary.json").read_text())
    for key in ("events_in", "events_decided", "events_quarantined", "events_accepted", "accept_rate_hz_at_bx",
                "events_per_second", "real_time_factor", "reference_disagreements", "batch_latency_ms",
                "batch_scoring_ms"):
        assert key in written
    last_line = progress.getvalue().splitlines()[-1]  # the live progress ends on the final counts
    assert f"{4000:,} decided" in last_line and "quarantined 0" in last_line
    assert f"ref.disagree {summary.reference_disagreements}" in last_line
    assert not multiprocessing.active_children()


def test_working_point_from_a_threshold_or_an_accept_rate(tmp_path: Path, artifact_dir: Path, files: dict,
                                                          bundle: Path) -> None:
    """``--threshold`` decides at that score; ``--accept-rate`` calibrates on the emulated path's scores
    of the held-out SM events, between two distinct scores; the summary says which was used."""
    from trigger.thresholds import threshold_for

    path = load_emulated(bundle)
    scores = path.scores(synthetic_events(1500, seed=8)[1200:])  # files["sm"]'s held-out split
    cut = float(np.quantile(scores, 0.9))
    fixed = whole_run(tmp_path, artifact_dir, files["sm"], "fixed", events=1500, reference_backend="none",
                 working_point=WorkingPoint(threshold=cut))
    assert fixed.threshold == cut and fixed.working_point["source"] == "--threshold"
    every = path.scores(synthetic_events(1500, seed=8))
    assert fixed.events_accepted == np.count_nonzero(every > cut)
    point = WorkingPoint(accept_rate="4MHz", calibration=files["sm"])  # FPR 0.1: 30 of 300
    rated = whole_run(tmp_path, artifact_dir, files["sm"], "rated", events=1500, reference_backend="none",
                 working_point=point)
    expected = threshold_for(scores, 0.1)
    assert rated.threshold == expected.threshold and rated.threshold not in set(scores.tolist())
    calibration = rated.working_point["calibration"]
    assert rated.working_point["source"] == "--accept-rate 4MHz of 40MHz"
    above = np.count_nonzero(scores > rated.threshold)  # 30 of 300, fewer when SM scores tie at the cut
    assert calibration["path"] == "emulator (replay)" and calibration["achieved"]["accepted"] == above
    assert 30 - np.count_nonzero(scores == np.sort(scores)[-30]) < above <= 30
    assert calibration["events"].startswith("held-out test split [1200, 1500) of the training file")
    default = whole_run(tmp_path, artifact_dir, files["sm"], "default", events=100, reference_backend="none")
    assert default.working_point["source"] == "the artifact's calibration"


def test_the_accept_rate_is_not_called_held_out_on_training_events(tmp_path: Path, artifact_dir: Path,
                                                                   files: dict) -> None:
    """Replaying the model's training file (cycled): the summary counts the events it trained on and
    gives the accept rate on the held-out split alone; another file has no training events."""
    from replay.heldout import held_out_summary

    summary = whole_run(tmp_path, artifact_dir, files["sm"], "train", events=3300, reference_backend="none",
                   working_point=WorkingPoint(threshold=0.0))  # accept everything: the counts are exact
    held = summary.held_out
    assert held["trained_on_events"] == 2 * 1200 + 300 and held["held_out_events"] == 2 * 300
    assert held["held_out_accepted"] == 600 and held["held_out_accept_rate_hz_at_bx"] == pytest.approx(40e6)
    other = whole_run(tmp_path, artifact_dir, files["signal"], "other", events=400, reference_backend="none")
    assert other.held_out["trained_on_events"] == 0 and other.held_out["held_out_events"] == 400
    assert held_out_summary([files["sm"]], None, 10, np.arange(3))["trained_on_events"] == 0


@pytest.mark.slow
def test_non_finite_events_are_quarantined_not_lost(tmp_path: Path, artifact_dir: Path) -> None:
    from conftest import write_events

    events = synthetic_events(1000, seed=11)
    events[[3, 500, 999], 0, 0] = np.nan
    data = write_events(tmp_path / "nan.h5", events, "sm-cocktail")
    summary = whole_run(tmp_path, artifact_dir, data, "run", reference_backend="none")
    assert summary.events_quarantined == 3 and summary.events_decided == 997
    assert summary.accounting_ok and summary.quarantine_reasons == {"non_finite": 3}
    with h5py.File(tmp_path / "run" / "quarantine.h5") as f:
        assert sorted(f["bx"][:]) == [3, 500, 999]


@pytest.mark.slow
def test_a_killed_worker_loses_nothing(tmp_path: Path, artifact_dir: Path, files: dict, bundle: Path) -> None:
    roles = _Roles()
    killed = []

    def kill_a_worker() -> None:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            proc = roles.procs.get("worker-0")
            if proc is not None and proc.pid and decided_batches(tmp_path / "run", proc.pid) >= 3:
                os.kill(proc.pid, signal.SIGKILL)  # mid-run: the paced source needs ~6 s for all events
                killed.append(proc.pid)
                return
            time.sleep(0.05)

    killer = threading.Thread(target=kill_a_worker)
    killer.start()
    config = ReplayConfig(rate=parse_replay_rate("4kHz"), **FAST)
    summary = whole_run(tmp_path, artifact_dir, files["sm"], "run", events=24000, config=config, roles=roles,
                   reference_backend="none")
    killer.join()
    assert killed, "the worker was not killed"
    assert summary.source["workers_lost"] >= 1
    assert summary.events_in == 24000 and summary.accounting_ok
    with h5py.File(tmp_path / "run" / "accepted.h5") as f:
        bx = f["bx"][:]
    assert len(np.unique(bx)) == len(bx)  # no event decided twice
    np.testing.assert_array_equal(np.sort(bx), expected_accepts(bundle, files["sm"], 24000))


@pytest.mark.slow
def test_paced_run_counts_deadline_misses(tmp_path: Path, artifact_dir: Path, files: dict) -> None:
    base = ReplayConfig(rate=parse_replay_rate("20kHz"), **FAST)
    relaxed = whole_run(tmp_path, artifact_dir, files["sm"], "relaxed", config=replace(base, deadline_s=30.0),
                   reference_backend="none")
    strict = whole_run(tmp_path, artifact_dir, files["sm"], "strict", config=replace(base, deadline_s=1e-6),
                  reference_backend="none")
    assert relaxed.mode == "paced" and relaxed.deadline_misses == 0
    assert strict.deadline_misses == strict.events_decided == 1500
    assert relaxed.wall_seconds > 0.05 and relaxed.events_per_second < 20e3 * 1.5


@pytest.mark.slow
def test_a_paced_run_behind_its_schedule_keeps_the_reference_out(tmp_path: Path, artifact_dir: Path,
                                                                  files: dict) -> None:
    """Paced faster than two workers can decide, the source falls behind at once: the reference,
    a side path, then gets no batch (beyond the first ones, sent on time), and every event is decided."""
    config = ReplayConfig(rate=parse_replay_rate("1GHz"), batch_size=256, **FAST)
    summary = whole_run(tmp_path, artifact_dir, files["sm"], "run", events=20000, config=config)
    source = summary.source
    assert summary.accounting_ok and summary.events_decided == 20000
    assert source["reference_behind"] >= 0.9 * 20000
    assert source["reference_events"] + source["reference_skipped"] == 20000
    assert source["reference_behind"] <= source["reference_busy"] <= source["reference_skipped"]


@pytest.mark.slow
@pytest.mark.parametrize(("deadline_s", "kept_out"), [(1e-3, True), (30.0, False)])
def test_a_paced_run_keeps_the_reference_out_while_decisions_are_slow(
        tmp_path: Path, artifact_dir: Path, files: dict, deadline_s: float, kept_out: bool) -> None:
    """On schedule but with decisions taking more than a quarter of the deadline (a 1 ms deadline:
    every round trip does), the reference gets no batch after the first decisions; with room to
    spare it gets them all."""
    config = ReplayConfig(rate=parse_replay_rate("20kHz"), batch_size=200, deadline_s=deadline_s, **FAST)
    summary = whole_run(tmp_path, artifact_dir, files["sm"], "run", events=4000, config=config)
    source = summary.source
    assert summary.accounting_ok and summary.events_decided == 4000
    if kept_out:
        assert source["reference_behind"] >= 0.8 * 4000
    else:
        assert source["reference_behind"] == 0 and source["reference_events"] > 0


def test_unreadable_input_is_a_clear_error_before_anything_starts(tmp_path: Path, artifact_dir: Path) -> None:
    with pytest.raises(InputFileError):
        EventStream([tmp_path / "missing.h5"], 100)
    (tmp_path / "junk.h5").write_bytes(b"not hdf5")
    with pytest.raises(InputFileError):
        whole_run(tmp_path, artifact_dir, tmp_path / "junk.h5", "run")


@pytest.fixture(scope="module")
def cnn_artifact(files: dict, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny seed-003 CNN autoencoder trained for one epoch (a float-only model with its threshold)."""
    from models.config import load_config
    from models.train import train

    config = Path(__file__).resolve().parents[1] / "models/configs/cnn_ae.toml"
    out = tmp_path_factory.mktemp("cnn") / "cnn-ae"
    train(load_config(config, ["training.epochs=1", "model.encoder=[4, 8]", "model.decoder=[8, 4]",
                               "model.latent=4"]), files["sm"], out, log=io.StringIO())
    return out


def test_a_reference_only_tensorflow_runs_is_refused_on_numpy(tmp_path: Path, artifact_dir: Path,
                                                              cnn_artifact: Path) -> None:
    from replay.backends import reference_backend
    from replay.bundle import load_reference

    bundle = write_bundle(artifact_dir, tmp_path / "b", reference=cnn_artifact)
    assert bundle.reference_name == "cnn-ae/float" and not bundle.reference_numpy
    assert reference_backend("auto", bundle) == "tensorflow"
    with pytest.raises(TriggerError, match="only TensorFlow runs; use --reference-backend tensorflow"):
        load_reference(tmp_path / "b", "numpy")


@pytest.mark.slow
def test_replay_with_another_model_as_the_reference(tmp_path: Path, artifact_dir: Path, files: dict,
                                                    cnn_artifact: Path) -> None:
    """``--reference`` a CNN autoencoder: each path decides at its own calibrated threshold, and the
    collector counts, per compared batch, the events only one of them accepts."""
    from models.artifact import load_artifact
    from replay.journal import read_records
    from replay.outputs import DECISION, REFERENCE_JOIN

    summary = whole_run(tmp_path, artifact_dir, files["sm"], "run", events=1500, reference=cnn_artifact,
                   reference_backend="auto")
    assert summary.accounting_ok and summary.reference_backend == "tensorflow"
    assert summary.reference_model == "cnn-ae/float" and summary.reference_events > 0
    records = list(read_records(tmp_path / "run" / "decisions.journal"))
    batches = {r["seq"]: (r["bx0"], r["n"]) for r in records if r["k"] == DECISION}
    compared = [batches[r["seq"]] for r in records if r["k"] == REFERENCE_JOIN and r["compared"]]
    with h5py.File(files["sm"]) as f:
        events = f["Particles"][:1500]
    cnn = load_artifact(cnn_artifact)
    reference = cnn.score(events, "float") > cnn.threshold("float")
    trigger = np.isin(np.arange(1500), expected_accepts(tmp_path / "run" / "model", files["sm"], 1500))
    rows = np.concatenate([np.arange(bx0, bx0 + n) for bx0, n in compared])
    assert summary.reference_only_accepts == np.count_nonzero(reference[rows] & ~trigger[rows])
    assert summary.trigger_only_accepts == np.count_nonzero(trigger[rows] & ~reference[rows])
    assert summary.reference_disagreements == summary.reference_only_accepts + summary.trigger_only_accepts
