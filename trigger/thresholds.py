"""Score threshold <-> accept-rate calibration on SM events. Pure numpy; files are read elsewhere.

The threshold for a target false-positive rate (FPR) is the score above which a fraction
FPR of held-out SM events lies, placed halfway between two adjacent distinct SM scores, so
that no SM score sits on it and ties cannot flip a decision (events with score > threshold
are accepted). Each estimate records the scoring path and the events it was calibrated on. Its statistical uncertainty comes from the binomial
spread of that count (order statistics); the FPR actually achieved carries a
Clopper-Pearson interval. With fewer than ``MIN_EXPECTED`` SM events expected above the
threshold the estimate is flagged: the sample cannot support the requested rate.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray
from scipy.stats import beta

from trigger.errors import UsageError

__all__ = ("FPR_POINTS", "MIN_EXPECTED", "RateEstimate", "SharedRate", "ThresholdEstimate", "clopper_pearson",
           "effective_count", "rate_at", "shared_rate", "threshold_for", "weighted_threshold_for")

#: false-positive rates at which efficiencies are reported (evaluation, report)
FPR_POINTS = (1e-2, 1e-3, 1e-4, 1e-5)
MIN_EXPECTED = 10  # SM events above threshold needed for a supported estimate (about 30 % error)
ONE_SIGMA = 0.6827


def clopper_pearson(k: float | NDArray[Any], n: float | NDArray[Any],
                    level: float = ONE_SIGMA) -> tuple[Any, Any]:
    """Exact binomial (Clopper-Pearson 1934) interval for the fraction k/n at ``level`` (effective,
    non-integer counts of weighted events too)."""
    k, n = np.asarray(k), np.asarray(n)
    if np.any(n <= 0) or np.any(k < 0) or np.any(k > n):
        msg = f"need 0 <= k <= n and n > 0, got k={k}, n={n}"
        raise ValueError(msg)
    alpha = 1.0 - level
    with np.errstate(invalid="ignore"):
        low = np.where(k == 0, 0.0, beta.ppf(alpha / 2, k, n - k + 1))
        high = np.where(k == n, 1.0, beta.ppf(1 - alpha / 2, k + 1, n - k))
    return (float(low), float(high)) if low.ndim == 0 else (low, high)


@dataclass(frozen=True)
class RateEstimate:
    """How many of ``total`` SM events score above a threshold, with a 68 % CL interval."""

    threshold: float
    accepted: int
    total: int
    fpr: float
    fpr_low: float
    fpr_high: float
    effective_accepted: float | None = None  # weighted events: the effective count above, (sum w)^2 / sum w^2

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def rate_at(scores: NDArray[np.floating[Any]], threshold: float,
            weights: NDArray[np.floating[Any]] | None = None) -> RateEstimate:
    """Accepted count, total and Clopper-Pearson bounds of the FPR at ``threshold`` (score > t); with
    ``weights`` (one per event), the weighted fraction and bounds from the effective counts."""
    scores = np.asarray(scores)
    above = scores > threshold
    k = int(np.count_nonzero(above))
    if weights is None:
        low, high = clopper_pearson(k, len(scores))
        return RateEstimate(float(threshold), k, len(scores), k / len(scores), low, high)
    w = np.asarray(weights, np.float64)
    fraction, k_eff = float(w[above].sum() / w.sum()), effective_count(w[above])
    low, high = clopper_pearson(k_eff, k_eff / fraction) if k else clopper_pearson(0, effective_count(w))
    return RateEstimate(float(threshold), k, len(scores), fraction, low, high, k_eff)


def effective_count(weights: NDArray[np.floating[Any]]) -> float:
    """How many unweighted events carry the statistical power of these weighted ones: (sum w)^2 / sum w^2."""
    w = np.asarray(weights, np.float64)
    squares = float(np.sum(w * w))
    return float(np.sum(w)) ** 2 / squares if squares > 0 else 0.0


@dataclass(frozen=True)
class ThresholdEstimate:
    """A calibrated threshold: events with score > ``threshold`` are accepted."""

    target_fpr: float
    threshold: float
    threshold_low: float  # 68 % interval from the binomial spread of the count above it
    threshold_high: float
    achieved: RateEstimate
    expected_above: float  # target_fpr * number of SM events
    supported: bool
    note: str
    path: str = ""  # the scores calibrated on: "emulator" (the firmware's fixed point), "qkeras", "float"
    events: str = ""  # which SM events (never training events)

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["achieved"] = self.achieved.as_dict()
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ThresholdEstimate:
        return cls(**{**data, "achieved": RateEstimate(**data["achieved"])})


def _between(scores: NDArray[np.float64], index: int) -> float:
    """Halfway from the sorted ``scores[index]`` to the next larger distinct score; the score itself
    when none is larger (then no SM event is accepted)."""
    above = int(np.searchsorted(scores, scores[index], side="right"))
    if above == len(scores):
        return float(scores[index])
    return float(scores[index] + (scores[above] - scores[index]) / 2)


def _check_calibration(scores: NDArray[np.float64], target_fpr: float) -> None:
    if len(scores) == 0:
        msg = "cannot calibrate a threshold on zero SM events"
        raise UsageError(msg)
    if not np.all(np.isfinite(scores)):
        msg = "SM scores contain NaN or inf; cannot calibrate"
        raise UsageError(msg)
    if not 0 < target_fpr < 1:
        msg = f"target FPR must be in (0, 1), got {target_fpr}"
        raise UsageError(msg)


def _support_note(expected: float, target_fpr: float, n: int, what: str = "SM events") -> str:
    needed = int(np.ceil(MIN_EXPECTED / target_fpr))
    if expected >= MIN_EXPECTED:
        return f"supported: {expected:.0f} {what} expected above the threshold"
    if expected >= 1:
        return (f"statistically limited: only {expected:.1f} {what} expected above the threshold; "
                f"{needed} SM events would support it")
    return (f"sample too small: {n} SM events cannot resolve FPR {target_fpr:.2g} "
            f"(expected {expected:.2f} above); the threshold is the highest SM score, and "
            f"{needed} SM events would support it")


def threshold_for(scores: NDArray[np.floating[Any]], target_fpr: float, path: str = "",
                  events: str = "", weights: NDArray[np.floating[Any]] | None = None) -> ThresholdEstimate:
    """The threshold at which a fraction ``target_fpr`` of the SM ``scores`` is accepted; ``path`` and
    ``events`` say which scores of which SM events these are. With ``weights`` (one per event, e.g.
    ``trigger.stream_weights``), a fraction of the total weight (:func:`weighted_threshold_for`)."""
    if weights is not None:
        return weighted_threshold_for(scores, weights, target_fpr, path, events)
    scores = np.sort(np.asarray(scores, dtype=np.float64))
    n = len(scores)
    _check_calibration(scores, target_fpr)
    expected = target_fpr * n

    def at_count(count: float) -> float:
        # just above the score with `count` events strictly above it (that order statistic)
        return _between(scores, int(np.clip(np.ceil(n - count) - 1, 0, n - 1)))

    threshold = at_count(expected)
    spread = np.sqrt(expected * (1 - target_fpr))
    note = _support_note(expected, target_fpr, n)
    return ThresholdEstimate(
        target_fpr=target_fpr,
        threshold=threshold,
        threshold_low=at_count(expected + spread),
        threshold_high=at_count(max(expected - spread, 0.0)),
        achieved=rate_at(scores, threshold),
        expected_above=expected,
        supported=expected >= MIN_EXPECTED,
        note=note,
        path=path,
        events=events,
    )


def weighted_threshold_for(scores: NDArray[np.floating[Any]], weights: NDArray[np.floating[Any]], target_fpr: float,
                           path: str = "", events: str = "") -> ThresholdEstimate:
    """:func:`threshold_for` on weighted SM events: the threshold just above the lowest distinct score
    with at most ``target_fpr`` of the total weight above it. Its 68 % range comes from the spread of
    that weight (the square root of the sum of squared weights above); the achieved FPR's interval,
    its support and ``expected_above`` from effective counts (:func:`effective_count`)."""
    order = np.argsort(np.asarray(scores, dtype=np.float64), kind="stable")
    s, w = np.asarray(scores, np.float64)[order], np.asarray(weights, np.float64)[order]
    _check_calibration(s, target_fpr)
    if len(w) != len(s) or not np.all(np.isfinite(w)) or np.any(w < 0) or not w.sum() > 0:
        msg = "weights must be one finite, non-negative number per SM event, not all zero"
        raise UsageError(msg)
    distinct, first = np.unique(s, return_index=True)
    last = np.r_[first[1:], len(s)] - 1
    cumulative, cumulative_squares = np.cumsum(w), np.cumsum(w * w)
    above, above_squares = cumulative[-1] - cumulative[last], cumulative_squares[-1] - cumulative_squares[last]

    def at_weight(target: float) -> tuple[float, int]:
        k = int(np.argmax(above <= target * (1 + 1e-12)))  # the last distinct score has none above it
        threshold = float(distinct[k] + (distinct[k + 1] - distinct[k]) / 2) if k + 1 < len(distinct) else float(distinct[k])
        return threshold, k

    expected = target_fpr * cumulative[-1]
    threshold, k = at_weight(expected)
    spread = float(np.sqrt(above_squares[k]))
    achieved = rate_at(s, threshold, w)
    effective = achieved.effective_accepted or 0.0
    return ThresholdEstimate(
        target_fpr=target_fpr, threshold=threshold, threshold_low=at_weight(expected + spread)[0],
        threshold_high=at_weight(max(expected - spread, 0.0))[0], achieved=achieved, expected_above=effective,
        supported=effective >= MIN_EXPECTED,
        note=_support_note(effective, target_fpr, len(s), "effective SM events") + f" ({len(s)} weighted events)",
        path=path, events=events)


@dataclass(frozen=True)
class SharedRate:
    """Thresholds of several triggers whose OR accepts a target fraction of the background: each
    takes the same number of background events on its own (``each``), the OR ``either``."""

    thresholds: tuple[float, ...]
    each: int  # background events above each trigger's threshold (at most; ties can take fewer)
    either: RateEstimate  # the OR's accepted background count, total and Clopper-Pearson bounds


def shared_rate(backgrounds: list[NDArray[np.floating[Any]]], target_fpr: float) -> SharedRate:
    """Thresholds at which triggers scored on the same background events (one array each, event by
    event) accept at most ``target_fpr`` of them together: the most events each may take alone, in
    equal shares, so that their OR stays within the budget. A trigger accepts score > threshold."""
    scores = [np.asarray(b, np.float64) for b in backgrounds]
    n = len(scores[0]) if scores else 0
    if n == 0 or any(len(s) != n for s in scores) or not all(np.all(np.isfinite(s)) for s in scores):
        msg = "an OR's thresholds need finite scores of every trigger on the same, non-empty background"
        raise UsageError(msg)
    if not 0 < target_fpr < 1:
        msg = f"target FPR must be in (0, 1), got {target_fpr}"
        raise UsageError(msg)
    budget = int(np.floor(target_fpr * n))
    descending = [np.sort(s)[::-1] for s in scores]

    def at(each: int) -> tuple[tuple[float, ...], NDArray[np.bool_]]:
        cuts = tuple(float(d[min(each, n - 1)]) for d in descending)
        return cuts, np.logical_or.reduce([s > c for s, c in zip(scores, cuts, strict=True)])

    low_each, high_each = 0, budget  # the OR's count never falls as each takes more: bisect
    while low_each < high_each:
        middle = (low_each + high_each + 1) // 2
        low_each, high_each = (middle, high_each) if np.count_nonzero(at(middle)[1]) <= budget else (low_each,
                                                                                                    middle - 1)
    each = low_each
    cuts, either = at(each)
    k = int(np.count_nonzero(either))
    low, high = clopper_pearson(k, n)
    return SharedRate(cuts, each, RateEstimate(float("nan"), k, n, k / n, low, high))
