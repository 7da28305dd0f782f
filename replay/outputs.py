"""From the collector's journal to the run's files and counts.

The journal (:mod:`replay.journal`) is the record of a run; everything else in the run folder
is derived from it: ``accepted.h5`` (accepted events in the input layout, with BX id, time,
score and reference score), ``quarantine.h5`` (events no path could score, with the reason),
``batch_latency_ms.npy`` (and ``batch_scoring_ms.npy``: the part of it the worker spent scoring)
and the collector's counts. The collector derives them when it
closes; ``replay recover`` does it for a run whose collector or head died.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from replay.journal import JOURNAL, SeqSet, read_records, unpack_array
from replay.wire import Reject
from trigger.events import EventWriter
from trigger.menu import load_menu
from trigger.rates import BX_RATE_HZ

__all__ = (
    "DECISION",
    "DUPLICATE",
    "FRAME_REJECTED",
    "REASONS",
    "REFERENCE_JOIN",
    "REJECTED_BATCH",
    "CollectorCounts",
    "journal_state",
    "write_outputs",
)

BX_NS = 1e9 / BX_RATE_HZ  # 25 ns between bunch crossings
REASONS = tuple(Reject)

# journal record kinds
DECISION = "d"  # a batch decided: its accepted and quarantined events, latency, deadline misses
REJECTED_BATCH = "r"  # a batch whose frame no worker could use: all its events quarantined
REFERENCE_JOIN = "f"  # a decided batch compared with the reference path's scores (or never)
FRAME_REJECTED = "x"  # a malformed message, counted by reason
DUPLICATE = "u"  # a batch decided a second time (a re-sent batch), dropped

_WRITE_EVERY = 4096  # accepted events held before they are appended to accepted.h5


@dataclass
class CollectorCounts:
    """What the collector has seen; ``as_dict`` goes into the run summary."""

    batches_decided: int = 0
    events_decided: int = 0
    events_quarantined: int = 0
    events_accepted: int = 0
    duplicate_batches: int = 0
    reference_events: int = 0
    reference_disagreements: int = 0
    reference_only_accepts: int = 0  # events the reference accepts and the trigger does not
    trigger_only_accepts: int = 0  # and the other way round
    reference_missing: int = 0
    deadline_misses: int = 0
    quarantine_reasons: Counter[str] = field(default_factory=Counter)
    rejected_frames: Counter[str] = field(default_factory=Counter)
    max_abs_score_difference: float = 0.0
    accepted_by_no_seed: int | None = None  # accepted events no seed of the run's menu takes (None: no menu)

    def add(self, record: dict[str, Any]) -> None:
        """Count one journal record."""
        kind = record["k"]
        if kind == DECISION:
            quarantined, n = len(unpack_array(record["quarantined"])), record["n"]
            self.batches_decided += 1
            self.events_quarantined += quarantined
            self.events_decided += n - quarantined
            self.events_accepted += len(unpack_array(record["accepted"]))
            if quarantined:
                self.quarantine_reasons[record.get("qreason", Reject.NON_FINITE.value)] += quarantined
            self.deadline_misses += record["late"]
        elif kind == REJECTED_BATCH:
            self.batches_decided += 1
            self.events_quarantined += record["n"]
            self.quarantine_reasons[record["reason"]] += record["n"]
        elif kind == REFERENCE_JOIN:
            self.reference_events += record["compared"]
            self.reference_disagreements += record["disagreements"]
            self.reference_only_accepts += record.get("only_reference", 0)
            self.trigger_only_accepts += record.get("only_trigger", 0)
            self.reference_missing += record["missing"]
            self.max_abs_score_difference = max(self.max_abs_score_difference, record["max_diff"])
        elif kind == FRAME_REJECTED:
            self.rejected_frames[record["reason"]] += 1
        elif kind == DUPLICATE:
            self.duplicate_batches += 1

    def as_dict(self) -> dict[str, Any]:
        d = dict(self.__dict__)
        d["quarantine_reasons"] = dict(self.quarantine_reasons)
        d["rejected_frames"] = dict(self.rejected_frames)
        return d


def journal_state(out_dir: str | Path) -> tuple[CollectorCounts, SeqSet]:
    """The counts and the decided batch numbers recorded in a run folder's journal."""
    counts, decided = CollectorCounts(), SeqSet()
    for record in read_records(Path(out_dir) / JOURNAL):
        counts.add(record)
        if record["k"] in (DECISION, REJECTED_BATCH):
            decided.add(record["seq"])
    return counts, decided


class _Appender:
    """Columns gathered in memory and appended to an :class:`EventWriter` in blocks."""

    def __init__(self, writer: EventWriter, names: tuple[str, ...]) -> None:
        self.writer, self.names = writer, names
        self.parts: list[tuple[NDArray[Any], ...]] = []
        self.held = 0

    def add(self, *columns: NDArray[Any]) -> None:
        if len(columns[0]):
            self.parts.append(columns)
            self.held += len(columns[0])
        if self.held >= _WRITE_EVERY:
            self.flush()

    def flush(self) -> None:
        if self.parts:
            events, *extras = (np.concatenate(c) for c in zip(*self.parts, strict=True))
            self.writer.append(events, **dict(zip(self.names, extras, strict=True)))
            self.parts.clear()
            self.held = 0


def _scan(records: Iterable[dict[str, Any]]) -> tuple[dict[int, NDArray[np.float64]], type]:
    """Per batch, the reference scores of the events the emulated path accepted; and the dtype
    the events are written in: float64 where any input event came as float64 (the public files),
    so that every written event is its input row bit for bit, else float32."""
    reference, wide = {}, False
    for r in records:
        if r["k"] == REFERENCE_JOIN and r["compared"]:
            reference[r["seq"]] = unpack_array(r["accepted_reference"])
        elif r["k"] == DECISION and not wide:
            wide = np.float64 in (np.dtype(r["events"]["dtype"]), np.dtype(r["qevents"]["dtype"]))
    return reference, np.float64 if wide else np.float32


def write_outputs(out_dir: str | Path, menu: str | None = None) -> CollectorCounts:
    """Write ``accepted.h5``, ``quarantine.h5``, ``batch_latency_ms.npy`` and ``batch_scoring_ms.npy``
    (NaN where a worker did not say) from the journal (each
    decided batch once, in the order decided, each file whole or not at all); the counts recorded.
    With a ``menu``, each accepted event carries the seeds that fire on it (``seeds``, one bit per
    seed in the order of the file's ``seed_names``) and the counts the accepted events no seed takes."""
    out_dir = Path(out_dir)
    journal = out_dir / JOURNAL
    reference, dtype = _scan(read_records(journal))
    counts, decided, latencies, scoring = CollectorCounts(), SeqSet(), [], []
    seeds = None if menu is None else load_menu(menu)
    columns = ("bx", "timestamp_ns", "score", "reference_score", *(() if seeds is None else ("seeds",)))
    partial = {name: out_dir / f"{name}.partial" for name in ("accepted.h5", "quarantine.h5")}
    accepted_file = EventWriter(partial["accepted.h5"], dtype=dtype, extras={
        "bx": np.int64, "timestamp_ns": np.float64, "score": np.float64, "reference_score": np.float64,
        **({} if seeds is None else {"seeds": np.uint32})})
    if seeds is not None:
        accepted_file.set_attrs({"menu": seeds.source, "seed_names": [seed.name for seed in seeds.seeds]})
    untagged = 0  # accepted events no seed takes
    quarantine_file = EventWriter(partial["quarantine.h5"], dtype=np.float64,
                                  extras={"bx": np.int64, "reason": np.int8})
    quarantine_file.set_attrs({"reason_codes": {i: r.value for i, r in enumerate(REASONS)}})
    accepted = _Appender(accepted_file, columns)
    quarantined = _Appender(quarantine_file, ("bx", "reason"))
    try:
        for record in read_records(journal):
            if record["k"] in (DECISION, REJECTED_BATCH):
                if record["seq"] in decided:
                    continue  # a restarted collector may have decided a batch again before it knew
                decided.add(record["seq"])
            counts.add(record)
            if record["k"] != DECISION:
                continue
            bx = record["bx0"] + unpack_array(record["accepted"])
            ref = reference.get(record["seq"], np.full(len(bx), np.nan))
            events = unpack_array(record["events"])
            tags = () if seeds is None else (seeds.tags(events),)
            accepted.add(events, bx, bx * BX_NS, unpack_array(record["scores"]), ref, *tags)
            untagged += int(np.count_nonzero(tags[0] == 0)) if tags else 0
            q = unpack_array(record["quarantined"])
            quarantined.add(unpack_array(record["qevents"]), record["bx0"] + q,
                            np.full(len(q), REASONS.index(Reject(record.get("qreason", Reject.NON_FINITE.value))),
                                    np.int8))
            latencies.append(record["latency_ms"])
            scoring.append(np.nan if record.get("scoring_ms") is None else record["scoring_ms"])
        accepted.flush()
        quarantined.flush()
        counts.accepted_by_no_seed = None if seeds is None else untagged
    finally:
        accepted_file.close()
        quarantine_file.close()
    for name, path in partial.items():  # whole files or none: a crash here leaves the journal to rebuild them
        path.replace(out_dir / name)
    np.save(out_dir / "batch_latency_ms.npy", np.asarray(latencies, np.float64))
    np.save(out_dir / "batch_scoring_ms.npy", np.asarray(scoring, np.float64))
    return counts
