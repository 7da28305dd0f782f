"""Shared by the replay tests: fast timeouts, a whole in-process run, key folders as on separate hosts."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from replay.config import ReplayConfig
from replay.pipeline import ReplayRun, run_replay
from replay.worker import Limits
from trigger.contracts import RunSummary

#: a worker's limits for the handler tests: 1,024 events of float64 at most
LIMITS = Limits(max_events=1024, max_bytes=1024 * 19 * 4 * 8)
#: short timeouts so the reliability tests take seconds
FAST = {"heartbeat_s": 0.1, "liveness": 5, "ack_timeout_s": 2.0, "ready_timeout_s": 60.0, "progress_s": 0.2}


def whole_run(tmp: Path, artifact_dir: Path, data: Path, name: str, **kw) -> RunSummary:
    """``run_replay`` of ``data`` into ``tmp / name`` with fast timeouts, two workers and the numpy
    reference unless ``kw`` says otherwise; returns the run's summary."""
    cfg = kw.pop("config", ReplayConfig(batch_size=512, **FAST))
    roles, progress = kw.pop("roles", None), kw.pop("progress", None)
    run = ReplayRun((data,), artifact_dir, tmp / name, cfg, workers=kw.pop("workers", 2),
                    reference_backend=kw.pop("reference_backend", "numpy"), **kw)
    return run_replay(run, progress=progress, roles=roles)


def host_keys(root: Path, roles: Sequence[str]) -> dict[str, Path]:
    """One key folder per role as on separate hosts, the public keys copied as `replay keys` says."""
    from replay.security import create_keys, share_public_keys

    folders = {role: root / f"{role}-host" for role in roles}
    for role in roles:
        create_keys(folders[role], role)
    share_public_keys(folders)
    return folders
