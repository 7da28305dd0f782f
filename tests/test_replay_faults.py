"""Replay faults as a user meets them: a process of the run killed mid-run (SIGKILL), after the
k-th decided batch. Whatever dies, the run folder stays readable, holds every acknowledged
decision, rebuilds its files (``replay recover``) and resumes (``replay --resume``) to the
accepted set of an uninterrupted run."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import h5py
import numpy as np
import pytest
from conftest import decided_batches, expected_accepts

from replay.config import ReplayConfig, parse_replay_rate
from replay.journal import JOURNAL, Journal, SeqSet, read_records
from replay.pipeline import ReplayRun, _Roles, run_replay
from trigger.contracts import RunSummary

REPLAY = [sys.executable, "-c", "import sys; from replay.cli import main; sys.exit(main())"]


def _role_processes(run: Path) -> list[int]:
    """Processes whose command line (the role's title) names the run folder."""
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and entry.name != str(os.getpid()):
            try:
                cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            except OSError:
                continue
            if f"(run {run})" in cmdline:
                pids.append(int(entry.name))
    return pids


@pytest.fixture
def no_leaked_roles(tmp_path: Path):
    """Fails the test that leaves a role process of its runs behind (and kills it)."""
    yield
    leaked = [pid for run in tmp_path.iterdir() if run.is_dir() for pid in _role_processes(run)]
    for pid in leaked:
        os.kill(pid, signal.SIGKILL)
    assert not leaked, f"role processes left behind: {leaked}"


def _accepted_bx(run: Path) -> np.ndarray:
    with h5py.File(run / "accepted.h5") as f:
        return np.sort(f["bx"][:])


# -- the journal -----------------------------------------------------------------------------
def test_a_torn_journal_record_is_cut_off_and_the_journal_continues(tmp_path: Path) -> None:
    path = tmp_path / JOURNAL
    journal = Journal(path)
    for seq in range(3):
        journal.append({"k": "d", "seq": seq, "data": bytes(100)})
    journal.close()
    whole = path.stat().st_size
    with path.open("ab") as f:
        f.write(b"\x40\x00\x00\x00\x01\x02")  # a record cut short, as by a SIGKILL mid-write
    assert [r["seq"] for r in read_records(path)] == [0, 1, 2]
    journal = Journal(path)
    assert journal.truncated_bytes == 6 and path.stat().st_size == whole
    journal.append({"k": "d", "seq": 3})
    journal.close()
    assert [r["seq"] for r in read_records(path)] == [0, 1, 2, 3]
    data = bytearray(path.read_bytes())
    data[20] ^= 0xFF  # a damaged byte in the first record: nothing after it is trusted
    path.write_bytes(bytes(data))
    assert list(read_records(path)) == []


def test_seq_sets_stay_small_when_numbers_come_nearly_in_order() -> None:
    seen = SeqSet()
    for seq in [1, 0, 2, 5, 3, 4, 7]:
        seen.add(seq)
    assert seen.low == 6 and seen.above == {7} and len(seen) == 7
    assert 4 in seen and 7 in seen and 6 not in seen and -1 not in seen
    assert not seen.is_range(8)
    seen.add(6)
    assert seen.is_range(8) and not seen.above


# -- killed processes ------------------------------------------------------------------------
@pytest.mark.slow
@pytest.mark.parametrize("victim", ["collector", "reference"])
def test_a_killed_collector_or_reference_is_started_again(tmp_path: Path, artifact_dir: Path, files: dict,
                                                          victim: str, no_leaked_roles: None) -> None:
    """SIGKILL of the collector or the reference after the 10th decided batch: it is started again,
    the run ends normally with every event decided once and the accepted set of an uninterrupted
    run, and the summary counts the restart."""
    run, events = tmp_path / "run", 16_000
    roles, killed = _Roles(run), []

    def kill() -> None:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and not killed:
            proc = roles.procs.get(victim)
            if proc is not None and proc.pid and decided_batches(run) >= 10:
                os.kill(proc.pid, signal.SIGKILL)
                killed.append(proc.pid)
            time.sleep(0.02)

    killer = threading.Thread(target=kill)
    killer.start()
    config = ReplayConfig(rate=parse_replay_rate("4kHz"), heartbeat_s=0.1, ack_timeout_s=2.0)
    summary = run_replay(ReplayRun((files["sm"],), artifact_dir, run, config, events=events,
                                   reference_backend="numpy"), progress=None, roles=roles)
    killer.join()
    assert killed, f"the {victim} was not killed"
    assert summary.restarts == {victim: 1}
    assert summary.events_in == events and summary.accounting_ok
    bx = _accepted_bx(run)
    assert len(np.unique(bx)) == len(bx)  # no event decided twice
    np.testing.assert_array_equal(bx, expected_accepts(run / "model", files["sm"], events))
    again = roles.procs[victim]  # the new process, ended by the run's end as the others are
    assert again.pid != killed[0]
    # the collector ends by itself; the reference, on idle CPU time only, may still be stopped by the run's end
    assert again.exitcode == 0 if victim == "collector" else again.exitcode in (0, -signal.SIGTERM)
    assert summary.reference_events + summary.reference_skipped <= events  # a side check: it may miss some


@pytest.mark.slow
def test_a_killed_head_leaves_a_run_that_recovers_and_resumes(tmp_path: Path, artifact_dir: Path, files: dict,
                                                              no_leaked_roles: None) -> None:
    """SIGKILL of the head (the ``replay`` process: the source, which started every role) after the
    10th decided batch: no role outlives it by 10 s, the journal holds what was decided, ``recover``
    writes readable files from it and ``--resume`` ends with every event decided once and the
    accepted set of an uninterrupted run."""
    run, events, log = tmp_path / "run", 16_000, tmp_path / "head.log"
    with log.open("w") as err:
        head = subprocess.Popen([*REPLAY, "--model", str(artifact_dir), "--input", str(files["sm"]), "--events",
                                 str(events), "--rate", "4kHz", "--out", str(run), "--reference-backend", "numpy",
                                 "--quiet"], stdout=subprocess.DEVNULL, stderr=err)
    try:
        deadline = time.monotonic() + 120
        while decided_batches(run) < 10:
            assert head.poll() is None and time.monotonic() < deadline, log.read_text()
            time.sleep(0.05)
        assert _role_processes(run)  # titled "replay worker-0 (run DIR)" and so on
        os.kill(head.pid, signal.SIGKILL)
        head.wait(60)
    finally:
        if head.poll() is None:
            head.kill()
    deadline = time.monotonic() + 10
    while _role_processes(run) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not _role_processes(run), "role processes outlived the head by 10 s"
    assert decided_batches(run) >= 10

    recovered = subprocess.run([*REPLAY, "recover", str(run)], capture_output=True, text=True, check=False)
    assert recovered.returncode == 0, recovered.stderr
    summary = RunSummary.load(run / "summary.json")
    assert summary.recovered and summary.accounting_ok is None
    assert 0 < summary.events_decided < events
    kept = _accepted_bx(run)  # readable, and every accepted event decided so far is in it
    assert set(kept) <= set(expected_accepts(run / "model", files["sm"], events)) and len(np.unique(kept)) == len(kept)

    resumed = subprocess.run([*REPLAY, "--resume", str(run), "--quiet"], capture_output=True, text=True,
                             check=False, timeout=300)
    assert resumed.returncode == 0, resumed.stderr
    summary = RunSummary.load(run / "summary.json")
    assert summary.events_in == events and summary.accounting_ok
    assert summary.events_decided + summary.events_quarantined == events
    assert summary.source["resumed_events"] >= 10 * 40  # 40 events a batch at 4 kHz
    bx = _accepted_bx(run)
    assert len(np.unique(bx)) == len(bx)  # no event decided twice
    np.testing.assert_array_equal(bx, expected_accepts(run / "model", files["sm"], events))


def test_resume_needs_a_recorded_run(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from replay.cli import main

    assert main(["--resume", str(tmp_path)]) == 2
    assert "no run.json; not a replay run folder" in capsys.readouterr().err
    assert main(["--resume", str(tmp_path), "--events", "10"]) == 2
    assert "give it alone" in capsys.readouterr().err


def slow_reference_main(*args: object) -> None:
    """The reference role, a third of a second per batch: far slower than the trigger path."""
    import replay.reference

    score = replay.reference._score

    def slowly(*a: object) -> object:
        time.sleep(0.3)
        return score(*a)

    replay.reference._score = slowly
    replay.reference.reference_main(*args)


class _SlowReference(_Roles):
    def start(self, name: str, target: object, *args: object) -> None:
        super().start(name, slow_reference_main if name == "reference" else target, *args)


@pytest.mark.slow
def test_a_slow_reference_never_delays_a_decision(tmp_path: Path, artifact_dir: Path, files: dict,
                                                  no_leaked_roles: None) -> None:
    """Paced at 20 kHz (100 batches a second, 100 ms deadline) with a reference that scores three
    batches a second: every event is decided in time, the reference compares what it can."""
    run, events = tmp_path / "run", 30_000
    config = ReplayConfig(rate=parse_replay_rate("20kHz"), heartbeat_s=0.1)
    summary = run_replay(ReplayRun((files["sm"],), artifact_dir, run, config, events=events,
                                   reference_backend="numpy"), progress=None, roles=_SlowReference(run))
    assert summary.events_in == events and summary.accounting_ok
    assert summary.deadline_misses == 0
    assert 0 < summary.reference_events < events / 2 and summary.reference_skipped > events / 2
    np.testing.assert_array_equal(_accepted_bx(run), expected_accepts(run / "model", files["sm"], events))


@pytest.mark.slow
@pytest.mark.parametrize("order", [("worker", "collector", "source"), ("source", "worker", "collector"),
                                   ("collector", "source", "worker")])
def test_roles_start_in_any_order(tmp_path: Path, files: dict, artifact_dir: Path, order: tuple[str, ...]) -> None:
    """Each role started 3 s after the one before (longer than a worker's liveness, 0.5 s, and than
    the 2 s after which workers used to give up): the run completes."""
    import zmq

    from replay.bundle import write_bundle
    from replay.collector import run_collector
    from replay.config import Endpoints
    from replay.source import run_source
    from replay.stream import EventStream
    from replay.worker import run_worker

    bundle = tmp_path / "bundle"
    manifest = write_bundle(artifact_dir, bundle)
    ends, config = Endpoints.ipc(tmp_path), ReplayConfig(batch_size=100, heartbeat_s=0.1, liveness=5)
    said: list[str] = []
    results: dict[str, object] = {}
    stream = EventStream([files["sm"]], 100, 1000)
    with zmq.Context() as ctx:
        roles = {
            "worker": lambda: results.update(worker=run_worker(ends.tasks, ends.results, bundle, config, ctx,
                                                                say=said.append)),
            "collector": lambda: results.update(collector=run_collector(
                ends.results, ends.control, tmp_path / "run", manifest.threshold, None, config, ctx)),
            "source": lambda: results.update(source=run_source(ends, stream, config, reference=False,
                                                               progress=None, context=ctx)),
        }
        threads = []
        for role in order:
            threads.append(threading.Thread(target=roles[role]))
            threads[-1].start()
            time.sleep(3.0)
        for thread in threads:
            thread.join(60)
    stream.close()
    assert not any(t.is_alive() for t in threads)
    assert results["source"].events_in == 1000 and results["collector"]["events_decided"] == 1000
    assert results["worker"] == 10
    assert any("no word from the source" in m for m in said) == (order.index("worker") < order.index("source"))


def test_an_oversized_frame_is_dropped_by_zeromq_before_it_is_buffered(tmp_path: Path) -> None:
    """MAXMSGSIZE from the config on the collector's socket: a 4 MB frame (the limit is about
    0.7 MB here) never reaches the collector, a small bad one does and is counted."""
    import zmq

    from replay.collector import run_collector
    from replay.config import Endpoints
    from replay.wire import END, encode

    ends, config = Endpoints.ipc(tmp_path), ReplayConfig(batch_size=100, max_events_per_frame=1024)
    assert config.max_message_bytes < 4 << 20
    counts: dict[str, object] = {}
    with zmq.Context() as ctx, ctx.socket(zmq.PULL) as acks:
        acks.bind(ends.control)
        collector = threading.Thread(target=lambda: counts.update(run_collector(
            ends.results, ends.control, tmp_path / "run", 1.0, None, config, ctx)))
        collector.start()
        assert acks.poll(30_000)  # the collector's READY: it is bound
        with ctx.socket(zmq.PUSH) as big, ctx.socket(zmq.PUSH) as small:
            big.linger = small.linger = 1000
            big.connect(ends.results)
            big.send_multipart([b"X", bytes(4 << 20)])
            time.sleep(0.5)
            small.connect(ends.results)
            small.send_multipart([b"X", b"junk"])
            time.sleep(0.5)
            small.send_multipart(encode(END, {"events_in": 0, "batches": 0, "reference_batches": 0}))
            collector.join(30)
    assert not collector.is_alive()
    assert counts["rejected_frames"] == {"bad_header": 1}  # the small one (without the limit the big one arrives, whole)
