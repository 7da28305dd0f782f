"""Chunks of a sample on a Dask distributed cluster: this machine's (``local``) or a scheduler's.

Each chunk is one task running :func:`trigger.generator.run.run_chunk` on a worker; results
come back in chunk order to the one process that writes the file, so the output is
byte-identical to ``--jobs 1`` for the same seed and an interrupted run resumes like any
other. A batch system joins through its own Dask workers (``dask worker ADDRESS`` in each
job, or dask-jobqueue's ``SLURMCluster``/``HTCondorCluster``); the workers need the project
installed with its ``generate`` extra.
"""

from __future__ import annotations

import contextlib
import logging
import socket
from collections.abc import Callable, Iterator, Sequence
from typing import Any
from urllib.parse import urlsplit

from trigger.errors import UsageError

__all__ = ("CONNECT_TIMEOUT_S", "LOCAL", "connect", "run_on_dask")

#: the ``--scheduler`` value that starts a LocalCluster here
LOCAL = "local"
CONNECT_TIMEOUT_S = 10


def _reachable(scheduler: str) -> None:
    """Open and close a plain TCP connection to a ``tcp://HOST:PORT`` scheduler (an ``OSError`` when
    nothing listens there); other schemes are left to Dask."""
    address = urlsplit(scheduler)
    if address.scheme == "tcp" and address.hostname and address.port:
        socket.create_connection((address.hostname, address.port), timeout=CONNECT_TIMEOUT_S).close()


@contextlib.contextmanager
def connect(scheduler: str, jobs: int) -> Iterator[Any]:
    """A connected Dask ``Client`` (and, for ``local``, the LocalCluster of ``jobs`` workers it owns),
    closed on exit; an unreachable scheduler is a :class:`UsageError` before anything is written."""
    try:
        from dask.distributed import Client, LocalCluster
    except ModuleNotFoundError as err:
        msg = "--scheduler needs Dask: pip install 'trigger-anomaly[generate]' (or 'dask[distributed]')"
        raise ModuleNotFoundError(msg) from err
    cluster = None
    if scheduler == LOCAL:
        # its logs at shutdown are noise; a task's error still comes back through its result
        cluster = LocalCluster(n_workers=jobs, threads_per_worker=1, processes=True, dashboard_address=None,
                               silence_logs=logging.CRITICAL)
        client = Client(cluster)
    else:
        try:
            _reachable(scheduler)  # before Dask's client, which leaves its event-loop thread behind on failure
            client = Client(scheduler, timeout=f"{CONNECT_TIMEOUT_S}s")
        except (OSError, TimeoutError, ValueError) as err:
            msg = (f"cannot reach the Dask scheduler at {scheduler} within {CONNECT_TIMEOUT_S} s ({err}); "
                   f"start one with `dask scheduler`, or use --scheduler {LOCAL}")
            raise UsageError(msg) from None
    try:
        yield client
    finally:
        client.close()
        if cluster is not None:
            cluster.close()


def run_on_dask(client: Any, chunks: Sequence[Any], run_chunk: Callable[..., Any],
                write: Callable[[Any], None]) -> None:
    """Run ``run_chunk`` on every chunk on the cluster and ``write`` the results in chunk order.

    On Ctrl-C (or any error) the pending tasks are cancelled; what was written stays written,
    so ``--resume`` continues from there.
    """
    futures: list[Any] = []
    try:
        futures = client.map(run_chunk, chunks, pure=False)
        for future in futures:  # in chunk order: the file is written as with --jobs 1
            write(future.result())
    finally:
        client.cancel(futures)
