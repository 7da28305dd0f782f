"""The roles on their own: the source, workers and collector in threads with stand-ins, the side
path's idle context, then the roles as separate commands and processes (over TCP, from a bundle
with the replay extra only, killed, interrupted by Ctrl-C)."""

from __future__ import annotations

import os
import signal
import sys
import threading
import time
from dataclasses import replace
from pathlib import Path

import h5py
import pytest
import zmq
from conftest import children, synthetic_events
from replay_helpers import FAST, LIMITS, host_keys

from replay.bundle import load_emulated
from replay.config import ReplayConfig
from replay.process import idle_context, thread_ids, zmq_threads
from replay.source import RoleError, run_source
from replay.stream import EventStream
from replay.wire import RESULT, decode_header, encode, encode_task
from replay.worker import handle_task
from trigger.contracts import RunSummary


def test_missing_roles_give_a_clear_error(tmp_path: Path, files: dict) -> None:
    from replay.config import Endpoints

    stream = EventStream([files["sm"]], 100)
    config = ReplayConfig(**{**FAST, "ready_timeout_s": 0.5})
    with pytest.raises(RoleError, match=r"collector.*worker"):
        run_source(Endpoints.ipc(tmp_path), stream, config, reference=False, progress=None)
    stream.close()


def _stand_in_collector(ctx, ends, first_result: threading.Event, final_after_s: float | None) -> None:
    """Acknowledges results; answers END with FINAL after ``final_after_s`` (None: dies at the first result)."""
    import zmq

    from replay.wire import ACK, END, FINAL, READY

    with ctx.socket(zmq.PULL) as pull, ctx.socket(zmq.PUSH) as acks:
        pull.linger = acks.linger = 0  # a FINAL nobody takes must not hold up the context's exit
        pull.bind(ends.results)
        acks.connect(ends.control)
        acks.send_multipart(encode(READY, {"role": "collector"}))
        decided = 0
        while pull.poll(20_000):
            frames = pull.recv_multipart()
            if frames[0] == RESULT:
                first_result.set()
                if final_after_s is None:
                    return
                header = decode_header(frames, {"seq": int, "n": int})
                decided += header["n"]
                acks.send_multipart(encode(ACK, {"seq": header["seq"]}))
            elif frames[0] == END:
                time.sleep(final_after_s)
                acks.send_multipart(encode(FINAL, {"events_decided": decided, "events_quarantined": 0}))
                return


@pytest.mark.parametrize("collector_dies", [False, True])
def test_source_judges_roles_by_what_they_do(tmp_path: Path, files: dict, bundle: Path, collector_dies: bool) -> None:
    """A dead worker does not cut the wait for the collector's slow FINAL short (a CI run lost
    the counts that way); a dead collector ends the run with a clear error instead of a hang."""
    import zmq

    from replay.config import Endpoints
    from replay.worker import run_worker

    ends = Endpoints.ipc(tmp_path)
    config = ReplayConfig(batch_size=100, **FAST)
    first_result = threading.Event()

    def alive(role: str) -> str | None:  # as _Roles.problem: a killed worker-1 once results flow
        if role == "collector" and collector_dies and not collector.is_alive():
            return "the collector process exited with status -9"
        return "the worker-1 process exited with status -9" if first_result.is_set() and not role else None

    stream = EventStream([files["sm"]], 100, 1000)
    with zmq.Context() as ctx:
        collector = threading.Thread(target=_stand_in_collector,
                                     args=(ctx, ends, first_result, None if collector_dies else 0.6))
        worker = threading.Thread(target=run_worker, args=(ends.tasks, ends.results, bundle, config, ctx),
                                  kwargs={"give_up_s": 3.0})  # once the source is gone
        collector.start()
        worker.start()
        try:
            if collector_dies:
                started = time.monotonic()
                with pytest.raises(RoleError, match="collector"):
                    run_source(ends, stream, config, reference=False, alive=alive, progress=None, context=ctx)
                assert time.monotonic() - started < 10
            else:
                stats = run_source(ends, stream, config, reference=False, alive=alive, progress=None, context=ctx)
                assert stats.events_in == 1000 and stats.collector["events_decided"] == 1000
        finally:
            stream.close()
            collector.join(30)
            worker.join(30)  # it stops on STOP, or when the source falls silent
    assert not worker.is_alive() and not collector.is_alive()


def test_the_source_waits_for_every_worker_it_was_told_of(tmp_path: Path, files: dict, bundle: Path) -> None:
    """The run (a paced run's clock) starts once all the workers it expects are READY: one that
    comes up a second late still gets its share; one that never comes is a clear error."""
    import zmq

    from replay.config import Endpoints
    from replay.wire import READY
    from replay.worker import run_worker

    ends = Endpoints.ipc(tmp_path)
    config = ReplayConfig(batch_size=100, **FAST)
    scored: dict[str, int] = {}

    def worker(name: str, delay_s: float) -> threading.Thread:
        def run() -> None:
            time.sleep(delay_s)
            scored[name] = run_worker(ends.tasks, ends.results, bundle, config, ctx, give_up_s=3.0)
        return threading.Thread(target=run)

    stream = EventStream([files["sm"]], 100, 1000)
    with zmq.Context() as ctx:
        threads = [threading.Thread(target=_stand_in_collector, args=(ctx, ends, threading.Event(), 0.0)),
                   worker("early", 0.0), worker("late", 1.0)]
        for thread in threads:
            thread.start()
        try:
            stats = run_source(ends, stream, config, reference=False, progress=None, context=ctx, workers=2)
        finally:
            stream.close()
            for thread in threads:
                thread.join(30)
    assert stats.workers_seen == 2 and stats.collector["events_decided"] == 1000
    assert scored["late"] > 0 and scored["early"] + scored["late"] == 10

    def collector_ready() -> None:  # and gone: the source fails before it sends anything
        with ctx.socket(zmq.PUSH) as acks:
            acks.linger = 1000
            acks.connect(ends.control)
            acks.send_multipart(encode(READY, {"role": "collector"}))

    stream = EventStream([files["sm"]], 100, 1000)
    with zmq.Context() as ctx:
        threads = [threading.Thread(target=collector_ready), worker("one", 0.0), worker("two", 0.0)]
        for thread in threads:
            thread.start()
        try:
            with pytest.raises(RoleError, match=r"no READY from the worker \(2 of 3 ready\) within 2 s"):
                run_source(ends, stream, replace(config, ready_timeout_s=2.0), reference=False, progress=None,
                           context=ctx, workers=3)
        finally:
            stream.close()
            for thread in threads:
                thread.join(30)


def test_running_collector_survives_garbage_on_its_socket(tmp_path: Path, bundle: Path) -> None:
    """Random frames on the results socket are counted as rejected; the run still completes."""
    import random

    import zmq

    from replay.collector import run_collector
    from replay.config import Endpoints
    from replay.wire import END, FINAL

    ends = Endpoints.ipc(tmp_path)
    path = load_emulated(bundle)
    events = synthetic_events(300, seed=12)
    result = handle_task(path, encode_task({"seq": 0, "bx0": 0, "n": 300, "t_sent": 0}, events), LIMITS)
    config = ReplayConfig(**FAST)
    out: dict = {}
    with zmq.Context() as ctx, ctx.socket(zmq.PULL) as acks, ctx.socket(zmq.PUSH) as push:
        acks.bind(ends.control)
        thread = threading.Thread(target=lambda: out.update(run_collector(
            ends.results, ends.control, tmp_path / "run", path.threshold, None, config, ctx)))
        thread.start()
        push.connect(ends.results)
        rng = random.Random(0)
        for _ in range(200):
            push.send_multipart([bytes(rng.getrandbits(8) for _ in range(rng.randint(0, 40)))
                                 for _ in range(rng.randint(1, 4))])
        push.send_multipart([bytes(x) for x in result])
        push.send_multipart(encode(END, {"events_in": 300, "batches": 1, "reference_batches": 0}))
        final = None
        while final is None and acks.poll(30_000):
            frames = acks.recv_multipart()
            if frames[0] == FINAL:
                final = decode_header(frames, {})
        thread.join(30)
    assert final is not None and not thread.is_alive()
    assert final["events_decided"] == 300
    assert sum(final["rejected_frames"].values()) >= 150  # most random frames are not even a known kind


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="SCHED_IDLE is Linux's")
def test_the_side_paths_bytes_move_on_idle_cpu_time_only(tmp_path: Path) -> None:
    """The context the source feeds the reference through: its threads (the I/O thread copies each
    message into the kernel) are SCHED_IDLE, the caller's thread keeps its class, messages pass."""
    before = thread_ids()
    with idle_context() as context, context.socket(zmq.PUSH) as push, context.socket(zmq.PULL) as pull:
        threads = zmq_threads(thread_ids() - before)  # not a thread another test left ending meanwhile
        assert len(threads) >= 2  # its I/O thread and its reaper
        assert all(os.sched_getscheduler(t) == os.SCHED_IDLE for t in threads)
        assert os.sched_getscheduler(0) != os.SCHED_IDLE
        push.linger = pull.linger = 0
        pull.bind(f"ipc://{tmp_path}/side.sock")
        push.connect(f"ipc://{tmp_path}/side.sock")
        push.send_multipart([b"batch", bytes(1 << 20)], copy=False)
        assert pull.poll(10_000) and [len(f) for f in pull.recv_multipart()] == [5, 1 << 20]


def _run_roles_over_tcp(python: str, model: list[str], data: Path, out: Path, env: dict | None = None,
                        curve: bool = False) -> None:
    """``replay collector|worker|source`` as three processes of ``python``, as on three hosts
    (with ``curve``: each with its own key folder, as `replay keys` makes them)."""
    import subprocess

    from replay.pipeline import free_tcp_base

    keys = host_keys(out / "keys", ("source", "collector", "worker")) if curve else {}
    def role(name: str) -> list[str]:
        return [*replay, name, *(["--curve", str(keys[name])] if curve else [])]

    base = free_tcp_base(8)
    source, collector = f"127.0.0.1:{base}", f"127.0.0.1:{base + 4}"
    replay = [python, "-c", "import sys; from replay.cli import main; sys.exit(main())"]
    out.mkdir(parents=True, exist_ok=True)  # the roles run there: the package comes from python's install
    procs = [
        subprocess.Popen([*role("collector"), *model, "--bind", collector, "--source", source, "--no-reference",
                          "--out", str(out / "collector")], env=env, cwd=out),
        subprocess.Popen([*role("worker"), *model, "--source", source, "--collector", collector], env=env,
                         cwd=out),
    ]
    try:
        head = subprocess.run([*role("source"), "--input", str(data), "--events", "3000", "--batch-size",
                               "256", "--bind", source, "--collector", collector, "--no-reference",
                               "--out", str(out / "head")], check=False, capture_output=True, text=True,
                              timeout=300, env=env, cwd=out)
        assert head.returncode == 0, head.stderr
        summary = RunSummary.load(out / "head" / "summary.json")
        assert summary.events_in == 3000 and summary.accounting_ok
        assert summary.batch_latency_ms["p50"] > 0 and "source's" in summary.latency_clock  # its own clock
        assert procs[0].wait(timeout=60) == 0
        with h5py.File(out / "collector" / "accepted.h5") as f:
            assert len(f["bx"]) == summary.events_accepted
    finally:
        for p in procs:
            p.kill()
            p.wait()


@pytest.mark.slow
def test_roles_run_as_separate_commands_over_tcp(tmp_path: Path, artifact_dir: Path, files: dict) -> None:
    import sys

    _run_roles_over_tcp(sys.executable, ["--model", str(artifact_dir)], files["sm"], tmp_path)


@pytest.mark.slow
def test_roles_run_from_a_bundle_with_the_replay_extra_only(tmp_path: Path, bundle: Path, files: dict) -> None:
    """A worker host with ``pip install trigger-anomaly[replay]``: no TensorFlow, hls4ml or QKeras there,
    and every role runs from a bundle written by ``replay bundle``, encrypted with its own CurveZMQ keys."""
    import shutil
    import subprocess
    import sys

    root = Path(__file__).resolve().parents[1]
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    python = str(venv / "bin" / "python")
    source = tmp_path / "src"  # setuptools builds in the source tree: a copy keeps build/ out of the checkout
    shutil.copytree(root, source, ignore=shutil.ignore_patterns(".*", "runs", "build", "*.egg-info", "__pycache__",
                                                                "data", "tests"))
    install = subprocess.run([python, "-m", "pip", "install", "--quiet", "-c", str(root / "constraints.txt"),
                              f"{source}[replay]"], capture_output=True, text=True, check=False, timeout=600)
    assert install.returncode == 0, install.stderr[-2000:]
    heavy = ["tensorflow", "hls4ml", "qkeras", "keras", "sklearn", "pythia8mc"]
    probe = f"import importlib.util as u; print(*[m for m in {heavy!r} if u.find_spec(m) is None])"
    missing = subprocess.run([python, "-c", probe], capture_output=True, text=True, check=True, cwd=tmp_path)
    assert missing.stdout.split() == heavy
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    _run_roles_over_tcp(python, ["--bundle", str(bundle)], files["sm"], tmp_path / "run", env=env, curve=True)


def _looping_replay(out: Path, artifact_dir: Path, data: Path, *extra: str, stdout_pipe: bool = True) -> tuple:
    """``replay --loop`` in its own session, returned once decisions flow (the live line on stderr
    says so, however long start-up takes): the process, the stderr read so far, its reader thread."""
    import subprocess
    import sys

    cmd = [sys.executable, "-c", "import sys; from replay.cli import main; sys.exit(main())", "--loop",
           "--input", str(data), "--model", str(artifact_dir), "--batch-size", "256", "--out", str(out), *extra]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE if stdout_pipe else subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True, start_new_session=True)
    seen: list[str] = []
    reader = threading.Thread(target=lambda: seen.extend(iter(lambda: proc.stderr.read(64), "")), daemon=True)
    reader.start()
    deadline = time.monotonic() + 180
    while " decided " not in "".join(seen):
        assert time.monotonic() < deadline and proc.poll() is None, "".join(seen)
        time.sleep(0.1)
    return proc, seen, reader


@pytest.mark.slow
def test_no_role_outlives_a_killed_replay_and_ps_names_them(tmp_path: Path, artifact_dir: Path, files: dict) -> None:
    """SIGKILL of the process that started the roles: the kernel kills every role (PR_SET_PDEATHSIG)."""
    out = tmp_path / "run"
    proc, _, reader = _looping_replay(out, artifact_dir, files["sm"], stdout_pipe=False)
    roles = {pid: line for pid, line in children(proc.pid).items() if line.startswith("replay ")}
    names = sorted(line.split(" (run")[0] for line in roles.values())
    assert names == ["replay collector", "replay reference", "replay worker-0", "replay worker-1"]
    assert all(f"(run {out})" in line for line in roles.values())
    proc.kill()
    proc.wait(timeout=30)
    try:
        deadline = time.monotonic() + 10
        while any("(run " in _cmdline(pid) for pid in roles):
            assert time.monotonic() < deadline, f"still alive 10 s after the kill: {roles}"
            time.sleep(0.1)
    finally:
        for pid in roles:  # survivors of a failed check would hold the test's pipes open
            if "(run " in _cmdline(pid):
                os.kill(pid, signal.SIGKILL)
        reader.join(timeout=10)
        proc.stderr.close()


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


@pytest.mark.slow
def test_ctrl_c_drains_and_accounts_for_everything(tmp_path: Path, artifact_dir: Path, files: dict) -> None:
    out = tmp_path / "run"
    proc, seen, reader = _looping_replay(out, artifact_dir, files["sm"], "--reference-backend", "none")
    time.sleep(1)  # a few more batches
    os.killpg(proc.pid, signal.SIGINT)  # what a terminal's Ctrl-C does
    stdout = proc.stdout.read()
    proc.wait(timeout=120)
    reader.join(timeout=10)
    proc.stdout.close()
    proc.stderr.close()
    stderr = "".join(seen)
    assert proc.returncode == 0, stderr
    summary = RunSummary.load(out / "summary.json")
    assert summary.source["interrupted"] and summary.accounting_ok
    assert summary.events_in > 0 and summary.events_in == summary.events_decided
    assert "accounting OK" in stdout
