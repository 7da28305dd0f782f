"""Read and write event files in the ADC2021 layout (HDF5 dataset ``Particles``).

Reading streams in batches with bounded memory, so multi-GB public files never
load whole. Every problem with a file becomes an :class:`InputFileError` or a
:class:`SchemaError` that names the file and what is wrong with it.

Generated files may hold ``CaloRegions`` (N, 18, 14) beside ``Particles``: read it with
:meth:`EventFile.read_regions` or as an extra of :meth:`EventFile.iter_batches`; files
without it (the public ones) read exactly as before.
"""

from __future__ import annotations

import difflib
import json
import re
from collections.abc import Iterator, Mapping
from pathlib import Path
from types import TracebackType
from typing import Any, NamedTuple, Self, cast

import h5py
import numpy as np
from numpy.typing import DTypeLike, NDArray

from trigger.errors import InputFileError, SchemaError
from trigger.schema import (
    CLASS_NAMES,
    DATASET,
    FEATURE_NAMES,
    N_FEATURES,
    N_OBJECTS,
    REGION_N_ETA,
    REGION_N_PHI,
    REGIONS_DATASET,
)

__all__ = ("EventBatch", "EventFile", "EventWriter", "iter_batches", "open_events", "read_events")

DEFAULT_BATCH = 65_536
PROCESS_CODES = "process_code"  # the generator's per-event process (trigger.generator.processes codes)
_LAYOUT_DATASETS = {DATASET, f"{DATASET}_Names", f"{DATASET}_Classes"}


class EventBatch(NamedTuple):
    """A run of consecutive events: ``particles[i]`` is event ``start + i``."""

    start: int
    particles: NDArray[np.floating[Any]]
    extras: dict[str, NDArray[Any]]


def _open_h5(path: Path, mode: str) -> h5py.File:
    if not path.exists():
        raise InputFileError(path, "no such file")
    if path.is_dir():
        raise InputFileError(path, "is a directory, expected an HDF5 file")
    if not h5py.is_hdf5(path):
        raise InputFileError(path, "not an HDF5 file")
    try:
        return h5py.File(path, mode)
    except OSError as err:
        sizes = re.search(r"truncated file: eof = (\d+).*stored_eof = (\d+)", str(err))
        if sizes:
            problem = f"truncated HDF5 file ({sizes[1]} of {sizes[2]} bytes present)"
        elif "unable to lock file" in str(err):
            problem = ("locked by another process, which is writing it (a running `trigger generate`?); "
                       "read it once that has finished or stopped")
        else:
            problem = f"damaged HDF5 file ({err})"
        raise InputFileError(path, problem) from err


def _check_layout(path: Path, h5: h5py.File) -> h5py.Dataset:
    if DATASET not in h5:
        present = sorted(h5.keys())
        close = difflib.get_close_matches(DATASET, present, n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        raise SchemaError(path, f"no dataset {DATASET!r} (found: {', '.join(present) or 'nothing'}){hint}")
    ds = h5[DATASET]
    if not isinstance(ds, h5py.Dataset):
        raise SchemaError(path, f"{DATASET!r} is a group, expected a dataset")
    if ds.ndim != 3 or ds.shape[1:] != (N_OBJECTS, N_FEATURES):
        found = ("N", *tuple(ds.shape[1:])) if ds.ndim >= 1 else ()
        raise SchemaError(
            path,
            f"{DATASET!r} has shape {_fmt_shape(found)}, expected (N, {N_OBJECTS}, {N_FEATURES})",
        )
    if ds.dtype.kind != "f":
        raise SchemaError(path, f"{DATASET!r} has dtype {ds.dtype}, expected float32 or float64")
    return ds


def _check_regions(path: Path, h5: h5py.File, n_events: int) -> h5py.Dataset | None:
    """The ``CaloRegions`` dataset if the file has one (checked: (N, 18, 14), unsigned integers)."""
    if REGIONS_DATASET not in h5:
        return None
    ds = h5[REGIONS_DATASET]
    expected = (n_events, REGION_N_PHI, REGION_N_ETA)
    if not isinstance(ds, h5py.Dataset) or ds.shape != expected:
        found = _fmt_shape(tuple(ds.shape)) if isinstance(ds, h5py.Dataset) else "a group"
        raise SchemaError(path, f"{REGIONS_DATASET!r} is {found}, expected {_fmt_shape(expected)}")
    if ds.dtype.kind != "u":
        raise SchemaError(path, f"{REGIONS_DATASET!r} has dtype {ds.dtype}, expected unsigned integers (uint16)")
    return ds


def _fmt_shape(shape: tuple[Any, ...]) -> str:
    return "(" + ", ".join(str(s) for s in shape) + ")"


def _decode_attr(value: Any) -> Any:
    if isinstance(value, bytes):
        value = value.decode()
    if isinstance(value, str) and value[:1] in "{[":
        try:
            return json.loads(value)
        except ValueError:
            return value
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    return value


class EventFile:
    """An open event file. Use as a context manager, or call :meth:`close`."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._h5 = _open_h5(self.path, "r")
        try:
            self._particles = _check_layout(self.path, self._h5)
        except Exception:
            self._h5.close()
            raise

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, err: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def close(self) -> None:
        self._h5.close()

    @property
    def n_events(self) -> int:
        return int(self._particles.shape[0])

    def __len__(self) -> int:
        return self.n_events

    @property
    def dtype(self) -> np.dtype[Any]:
        return cast(np.dtype[Any], self._particles.dtype)

    @property
    def attrs(self) -> dict[str, Any]:
        """File attributes (provenance), JSON-encoded values decoded."""
        return {key: _decode_attr(value) for key, value in self._h5.attrs.items()}

    @property
    def extra_datasets(self) -> dict[str, tuple[tuple[int, ...], np.dtype[Any]]]:
        """Per-event datasets beside ``Particles`` (scores, BX ids, process codes, ...)."""
        found = {}
        for name, obj in self._h5.items():
            if name in _LAYOUT_DATASETS or not isinstance(obj, h5py.Dataset):
                continue
            if obj.ndim >= 1 and obj.shape[0] == self.n_events:
                found[name] = (obj.shape, obj.dtype)
        return found

    @property
    def has_regions(self) -> bool:
        """Whether the file holds ``CaloRegions`` (generated files; not the public ADC2021 files)."""
        return REGIONS_DATASET in self._h5

    def regions_attrs(self) -> dict[str, Any]:
        """The ``CaloRegions`` dataset's attributes (layout, LSB, response), decoded; empty without it."""
        if not self.has_regions:
            return {}
        return {key: _decode_attr(value) for key, value in self._h5[REGIONS_DATASET].attrs.items()}

    def read_regions(self, start: int = 0, stop: int | None = None) -> NDArray[np.unsignedinteger[Any]]:
        """``CaloRegions`` of events ``[start, stop)``, shape (n, 18, 14); a :class:`SchemaError` if the file
        has none or a malformed one."""
        if _check_regions(self.path, self._h5, self.n_events) is None:
            raise SchemaError(self.path, f"no dataset {REGIONS_DATASET!r} (made with --no-regions, or not generated)")
        start, stop = self._span(start, stop)
        return self._read(REGIONS_DATASET, start, stop)

    def read_input(self, dataset: str, start: int = 0, stop: int | None = None) -> NDArray[Any]:
        """Events ``[start, stop)`` of what a model reads: ``Particles`` (:meth:`read`) or
        ``CaloRegions`` (:meth:`read_regions`)."""
        if dataset == DATASET:
            return self.read(start, stop)
        if dataset == REGIONS_DATASET:
            return self.read_regions(start, stop)
        msg = f"a model reads {DATASET!r} or {REGIONS_DATASET!r}, not {dataset!r}"
        raise ValueError(msg)

    def read_process_codes(self, start: int = 0, stop: int | None = None) -> NDArray[np.integer[Any]]:
        """The generator's ``process_code`` of events ``[start, stop)`` (which SM process each is); a
        :class:`SchemaError` for files without it (the public files)."""
        if PROCESS_CODES not in self.extra_datasets:
            raise SchemaError(self.path, f"no per-event {PROCESS_CODES!r} (not a generated file): cannot tell "
                                         "its processes apart to weight them")
        start, stop = self._span(start, stop)
        return self._read(PROCESS_CODES, start, stop)

    def check_regions(self) -> None:
        """Raise a :class:`SchemaError` if the file's ``CaloRegions`` is malformed (absent is fine)."""
        _check_regions(self.path, self._h5, self.n_events)

    def _span(self, start: int, stop: int | None) -> tuple[int, int]:
        n = self.n_events
        stop = n if stop is None else stop
        if not 0 <= start <= n or not start <= stop <= n:
            msg = f"{self.path}: events [{start}, {stop}) outside [0, {n})"
            raise ValueError(msg)
        return start, stop

    def _read(self, name: str, start: int, stop: int) -> NDArray[Any]:
        try:
            return cast(NDArray[Any], self._h5[name][start:stop])
        except (OSError, KeyError) as err:
            raise InputFileError(
                self.path, f"cannot read {name!r} events {start}-{stop} (damaged or truncated file)"
            ) from err

    def read(
        self, start: int = 0, stop: int | None = None, dtype: DTypeLike | None = None
    ) -> NDArray[np.floating[Any]]:
        """Events ``[start, stop)`` as an array of shape (n, 19, 4)."""
        start, stop = self._span(start, stop)
        data = self._read(DATASET, start, stop)
        return data if dtype is None else data.astype(dtype, copy=False)

    def iter_batches(
        self,
        batch_size: int = DEFAULT_BATCH,
        start: int = 0,
        stop: int | None = None,
        extras: tuple[str, ...] = (),
        dtype: DTypeLike | None = None,
    ) -> Iterator[EventBatch]:
        """Yield consecutive batches of at most ``batch_size`` events from ``[start, stop)``."""
        if batch_size < 1:
            msg = f"batch_size must be >= 1, got {batch_size}"
            raise ValueError(msg)
        start, stop = self._span(start, stop)
        missing = [name for name in extras if name not in self.extra_datasets]
        if missing:
            raise SchemaError(self.path, f"no per-event dataset {missing[0]!r}")
        for lo in range(start, stop, batch_size):
            hi = min(lo + batch_size, stop)
            yield EventBatch(
                lo,
                self.read(lo, hi, dtype),
                {name: self._read(name, lo, hi) for name in extras},
            )


def open_events(path: str | Path) -> EventFile:
    """Open an ADC2021-layout file for reading, checking its layout."""
    return EventFile(path)


def iter_batches(
    path: str | Path,
    batch_size: int = DEFAULT_BATCH,
    start: int = 0,
    stop: int | None = None,
    dtype: DTypeLike | None = None,
) -> Iterator[EventBatch]:
    """Stream a file's events in batches; the file is closed when the iterator ends."""
    with open_events(path) as events:
        yield from events.iter_batches(batch_size, start, stop, dtype=dtype)


def read_events(path: str | Path, start: int = 0, stop: int | None = None) -> NDArray[np.floating[Any]]:
    """Read events ``[start, stop)`` of a file at once (for small files and tests)."""
    with open_events(path) as events:
        return events.read(start, stop)


def _encode_attr(value: Any) -> Any:
    if isinstance(value, Mapping | list | tuple):
        return json.dumps(value, sort_keys=True)
    if value is None:
        return "null"
    return value


class EventWriter:
    """Append events to a new (or, with ``append=True``, an existing) file.

    ``Particles`` is written chunked and gzip-compressed beside ``Particles_Names``
    and ``Particles_Classes``, as in the public files. ``extras`` declares optional
    per-event datasets (name -> dtype, or (dtype, per-event shape)) that readers of
    the public format ignore.
    """

    def __init__(
        self,
        path: str | Path,
        attrs: Mapping[str, Any] | None = None,
        extras: Mapping[str, DTypeLike | tuple[DTypeLike, tuple[int, ...]]] | None = None,
        dtype: DTypeLike = np.float32,
        chunk_events: int = 4096,
        compression_level: int = 4,
        append: bool = False,
    ) -> None:
        self.path = Path(path)
        if append:
            self._h5 = _open_h5(self.path, "r+")
            self._particles = _check_layout(self.path, self._h5)
        else:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._h5 = h5py.File(self.path, "w", track_order=True)
            self._particles = self._create(DATASET, np.dtype(dtype), (N_OBJECTS, N_FEATURES),
                                           chunk_events, compression_level)
            self._h5.create_dataset(f"{DATASET}_Names", data=np.array(FEATURE_NAMES))
            self._h5.create_dataset(f"{DATASET}_Classes", data=np.array(CLASS_NAMES))
            for name, spec in (extras or {}).items():
                kind, shape = cast(tuple[DTypeLike, tuple[int, ...]], spec) if isinstance(spec, tuple) else (spec, ())
                self._create(name, np.dtype(kind), tuple(shape), chunk_events, compression_level)
        self.set_attrs(attrs or {})

    def _create(
        self, name: str, dtype: np.dtype[Any], shape: tuple[int, ...], chunk: int, level: int
    ) -> h5py.Dataset:
        return self._h5.create_dataset(
            name,
            shape=(0, *shape),
            maxshape=(None, *shape),
            dtype=dtype,
            chunks=(chunk, *shape),
            compression="gzip",
            compression_opts=level,
            shuffle=True,
            track_times=False,
        )

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, err: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    @property
    def n_events(self) -> int:
        return int(self._particles.shape[0])

    @property
    def attrs(self) -> dict[str, Any]:
        return {key: _decode_attr(value) for key, value in self._h5.attrs.items()}

    def set_attrs(self, attrs: Mapping[str, Any]) -> None:
        """Store provenance; mappings and lists are stored as JSON text."""
        for key, value in attrs.items():
            self._h5.attrs[key] = _encode_attr(value)

    def set_dataset_attrs(self, name: str, attrs: Mapping[str, Any]) -> None:
        """Describe one dataset (e.g. ``CaloRegions``'s layout); mappings and lists stored as JSON text."""
        for key, value in attrs.items():
            self._h5[name].attrs[key] = _encode_attr(value)

    def append(self, particles: NDArray[np.floating[Any]], **extras: NDArray[Any]) -> None:
        """Append a batch of shape (n, 19, 4) and the matching per-event extras."""
        particles = np.asarray(particles)
        if particles.ndim != 3 or particles.shape[1:] != (N_OBJECTS, N_FEATURES):
            msg = f"particles of shape {particles.shape}, expected (n, 19, 4)"
            raise ValueError(msg)
        declared = {name for name in self._h5 if name not in _LAYOUT_DATASETS}
        if set(extras) != declared:
            msg = f"extras {sorted(extras)} do not match the declared {sorted(declared)}"
            raise ValueError(msg)
        n, lo = len(particles), self.n_events
        for name, given in (DATASET, particles), *extras.items():
            values = np.asarray(given)
            if len(values) != n:
                msg = f"{name}: {len(values)} rows for {n} events"
                raise ValueError(msg)
            ds = self._h5[name]
            ds.resize(lo + n, axis=0)
            ds[lo:] = values

    def flush(self) -> None:
        self._h5.flush()

    def close(self) -> None:
        if self._h5.id.valid:
            self._h5.close()
