"""The ZeroMQ replay pipeline (`replay --rate 40MHz-sim`): not implemented yet."""

from __future__ import annotations

__all__: tuple[str, ...] = ()
