"""What every local role process does first: bind its life to the head's and say who it is;
and what every role does once loaded: :func:`settle_heap` (the garbage collector and the allocator
settled for the run).

``PR_SET_PDEATHSIG`` makes the kernel send SIGKILL to a role when the process that started it
dies, however it dies (SIGKILL included), so no worker or collector outlives its run; the
process title (``setproctitle``, and the kernel's 15-character name) lets ``ps`` and ``top``
show ``replay worker-0 (run DIR)`` instead of ``python -c from multiprocessing.spawn ...``.
Linux only; elsewhere the role just runs.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import gc
import os
import signal
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import zmq

__all__ = ("idle_context", "keep_batches_mapped", "lowest_priority", "role_entry", "settle_heap", "thread_ids",
           "zmq_threads")

_PR_SET_PDEATHSIG = 1
_PR_SET_NAME = 15
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3  # glibc's mallopt parameters
_MMAP_THRESHOLD_MAX = 32 << 20  # the largest glibc accepts on 64-bit
_KEEP_FREED = 512 << 20  # freed memory a process keeps before it gives any back


@functools.cache
def _libc() -> ctypes.CDLL:
    return ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)


def _prctl(option: int, value: int | bytes) -> bool:
    if not sys.platform.startswith("linux"):
        return False
    return bool(_libc().prctl(option, value, 0, 0, 0) == 0)


def bind_to_parent(parent_pid: int) -> None:
    """SIGKILL when the parent dies; exit now if it already has (it died before the call)."""
    _prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() != parent_pid:
        os._exit(1)


def name_process(title: str) -> None:
    try:
        import setproctitle
    except ModuleNotFoundError:
        pass
    else:
        setproctitle.setproctitle(title)
    _prctl(_PR_SET_NAME, title.replace("replay ", "replay-").encode()[:15])


def role_entry(parent_pid: int, title: str, target: Callable[..., None], *args: Any) -> None:
    """A role process's entry point: bound to the head, named, then ``target(*args)``."""
    bind_to_parent(parent_pid)
    name_process(title)
    target(*args)


def keep_batches_mapped() -> bool:
    """Serve batch-sized buffers (a 16,384-event batch is 5 MB; ZeroMQ allocates one per message
    received) from the heap and keep freed memory there, instead of glibc's default of mapping
    each large buffer fresh and handing it back when freed, which faults every page in again for
    every batch. Says whether glibc took the settings (not Linux/glibc: nothing changes)."""
    if not sys.platform.startswith("linux"):
        return False
    libc = _libc()
    if not hasattr(libc, "mallopt"):
        return False
    return bool(libc.mallopt(_M_MMAP_THRESHOLD, _MMAP_THRESHOLD_MAX) and libc.mallopt(_M_TRIM_THRESHOLD, _KEEP_FREED))


def settle_heap() -> None:
    """Collect once, then freeze what survives (imported libraries, the loaded model) out of the
    garbage collector's reach, so that a full collection during the run walks only what the run
    itself makes; and keep batch buffers mapped (:func:`keep_batches_mapped`). A full pass over
    the objects of a process holding TensorFlow takes long enough to make a paced batch late."""
    gc.collect()
    gc.freeze()
    keep_batches_mapped()


def lowest_priority(thread: int = 0) -> str:
    """Run ``thread`` (0: the calling one; threads it starts from now on inherit it) only on CPU
    time nothing else wants: Linux's SCHED_IDLE, else nice 19. Says which it got."""
    try:
        os.sched_setscheduler(thread, os.SCHED_IDLE, os.sched_param(0))
    except (AttributeError, OSError):  # not Linux, or not allowed
        os.setpriority(os.PRIO_PROCESS, thread, 19)
        return "nice 19"
    return "SCHED_IDLE"


def thread_ids() -> set[int]:
    """This process's threads (Linux)."""
    return {int(t.name) for t in Path("/proc/self/task").iterdir()}


#: libzmq names its background threads ZMQbg/IO/<n> and ZMQbg/Reaper
ZMQ_THREAD_PREFIX = "ZMQbg/"


def zmq_threads(threads: set[int]) -> set[int]:
    """Those of ``threads`` that are libzmq's background threads (by the name each gives itself)."""
    named = set()
    for thread in threads:
        try:
            if Path(f"/proc/self/task/{thread}/comm").read_text().startswith(ZMQ_THREAD_PREFIX):
                named.add(thread)
        except OSError:  # it has ended
            pass
    return named


def idle_context() -> zmq.Context[Any]:
    """A ZeroMQ context whose background threads run only on CPU time nothing else wants (Linux's
    SCHED_IDLE), for the sockets of a side path. Its I/O thread, not the one that calls ``send``,
    copies each message into the kernel: the source's copies of the batches for the reference cost
    a sixth of a core at 2 MHz, taken from the trigger path when that thread had normal priority.
    Elsewhere than on Linux, an ordinary context."""
    context: zmq.Context[Any] = zmq.Context(io_threads=1)
    if not sys.platform.startswith("linux"):
        return context
    before = thread_ids()
    context.socket(zmq.PUSH).close()  # libzmq starts a context's threads (I/O and reaper) with its first socket
    deadline = time.monotonic() + 2.0
    while len(threads := zmq_threads(thread_ids() - before)) < 2 and time.monotonic() < deadline:
        time.sleep(0.001)  # they name themselves once running; other threads started meanwhile are not theirs
    for thread in threads:
        lowest_priority(thread)
    return context
