"""``run_source``: the source's sockets bound and connected, its head driven through its states."""

from __future__ import annotations

import contextlib
import sys
import time
from collections.abc import Callable, Iterator
from typing import Any, TextIO

import zmq

from replay.config import MAX_CONTROL_BYTES, Endpoints, ReplayConfig
from replay.journal import SeqSet
from replay.process import idle_context, settle_heap
from replay.security import Curve, secure_client, secure_server
from replay.source.head import Head
from replay.source.peers import PACED_REFERENCE_QUEUE
from replay.source.stats import Interrupt, SourceStats
from replay.stream import EventStream

__all__ = ("CONTROL_QUEUE_FACTOR", "bound_head", "run_source")

#: the queues of many small messages (tasks and HEARTBEATs to each worker; ACK, READY and STATS on
#: the control channel) hold this many times ``hwm``, so that a burst of acknowledgements never
#: blocks the collector, nor a worker's heartbeats its batches
CONTROL_QUEUE_FACTOR = 4


@contextlib.contextmanager
def bound_head(endpoints: Endpoints, config: ReplayConfig, reference: bool, context: zmq.Context[Any],
               curve: Curve | None = None, **head: Any) -> Iterator[Head]:
    """The source's sockets bound (and connected to the collector) with a :class:`Head` on them
    (``head``: its other arguments); they close when the block ends."""
    # the reference's copies leave through an I/O thread on idle CPU time: a side path's bytes
    # never take the trigger path's cores
    with (idle_context() as side_context, context.socket(zmq.ROUTER) as tasks,
          context.socket(zmq.PULL) as control, side_context.socket(zmq.PUSH) as feed,
          context.socket(zmq.PUSH) as collector):
        for sock in (tasks, control, feed, collector):
            sock.linger = 0
        tasks.sndhwm = control.rcvhwm = config.hwm * CONTROL_QUEUE_FACTOR
        for sock in (tasks, control, feed, collector):  # workers and the collector send control messages only
            sock.maxmsgsize = MAX_CONTROL_BYTES
        # what the reference path may lag behind by, in batches
        feed.sndhwm = config.hwm if config.rate.simulated else min(config.hwm, PACED_REFERENCE_QUEUE)
        tasks.router_mandatory = True
        secure_server(curve, tasks, control, feed)
        secure_client(curve, "collector", collector)
        tasks.bind(endpoints.tasks)
        control.bind(endpoints.control)
        feed.bind(endpoints.reference)
        collector.linger = 2000
        collector.connect(endpoints.results)
        pack = endpoints.tasks.startswith("tcp://") if config.pack_batches is None else config.pack_batches
        yield Head({"tasks": tasks, "control": control, "reference": feed, "collector": collector}, config,
                   reference, pack=pack, **head)


def run_source(endpoints: Endpoints, stream: EventStream, config: ReplayConfig, reference: bool,
               alive: Callable[[str], str | None] = lambda _role: None, progress: TextIO | None = sys.stderr,
               context: zmq.Context[Any] | None = None, curve: Curve | None = None,
               interrupt: Interrupt | None = None, done: SeqSet | None = None,
               restart: Callable[[str], bool] = lambda _role: False, workers: int = 1) -> SourceStats:
    """Bind, wait for the roles (``workers`` of the workers), replay the stream, and return the
    source's and collector's counts; the batches in ``done`` (decided before a resume) are counted
    but not sent.

    ``alive(role)`` names a local role process that died (``role`` is a name prefix, "" for
    any); roles on other hosts are known only by their messages, so the default says none.
    ``restart(role)`` starts a dead local role again and says whether it did.
    """
    with bound_head(endpoints, config, reference, context or zmq.Context.instance(), curve, alive=alive,
                    progress=progress, done=done, restart=restart) as head:
        try:
            with contextlib.ExitStack() as stack:  # the caller's handler if it installed one
                ctrl_c = interrupt or stack.enter_context(Interrupt())
                head.wait_ready(ctrl_c, workers)  # WAITING_FOR_PEERS
                settle_heap()  # the head may hold TensorFlow and hls4ml, which read the model
                head.started = time.monotonic()
                stats = head.run(stream, ctrl_c)  # STREAMING, DRAINING
                head.finish()  # FINISHING
        finally:
            if curve is not None:
                curve.close()
        return stats
