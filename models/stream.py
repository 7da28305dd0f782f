"""Training data streamed from HDF5: bounded memory whatever the file's size.

An event range of the SM file is read in chunks of ``chunk_events``; each epoch visits the
chunks in a new seeded order, pools ``pool_chunks`` of them, shuffles the pooled events and
yields ``(inputs, targets)`` batches (targets: the inputs, or given per-event targets such as a
distilled student's), so events mix across chunks while at most one pool is
in memory (about 150 MB at the defaults for float64 files). The scaler's input rule is the
one of :mod:`trigger.preprocess`. ``tf.data`` wraps the generator for Keras.

With a ``cache`` folder, :meth:`EventBatches.prepare` computes the inputs once (float32, and
the filled slots) into memory-mapped files there, about 250 bytes per event, and the
epochs read those: the scaling costs about as much as an epoch's fit, so it is done once rather
than every epoch (docs/decisions.md has the measurement).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from trigger.events import open_events
from trigger.preprocess import Scaler, event_values, filled_mask, input_mask
from trigger.schema import N_INPUTS, N_OBJECTS, PT

__all__ = ("CHUNK_EVENTS", "EventBatches", "training_targets")

CHUNK_EVENTS = 32_768
POOL_CHUNKS = 4


def training_targets(loss: str, x: NDArray[np.float32], mask: NDArray[np.bool_]) -> NDArray[np.float32]:
    """What the loss compares the reconstruction with: the inputs, and for ``masked_mse`` their mask."""
    return np.concatenate([x, mask.astype(np.float32)], axis=1) if loss == "masked_mse" else x


@dataclass
class EventBatches:
    """Batches of ``[start, stop)`` of ``path``, shuffled per epoch when ``seed`` is given."""

    path: Path
    span: tuple[int, int]
    scaler: Scaler
    loss: str
    batch_size: int
    seed: int | None = None  # None: file order (validation)
    chunk_events: int = CHUNK_EVENTS
    pool_chunks: int = POOL_CHUNKS
    cache: Path | None = None  # a folder for the prepared inputs (see prepare)
    # given targets per event of the span, (n, width), instead of the inputs (a student's: models.distill)
    targets: NDArray[np.float32] | None = None
    epoch: int = field(default=0, init=False)
    _prepared: tuple[NDArray[np.float32], NDArray[np.bool_]] | None = field(default=None, init=False, repr=False)

    def __post_init__(self) -> None:
        if self.targets is not None and len(self.targets) != self.n_events:
            msg = f"{len(self.targets)} targets for the {self.n_events} events of {self.span}"
            raise ValueError(msg)

    def prepare(self) -> None:
        """Compute the span's inputs and filled slots once into ``cache`` (memory-mapped)."""
        if self.cache is None or self._prepared is not None:
            return
        self.cache.mkdir(parents=True, exist_ok=True)
        n, (start, stop) = self.n_events, self.span
        x = np.memmap(self.cache / "inputs.f32", np.float32, "w+", shape=(n, N_INPUTS))
        slots = np.memmap(self.cache / "filled.bool", np.bool_, "w+", shape=(n, N_OBJECTS))
        with open_events(self.path) as events:
            for batch in events.iter_batches(self.chunk_events, start, stop):
                lo, hi = batch.start - start, batch.start - start + len(batch.particles)
                x[lo:hi] = self.scaler.transform(batch.particles)
                slots[lo:hi] = event_values(batch.particles)[..., PT] > 0
        x.flush()
        slots.flush()
        self._prepared = (np.memmap(self.cache / "inputs.f32", np.float32, "r", shape=(n, N_INPUTS)),
                          np.memmap(self.cache / "filled.bool", np.bool_, "r", shape=(n, N_OBJECTS)))

    @property
    def n_events(self) -> int:
        return self.span[1] - self.span[0]

    def _pools(self, rng: np.random.Generator | None) -> Iterator[list[tuple[int, int]]]:
        start, stop = self.span
        chunks = [(lo, min(lo + self.chunk_events, stop)) for lo in range(start, stop, self.chunk_events)]
        if rng is not None:
            chunks = [chunks[i] for i in rng.permutation(len(chunks))]
        for i in range(0, len(chunks), self.pool_chunks):
            yield sorted(chunks[i:i + self.pool_chunks])

    @property
    def target_width(self) -> int:
        if self.targets is not None:
            return int(self.targets.shape[1])
        return 2 * N_INPUTS if self.loss == "masked_mse" else N_INPUTS

    def _rows(self, table: NDArray[Any], pool: list[tuple[int, int]]) -> NDArray[Any]:
        start = self.span[0]
        return np.concatenate([table[lo - start:hi - start] for lo, hi in pool])

    def _pool_inputs(self, rng: np.random.Generator | None) -> Iterator[tuple[list[tuple[int, int]], NDArray[np.float32],
                                                                            NDArray[np.bool_]]]:
        """Each pool's event ranges, inputs and input mask, from the prepared files if there are any, else the events."""
        if self._prepared is not None:
            x_all, slots_all = self._prepared
            for pool in self._pools(rng):
                yield pool, self._rows(x_all, pool), input_mask(self._rows(slots_all, pool))
            return
        with open_events(self.path) as events:
            for pool in self._pools(rng):
                particles = np.concatenate([events.read(lo, hi) for lo, hi in pool])
                yield pool, self.scaler.transform(particles), filled_mask(particles)

    def pools(self) -> Iterator[tuple[NDArray[np.float32], NDArray[np.float32]]]:
        """One epoch as shuffled pools of ``(inputs, targets)`` (each call is the next epoch)."""
        rng = None if self.seed is None else np.random.default_rng([self.seed, self.epoch])
        self.epoch += 1
        for pool, inputs, in_slots in self._pool_inputs(rng):
            order = slice(None) if rng is None else rng.permutation(len(inputs))
            x = inputs[order]
            if self.targets is not None:
                yield x, self._rows(self.targets, pool)[order]
            else:
                yield x, training_targets(self.loss, x, in_slots[order])

    def __call__(self) -> Iterator[tuple[NDArray[np.float32], NDArray[np.float32]]]:
        """One epoch as stacks of batches, (batches, batch_size, width) per pool, its shorter last
        batch on its own: what :meth:`dataset` hands to TensorFlow."""
        for x, y in self.pools():
            full = len(x) // self.batch_size * self.batch_size
            if full:
                yield (x[:full].reshape(-1, self.batch_size, x.shape[1]),
                       y[:full].reshape(-1, self.batch_size, y.shape[1]))
            if full < len(x):
                yield x[None, full:], y[None, full:]

    def dataset(self) -> Any:
        """The batches as a ``tf.data.Dataset``: Python hands over whole pools already cut into
        batches, one element per batch (a generator call per batch, or TensorFlow batching one
        event at a time, costs more than the fit itself: docs/decisions.md)."""
        import tensorflow as tf

        signature = (tf.TensorSpec((None, None, N_INPUTS), tf.float32),
                     tf.TensorSpec((None, None, self.target_width), tf.float32))
        stacks = tf.data.Dataset.from_generator(self, output_signature=signature)
        return stacks.flat_map(lambda x, y: tf.data.Dataset.from_tensor_slices((x, y))).prefetch(tf.data.AUTOTUNE)
