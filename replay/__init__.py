"""The ZeroMQ replay pipeline behind ``replay --rate 40MHz-sim``.

A source paces HDF5 event streams, workers score them on the bit-exact emulated firmware
path and decide, a reference role scores them with the float twin, and a collector writes
the accepted events and accounts for every event. ``replay.cli`` runs it all on one machine
or one role per host; the roles need only the ``[replay]`` extra and a model bundle.
"""

from __future__ import annotations

__all__: tuple[str, ...] = ()
