"""Pareto fronts: the points no other point beats on cost and gain together."""

from __future__ import annotations

from collections.abc import Sequence

__all__ = ("pareto_front",)


def pareto_front(costs: Sequence[float], gains: Sequence[float]) -> list[bool]:
    """True where no other point costs no more and gains no less (and is better in one)."""
    points = list(zip(costs, gains, strict=True))
    return [not any(c <= cost and g >= gain and (c, g) != (cost, gain) for c, g in points)
            for cost, gain in points]
