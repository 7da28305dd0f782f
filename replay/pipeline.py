"""A whole replay on one machine: start the roles as processes, run the source, write the summary.

The model is read once here (``write_bundle``); the collector, K workers and the
reference path start as separate processes (spawned, so no TensorFlow state is
inherited) and meet on ipc sockets (or tcp on 127.0.0.1). The source runs in this
process and prints live progress. At the end the run summary combines the source's
and the collector's counts and checks the accounting invariant
``events_in == events_decided + events_quarantined``.

The run folder records the run (``run.json``) and the collector journals every decision
before acknowledging it, so a run whose processes died can be continued (``resume=True``:
the batches already decided are counted, not sent again) or its files rebuilt from the
journal (:func:`recover_run`).
"""

from __future__ import annotations

import json
import multiprocessing
import os
import shutil
import socket
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path
from typing import Any, TextIO

import h5py
import numpy as np

from replay.backends import reference_backend, resolve_backend
from replay.bundle import apply_working_point, read_bundle, write_bundle
from replay.collector import collector_main
from replay.config import Endpoints, ReplayConfig, WorkingPoint, parse_replay_rate
from replay.heldout import held_out_summary
from replay.journal import JOURNAL, SeqSet
from replay.outputs import journal_state, write_outputs
from replay.process import role_entry
from replay.reference import reference_main
from replay.security import run_keys
from replay.source import Interrupt, RoleError, SourceStats, run_source
from replay.stream import EventStream
from replay.worker import worker_main
from trigger.contracts import ReplayManifest, RunSummary
from trigger.errors import UsageError
from trigger.rates import BX_RATE_HZ
from trigger.schema import DATASET, REGIONS_DATASET

__all__ = ("RUN_FILE", "SUMMARY", "ReplayRun", "load_run", "recover_run", "run_replay", "summarize")

RUN_FILE = "run.json"  # the run's settings, for --resume and recover
SUMMARY = "summary.json"  # trigger.contracts.RunSummary


@dataclass(frozen=True)
class ReplayRun:
    """What to replay and how."""

    inputs: Sequence[Path]
    model: Path | None  # None: a source role, whose workers load a bundle it never sees
    out: Path
    config: ReplayConfig
    events: int | None = None
    loop: bool = False
    workers: int = 2
    reference_backend: str = "auto"
    transport: str = "ipc"
    curve: bool = False  # CurveZMQ with fresh per-role keys (tcp only)
    working_point: WorkingPoint | None = None  # None: the artifact's calibrated threshold
    reference: Path | None = None  # another artifact's float model as the reference (None: the float twin)

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready, paths absolute so that a resume from another directory finds them."""
        def path(p: Path | None) -> str | None:
            return None if p is None else str(Path(p).resolve())

        config = {f.name: getattr(self.config, f.name) for f in fields(ReplayConfig) if f.name != "rate"}
        point = None if self.working_point is None else {**asdict(self.working_point),
                                                         "calibration": path(self.working_point.calibration)}
        return {"inputs": [path(p) for p in self.inputs], "model": path(self.model), "out": path(self.out),
                "config": {"rate": self.config.rate.text, **config}, "events": self.events, "loop": self.loop,
                "workers": self.workers, "reference_backend": self.reference_backend, "transport": self.transport,
                "curve": self.curve, "working_point": point, "reference": path(self.reference)}

    @classmethod
    def from_dict(cls, d: dict[str, Any], out: Path) -> ReplayRun:
        config = ReplayConfig(**{**d["config"], "rate": parse_replay_rate(d["config"]["rate"])})
        point = d["working_point"]
        if point is not None:
            point = WorkingPoint(**{**point, "calibration": None if point["calibration"] is None
                                    else Path(point["calibration"])})
        return cls(tuple(Path(p) for p in d["inputs"]), None if d["model"] is None else Path(d["model"]), out, config,
                   d["events"], d["loop"], d["workers"], d["reference_backend"], d["transport"],
                   bool(d.get("curve")), point, None if d.get("reference") is None else Path(d["reference"]))


def load_run(out: str | Path) -> ReplayRun:
    """The settings of the run in folder ``out`` (a clear error when it holds none)."""
    out = Path(out)
    try:
        return ReplayRun.from_dict(json.loads((out / RUN_FILE).read_text()), out)
    except FileNotFoundError:
        msg = f"{out}: no {RUN_FILE}; not a replay run folder (or made before runs were recorded)"
        raise UsageError(msg) from None
    except (ValueError, KeyError, TypeError) as err:
        msg = f"{out / RUN_FILE}: unreadable run record ({err})"
        raise UsageError(msg) from None


def _default_calibration() -> Path:
    from trigger.sample import bundled_sample

    return bundled_sample().background


def free_tcp_base(count: int = 4) -> int:
    """A base port with ``count`` free consecutive ports on 127.0.0.1."""
    for _ in range(50):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            base: int = s.getsockname()[1]
        if base + count < 65536 and all(_port_free(base + i) for i in range(count)):
            return base
    msg = "no free tcp ports on 127.0.0.1"
    raise RoleError(msg)


def _port_free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


class _Roles:
    """The local role processes; ``problem`` names one that died, ``restart`` starts it again."""

    max_restarts = 3  # per role and run
    first_backoff_s = 0.25  # doubled at each restart of the same role

    def __init__(self, out: Path | None = None) -> None:
        self.ctx = multiprocessing.get_context("spawn")
        self.procs: dict[str, multiprocessing.process.BaseProcess] = {}
        self.specs: dict[str, tuple[Any, tuple[Any, ...]]] = {}
        self.restarts: dict[str, int] = {}
        self.out = out

    def start(self, name: str, target: Any, *args: Any) -> None:
        """A role process, killed by the kernel if this process dies, titled for ``ps``."""
        title = f"replay {name}" + (f" (run {self.out})" if self.out is not None else "")
        proc = self.ctx.Process(target=role_entry, args=(os.getpid(), title, target, *args), name=f"replay-{name}",
                                daemon=True)
        proc.start()
        self.procs[name], self.specs[name] = proc, (target, args)

    def problem(self, role: str = "") -> str | None:
        """A role process (whose name starts with ``role``; any if empty) that exited: during a run
        (before STOP) that is a problem whatever its status."""
        for name, proc in self.procs.items():
            if name.startswith(role) and proc.exitcode is not None:
                return f"the {name} process exited with status {proc.exitcode}"
        return None

    def restart(self, role: str) -> bool:
        """Start the dead role ``role`` again after a back-off; False once it was restarted
        ``max_restarts`` times (or it is not a role of this run)."""
        count = self.restarts.get(role, 0)
        if role not in self.specs or count >= self.max_restarts:
            return False
        time.sleep(self.first_backoff_s * 2**count)
        self.restarts[role] = count + 1
        self.procs[role].join(0)
        target, args = self.specs[role]
        self.start(role, target, *args)
        return True

    def stop(self, timeout: float = 5.0) -> None:
        for proc in self.procs.values():
            proc.join(timeout)
        for proc in self.procs.values():
            if proc.is_alive():
                proc.terminate()
                proc.join(2)
            if proc.is_alive():
                proc.kill()
                proc.join()


def run_replay(run: ReplayRun, progress: TextIO | None = sys.stderr, roles: _Roles | None = None,
               resume: bool = False) -> RunSummary:
    """Replay ``run.inputs`` through the pipeline; returns (and writes) the run summary. ``resume``
    continues the run recorded in ``run.out``: the batches its journal holds are not sent again."""
    if run.workers < 1:
        msg = f"--workers must be at least 1, got {run.workers}"
        raise UsageError(msg)
    if run.curve and run.transport != "tcp":
        msg = "CurveZMQ (--curve) protects tcp; add --transport tcp"
        raise UsageError(msg)
    if run.model is None:
        msg = "a replay on this machine needs a model (--model); only a remote source runs without one"
        raise UsageError(msg)
    backend = resolve_backend(run.reference_backend)  # an unknown name fails before anything starts
    with Interrupt() as interrupt:
        stream = EventStream(run.inputs, run.config.effective_batch_size, run.events, run.loop,
                             regions=_model_reads(run, resume) == REGIONS_DATASET)
        for path in stream.without_regions:
            (progress or sys.stderr).write(f"replay: warning: {path} holds no CaloRegions: its events go to quarantine "
                           "(no_regions)\n")
        try:
            if resume:
                bundle, done = read_bundle(run.out / "model"), journal_state(run.out)[1]
            else:
                run.out.mkdir(parents=True, exist_ok=True)
                (run.out / RUN_FILE).write_text(json.dumps(run.as_dict(), indent=1) + "\n")
                write_bundle(run.model, run.out / "model", run.reference)
                bundle, done = apply_working_point(run.out / "model", run.working_point, _default_calibration), SeqSet()
            if not run.config.rate.simulated:
                stream.preload()
            interrupt.check()
            backend = reference_backend(run.reference_backend, bundle)
            use_reference = backend != "none" and bundle.reference_threshold is not None
            stats = _run_roles(run, stream, bundle, backend if use_reference else "none", roles or _Roles(run.out),
                               progress, interrupt, done)
        finally:
            stream.close()
    summary = summarize(run, stats, bundle, backend if use_reference else "none")
    summary.save(run.out / SUMMARY)
    return summary


def _model_reads(run: ReplayRun, resume: bool) -> str:
    """What the run's model scores, from the bundle of the run resumed, else the model's manifest."""
    from models.artifact import read_manifest

    if resume:
        return read_bundle(run.out / "model").reads
    assert run.model is not None
    return str(read_manifest(Path(run.model)).get("reads", DATASET))


def _run_roles(run: ReplayRun, stream: EventStream, bundle: ReplayManifest, backend: str, roles: _Roles,
               progress: TextIO | None, interrupt: Interrupt, done: SeqSet) -> SourceStats:
    """Start collector, workers and reference as processes, run the source here, stop them all."""
    config, model_dir = run.config, str(run.out / "model")
    tmp = Path(tempfile.mkdtemp(prefix="replay-"))
    endpoints = Endpoints.ipc(tmp) if run.transport == "ipc" else Endpoints.tcp(base_port=free_tcp_base())
    use_reference = backend != "none"
    keys = run_keys(run.workers) if run.curve else {}  # none: plain tcp or ipc
    try:
        roles.start("collector", collector_main, endpoints.results, endpoints.control, str(run.out),
                    bundle.threshold, bundle.reference_threshold if use_reference else None, config, keys.get("collector"))
        for k in range(run.workers):
            roles.start(f"worker-{k}", worker_main, endpoints.tasks, endpoints.results, model_dir, config,
                        keys.get(f"worker-{k}"))
        if use_reference:
            roles.start("reference", reference_main, endpoints.reference, endpoints.control, endpoints.results,
                        model_dir, backend, config, keys.get("reference"))
        if progress is not None:
            resumed = f"; resuming: {len(done):,} batches already decided" if len(done) else ""
            progress.write(f"replay: {sum(f.n_events for f in stream.files):,} events in {len(run.inputs)} file(s), "
                           f"{config.describe()}, {run.workers} worker(s), reference: {backend}; "
                           f"output in {run.out}{resumed}\n")
        return run_source(endpoints, stream, config, use_reference, roles.problem, progress, curve=keys.get("source"),
                          interrupt=interrupt, done=done, restart=roles.restart, workers=run.workers)
    finally:
        roles.stop()
        shutil.rmtree(tmp, ignore_errors=True)


def _held_out(run: ReplayRun, bundle: ReplayManifest | None, events_in: int) -> dict[str, Any] | None:
    """How many replayed events the model trained on, and the accept rate on the rest."""
    accepted = run.out / "accepted.h5"
    if bundle is None or not accepted.is_file():
        return None  # a remote source: the collector's folder holds the decisions
    try:
        with h5py.File(accepted, "r") as f:
            bx = f["bx"][:] if "bx" in f else np.zeros(0, np.int64)
    except OSError:  # a collector that did not close it
        return None
    return held_out_summary(run.inputs, bundle.training_data, events_in, bx)


#: ``summarize``'s backend for a source role: the collector and reference run elsewhere
REMOTE = "remote"


def _percentiles(path: Path) -> dict[str, float | None]:
    """p50, p90, p99 and max of the milliseconds saved in ``path`` (NaN: not known), None if none."""
    values = np.load(path) if path.exists() else np.zeros(0)
    values = values[~np.isnan(values)]
    found = {f"p{p}": float(np.percentile(values, p)) if len(values) else None for p in (50, 90, 99)}
    return {**found, "max": float(values.max()) if len(values) else None}


def summarize(run: ReplayRun, stats: SourceStats, bundle: ReplayManifest | None, backend: str) -> RunSummary:
    """The run summary: counts, rates, the accounting check and latency percentiles (for a
    ``REMOTE`` source, deadlines and latencies on its own clock, from the acknowledgements)."""
    c = stats.collector
    decided, quarantined = c.get("events_decided", 0), c.get("events_quarantined", 0)
    rate = (decided + quarantined) / stats.wall_seconds if stats.wall_seconds > 0 else 0.0
    remote = backend == REMOTE  # the collector's clock is another host's: only the source's own counts
    misses = stats.round_trip_deadline_misses if remote else c.get("deadline_misses", 0)
    remote_bundle = "the workers' bundle (remote roles)"
    return RunSummary(
        held_out=_held_out(run, bundle, stats.events_in),
        rate=run.config.rate.text,
        mode=run.config.rate.mode,
        target_rate_hz=run.config.rate.hz,
        inputs=[str(p) for p in run.inputs],
        model=str(run.model) if run.model is not None else remote_bundle,
        threshold=bundle.threshold if bundle else c.get("threshold"),
        working_point=bundle.working_point if bundle else {"source": remote_bundle},
        reference_threshold=bundle.reference_threshold if bundle else c.get("reference_threshold"),
        workers=run.workers,
        transport=run.transport,
        batch_size=run.config.effective_batch_size,
        events_in=stats.events_in,
        events_decided=decided,
        events_quarantined=quarantined,
        events_accepted=c.get("events_accepted", 0),
        menu=run.config.menu,
        accepted_by_no_seed=c.get("accepted_by_no_seed"),
        accounting_ok=bool(c) and stats.events_in == decided + quarantined,
        accept_rate_hz_at_bx=c.get("events_accepted", 0) / decided * BX_RATE_HZ if decided else 0.0,
        events_per_second=rate,
        real_time_factor=rate / BX_RATE_HZ,
        wall_seconds=stats.wall_seconds,
        reference_backend=backend,
        reference_events=c.get("reference_events", 0),
        reference_skipped=stats.reference_skipped + c.get("reference_missing", 0),
        reference_prescale=run.config.reference_prescale,
        reference_model=bundle.reference_name if bundle else None,
        reference_twin=bundle.reference_twin if bundle else True,
        reference_disagreements=c.get("reference_disagreements", 0),
        reference_only_accepts=c.get("reference_only_accepts", 0),
        trigger_only_accepts=c.get("trigger_only_accepts", 0),
        reference_missing=c.get("reference_missing", 0),
        reference_max_abs_score_difference=c.get("max_abs_score_difference", 0.0),
        deadline_misses=misses,
        deadline_s=None if run.config.rate.simulated else run.config.deadline_s,
        batch_latency_ms=stats.round_trip_ms if remote else _percentiles(run.out / "batch_latency_ms.npy"),
        # the workers' own clocks: how much of a batch's latency was scoring, the rest waiting and moving
        batch_scoring_ms=None if remote else _percentiles(run.out / "batch_scoring_ms.npy"),
        latency_clock=("the source's: a batch's first send to its decision's acknowledgement (round trip)"
                          if remote else "this host's: a batch's first send to the collector's decision"),
        round_trip_ms=stats.round_trip_ms,
        quarantine_reasons=c.get("quarantine_reasons", {}),
        rejected_frames=c.get("rejected_frames", {}),
        duplicate_batches=c.get("duplicate_batches", 0),
        restarts=stats.restarts,
        source={k: v for k, v in asdict(stats).items() if k != "collector"},
    )


def recover_run(out: str | Path) -> RunSummary:
    """Rebuild the files and the summary of a run that did not finish, from its journal.

    The source's own count of the events it read died with it, so the summary's
    ``accounting_ok`` is None; ``replay --resume`` finishes the run and checks it.
    """
    out = Path(out)
    run = load_run(out)
    if not (out / JOURNAL).exists():
        msg = f"{out}: no {JOURNAL}; the run decided nothing that could be recovered"
        raise UsageError(msg)
    counts = write_outputs(out, run.config.menu).as_dict()
    bundle = read_bundle(out / "model")
    stats = SourceStats(events_in=counts["events_decided"] + counts["events_quarantined"],
                        batches=counts["batches_decided"], collector=counts)
    summary = replace(summarize(replace(run, out=out), stats, bundle, run.reference_backend),
                      accounting_ok=None, recovered=True,
                      note="rebuilt from the journal of a run that did not finish: the events decided before it "
                           "stopped; `replay --resume` continues it")
    summary.save(out / SUMMARY)
    return summary
