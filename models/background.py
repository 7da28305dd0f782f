"""The SM events thresholds and rates are measured on: never a model's training events.

:func:`background_events` reads one file: the artifact's held-out test split when it is the file
the artifact trained on, else every event. :func:`read_background` reads one file or a set of them;
a set is weighted to the stream by process (``trigger.stream_weights``: the cocktail plus samples
that oversample the rare processes), so that thresholds and rates come from the weighted events.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import NDArray

from trigger.events import open_events
from trigger.filehash import file_sha256
from trigger.stream_weights import stream_weights

if TYPE_CHECKING:
    from models.region_artifact import TriggerModel
    from models.supervised import SupervisedArtifact

__all__ = ("Background", "background_events", "held_out_span", "read_background")


def held_out_span(artifact: TriggerModel | SupervisedArtifact, path: str | Path, n_events: int,
                  max_events: int | None) -> tuple[int, int, str]:
    """The events ``[start, stop)`` of the file at ``path`` the artifact never trained on, and a
    note saying which they are: its test split when it is the training file, or a file generated
    with the training file's process and seed (events are seeded by their index: the same events,
    e.g. the sample again with its regions), else all of them."""
    data = artifact.manifest.get("data", {})
    if data.get("sha256") and data["sha256"] == file_sha256(path):
        start, stop = data["split"]["test"]
        note = f"held-out test split [{start}, {stop}) of the training file"
    elif _same_events(data, path):
        start, stop = (min(bound, n_events) for bound in data["split"]["test"])
        note = (f"events [{start}, {stop}): the training file's held-out split, of a file generated with its "
                f"process and seed {data['source_seed']}")
    else:
        start, stop = 0, n_events
        note = "all events of the file (not the training file)"
    return start, min(stop, start + max_events) if max_events else stop, note


def _same_events(data: dict[str, Any], path: str | Path) -> bool:
    """Whether the file was generated with the training file's process and seed."""
    if data.get("source_seed") is None or "split" not in data:
        return False
    with open_events(path) as events:
        attrs = events.attrs
    return bool(attrs.get("seed") == data["source_seed"] and attrs.get("process") == data.get("source_process"))


def background_events(artifact: TriggerModel | SupervisedArtifact, path: str | Path,
                      max_events: int | None = None, reads: str | None = None) -> tuple[NDArray[Any], str]:
    """SM events for evaluation (of the dataset the model ``reads``, or the one given) and a note
    saying which ones they are."""
    with open_events(path) as events:
        start, stop, note = held_out_span(artifact, path, events.n_events, max_events)
        return events.read_input(reads or artifact.reads, start, stop), note


@dataclass(frozen=True)
class Background:
    """SM events, their weights (None: each counts once) and a note saying which events they are."""

    events: NDArray[Any]  # of the dataset the model reads: Particles or CaloRegions
    weights: NDArray[np.float64] | None
    note: str

    def __len__(self) -> int:
        return len(self.events)


def read_background(artifact: TriggerModel | SupervisedArtifact, paths: str | Path | Sequence[str | Path],
                    max_events: int | None = None, reads: str | None = None) -> Background:
    """One file's :func:`background_events`, or several files' weighted to the stream by process."""
    paths = [paths] if isinstance(paths, (str, Path)) else list(paths)
    if len(paths) == 1:
        events, note = background_events(artifact, paths[0], max_events, reads)
        return Background(events, None, f"{note} of {Path(paths[0]).name}")
    parts, codes, notes = [], [], []
    for path in paths:
        with open_events(path) as file:
            start, stop, note = held_out_span(artifact, path, file.n_events, max_events)
            parts.append(file.read_input(reads or artifact.reads, start, stop))
            codes.append(file.read_process_codes(start, stop))
        notes.append(f"{Path(path).name}: {note}, {stop - start} events")
    weights = stream_weights(np.concatenate(codes))
    return Background(np.concatenate(parts), weights,
                      "weighted to the stream's process shares: " + "; ".join(notes))
