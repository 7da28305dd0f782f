"""A generated sample's record (process, seed, size, SHA-256 of its events), to rebuild and check it.

A sample too large to keep in the repository is kept as its record, a small JSON file; the
generator gives the same bytes for a seed however it is run or resumed, so regenerating the
sample and checking it against the record shows it is the same one. The hash covers the events
(``Particles``, then each per-event dataset in name order), not the HDF5 container, whose layout
depends on how often the run was resumed.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any, Self

from trigger.errors import InputFileError, UsageError
from trigger.events import open_events

__all__ = ("SampleRecord", "events_sha256", "sample_problems")

HASH_BATCH = 65_536  # events hashed at a time


def events_sha256(path: str | Path) -> str:
    """SHA-256 of a file's events: ``Particles`` then each per-event dataset, in file order."""
    digest = hashlib.sha256()
    with open_events(path) as events:
        extras = tuple(sorted(events.extra_datasets))
        for name in ("Particles", *extras):
            for batch in events.iter_batches(HASH_BATCH, extras=extras):
                data = batch.particles if name == "Particles" else batch.extras[name]
                digest.update(data.tobytes())
    return digest.hexdigest()


@dataclass(frozen=True)
class SampleRecord:
    """What identifies a generated sample: enough to rebuild it and to check the rebuild."""

    file: str
    process: str
    seed: int
    events: int
    generator: str
    events_sha256: str

    @classmethod
    def of_file(cls, path: str | Path) -> Self:
        """The record of a finished generated file; an unfinished or foreign file is refused."""
        path = Path(path)
        with open_events(path) as events:
            attrs, n_events = events.attrs, events.n_events
        missing = [key for key in ("process", "seed", "generator") if key not in attrs]
        if missing:
            raise InputFileError(path, f"not made by trigger generate (no {missing[0]!r} attribute)")
        if attrs.get("complete") is not True:
            raise InputFileError(path, "generation is not complete (attribute complete = False); "
                                       "finish it with --resume first")
        return cls(path.name, str(attrs["process"]), int(attrs["seed"]), n_events,
                   str(attrs["generator"]), events_sha256(path))

    @classmethod
    def read(cls, path: str | Path) -> Self:
        """A record written by :meth:`write`; a missing or malformed one is a usage error."""
        path = Path(path)
        try:
            data: dict[str, Any] = json.loads(path.read_text())
            return cls(**{f.name: data[f.name] for f in fields(cls)})
        except FileNotFoundError as err:
            msg = f"{path}: no such sample record"
            raise UsageError(msg) from err
        except (json.JSONDecodeError, KeyError, TypeError) as err:
            msg = f"{path}: not a sample record ({err})"
            raise UsageError(msg) from err

    def write(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps(asdict(self), indent=1) + "\n")


def sample_problems(path: str | Path, record: SampleRecord) -> list[str]:
    """How the file at ``path`` differs from ``record``: empty when it is the recorded sample."""
    actual = SampleRecord.of_file(path)
    return [f"{f.name}: recorded {getattr(record, f.name)!r}, file has {getattr(actual, f.name)!r}"
            for f in fields(SampleRecord) if f.name != "file" and getattr(record, f.name) != getattr(actual, f.name)]
