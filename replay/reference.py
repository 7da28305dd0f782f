"""Reference role: score batches with the float twin at full precision, as a side check.

It receives a copy of the batches the source can give it without waiting (one in
``--reference-prescale``, fewer when it falls behind), scores them with TensorFlow (on a GPU
when one is visible) or numpy, and pushes the float scores to the collector, which compares
them with the emulated decisions by batch sequence number. Like a trigger's monitoring
stream it never holds the decision back, and it runs only on CPU time the trigger path
leaves idle (Linux's SCHED_IDLE). It says READY to the source once the model is loaded.
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path
from typing import Any

import zmq
from threadpoolctl import threadpool_limits

from replay.bundle import load_reference
from replay.config import MAX_CONTROL_BYTES, ReplayConfig
from replay.process import lowest_priority, settle_heap
from replay.scoring import ReferencePath, warm_up
from replay.security import Curve, secure_client
from replay.wire import READY, REFERENCE, STOP, FrameError, encode
from replay.worker import Limits, finite_scores, parse_task, rejected

__all__ = ("run_reference",)


def run_reference(feed: str, control: str, results: str, bundle: str | Path, backend: str, config: ReplayConfig,
                  context: zmq.Context[Any] | None = None, curve: Curve | None = None, idle: bool = False) -> int:
    """Serve until STOP or silence; returns the number of batches scored. ``idle``: once the model
    is loaded (at normal priority, so that it says READY soon on a busy machine), score on idle
    CPU time only."""
    path = load_reference(bundle, backend)
    warm_up(path, config.effective_batch_size)
    settle_heap()
    if idle:
        lowest_priority()
    limits = Limits.of(config)
    context = context or zmq.Context.instance()
    done = 0
    with (context.socket(zmq.PULL) as source, context.socket(zmq.PUSH) as control_push,
          context.socket(zmq.PUSH) as collector):
        for sock in (source, control_push, collector):
            sock.linger = 0
        source.rcvhwm = collector.sndhwm = config.hwm
        source.maxmsgsize = config.max_message_bytes
        control_push.maxmsgsize = collector.maxmsgsize = MAX_CONTROL_BYTES  # they only send
        secure_client(curve, "source", source, control_push)
        secure_client(curve, "collector", collector)
        source.connect(feed)
        control_push.connect(control)
        collector.connect(results)
        control_push.send_multipart(encode(READY, {"role": "reference", "backend": backend, "pid": os.getpid()}))
        idle_since = time.monotonic()
        while True:
            if not source.poll(int(config.heartbeat_s * 1000)):
                if time.monotonic() - idle_since > config.ready_timeout_s * 10:
                    break
                continue
            idle_since = time.monotonic()
            frames = source.recv_multipart(copy=False)
            if frames and bytes(frames[0]) == STOP:
                break
            collector.send_multipart(_score(path, frames, limits), copy=False)
            done += 1
    return done


def _score(path: ReferencePath, frames: list[Any], limits: Limits) -> list[Any]:
    try:
        task = parse_task(frames, limits)
    except FrameError as e:
        return rejected(e, role="reference")
    return encode(REFERENCE, {"seq": task.header["seq"], "n": len(task.particles)},
                  [finite_scores(path, task.particles, task.narrowed)])


def reference_main(feed: str, control: str, results: str, bundle: str, backend: str, config: ReplayConfig,
                   curve: Curve | None = None) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    threadpool_limits(1)  # K workers share the cores: one BLAS thread each
    # a monitoring path: the trigger path's processes come first for the CPU
    run_reference(feed, control, results, bundle, backend, config, zmq.Context(), curve, idle=True)
