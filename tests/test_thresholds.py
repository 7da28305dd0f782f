from __future__ import annotations

import numpy as np
import pytest

from trigger.errors import UsageError
from trigger.rates import format_rate, fpr_for_rate, parse_rate
from trigger.thresholds import ThresholdEstimate, clopper_pearson, rate_at, threshold_for


@pytest.mark.parametrize("fpr", [1e-2, 1e-3, 2.5e-4])
def test_threshold_hits_the_requested_fpr(fpr: float) -> None:
    scores = np.random.default_rng(3).exponential(size=400_000)
    est = threshold_for(scores, fpr)
    assert est.supported
    assert est.achieved.fpr == pytest.approx(fpr, rel=1e-3)  # the count above is exact
    assert est.threshold == pytest.approx(-np.log(fpr), rel=0.05)  # exponential tail: P(>t) = e^-t
    assert est.threshold_low < est.threshold < est.threshold_high
    fresh = np.random.default_rng(4).exponential(size=400_000)
    check = rate_at(fresh, est.threshold)  # on independent events, within the statistics
    assert abs(check.accepted - fpr * len(fresh)) < 5 * np.sqrt(fpr * len(fresh))


def test_small_samples_are_flagged_not_trusted() -> None:
    scores = np.random.default_rng(0).normal(size=20_000)
    limited = threshold_for(scores, 2.5e-4)  # 5 expected
    assert not limited.supported and "statistically limited" in limited.note
    tiny = threshold_for(scores, 2.5e-5)  # 0.5 expected
    assert not tiny.supported and "sample too small" in tiny.note and "400000" in tiny.note
    assert tiny.threshold == scores.max() and tiny.achieved.accepted == 0
    assert tiny.achieved.fpr_high > 2.5e-5  # the interval says how little is known


def test_clopper_pearson_matches_known_values() -> None:
    low, high = clopper_pearson(0, 10, level=0.95)
    assert low == 0.0 and high == pytest.approx(0.3085, abs=1e-4)
    low, high = clopper_pearson(5, 10, level=0.95)
    assert (low, high) == (pytest.approx(0.1871, abs=1e-4), pytest.approx(0.8129, abs=1e-4))
    with pytest.raises(ValueError, match=r"need 0 <= k <= n"):
        clopper_pearson(11, 10)


def test_rates_parse_and_map_to_fpr() -> None:
    assert parse_rate("1kHz") == 1e3 and parse_rate("40MHz") == 40e6 and parse_rate("2.5e3 Hz") == 2500
    assert fpr_for_rate(parse_rate("1kHz"), parse_rate("40MHz")) == pytest.approx(2.5e-5)
    assert format_rate(40e6) == "40 MHz"
    for bad in ("40", "fast", "-1kHz", "1 kB"):
        with pytest.raises(UsageError, match="rate"):
            parse_rate(bad)
    with pytest.raises(UsageError, match="at most the bunch-crossing rate"):
        fpr_for_rate(50e6, 40e6)


def test_threshold_lies_between_distinct_scores_when_they_tie() -> None:
    """Fixed-point scores tie often; the threshold is no SM score, so a tie cannot flip a decision."""
    scores = np.repeat(np.arange(1000, dtype=np.float64) / 64, 40)  # 40 events on each grid value
    est = threshold_for(scores, 0.01, path="emulator", events="test split")
    assert est.threshold not in set(scores.tolist())
    assert est.threshold == pytest.approx((scores[-400] + scores[-401]) / 2)  # between two adjacent values
    assert est.achieved.accepted == 400 and (est.path, est.events) == ("emulator", "test split")
    assert est.threshold_low <= est.threshold < est.threshold_high  # the spread may stay within one value
    assert ThresholdEstimate.from_dict(est.as_dict()) == est
    old = {k: v for k, v in est.as_dict().items() if k not in ("path", "events")}  # a thresholds.json of before
    assert ThresholdEstimate.from_dict(old).path == ""


def test_an_or_of_two_triggers_shares_the_rate_and_stays_within_it() -> None:
    from trigger.thresholds import shared_rate

    rng = np.random.default_rng(5)
    a = rng.normal(size=100_000)
    b = 0.5 * a + rng.normal(size=100_000)  # correlated: the OR takes fewer than twice each
    shared = shared_rate([a, b], 1e-3)
    taken_a, taken_b = a > shared.thresholds[0], b > shared.thresholds[1]
    assert shared.either.accepted == np.count_nonzero(taken_a | taken_b) <= 100
    assert np.count_nonzero(taken_a) == np.count_nonzero(taken_b) == shared.each
    assert np.count_nonzero((a > np.sort(a)[::-1][shared.each + 1]) | (b > np.sort(b)[::-1][shared.each + 1])) > 100
    assert 50 <= shared.each < 100 and shared.either.fpr_low < 1e-3 < shared.either.fpr_high + 1e-4
    same = shared_rate([a, a], 1e-3)  # one trigger twice: each takes the whole budget
    assert same.each == same.either.accepted == 100
    with pytest.raises(UsageError, match="same, non-empty background"):
        shared_rate([a, b[:10]], 1e-3)


def test_unit_weights_give_the_unweighted_threshold() -> None:
    scores = np.random.default_rng(2).normal(size=20_000)
    for fpr in (1e-2, 1e-3):
        plain, weighted = threshold_for(scores, fpr), threshold_for(scores, fpr, weights=np.ones(len(scores)))
        assert weighted.threshold == plain.threshold and weighted.achieved.accepted == plain.achieved.accepted
        assert weighted.achieved.effective_accepted == pytest.approx(plain.achieved.accepted)
        assert weighted.achieved.fpr_low == pytest.approx(plain.achieved.fpr_low, rel=1e-6)


def test_an_oversampled_rare_process_sets_the_rate_of_the_stream() -> None:
    """A stream of two processes whose tail is the rare one's (1 % of events, shifted by 3): 20,000 of
    each, weighted to their shares, set the rate of the stream as an unweighted sample does, with a far
    smaller error than 40,000 stream events give."""
    rng = np.random.default_rng(4)
    common, rare = rng.normal(size=20_000), rng.normal(3.0, 1.0, 20_000)
    codes = np.r_[np.full(20_000, 1, np.int8), np.full(20_000, 2, np.int8)]
    from trigger.stream_weights import stream_weights

    weights = stream_weights(codes, {"w": 0.99, "z": 0.01})  # codes 1 and 2 (trigger.generator.processes)
    assert weights[0] * 20_000 == pytest.approx(0.99 * 40_000) and weights.mean() == pytest.approx(1.0)
    fpr = 1e-3
    cut = threshold_for(np.r_[common, rare], fpr, weights=weights)
    stream = np.where(rng.random(4_000_000) < 0.01, rng.normal(3.0, 1.0, 4_000_000), rng.normal(size=4_000_000))
    assert rate_at(stream, cut.threshold).fpr == pytest.approx(fpr, rel=0.1)
    assert cut.achieved.fpr_low < fpr * 1.02 and cut.achieved.fpr_high > fpr * 0.98
    plain = threshold_for(stream[:40_000], fpr)  # the same number of events, unweighted
    assert cut.threshold_high - cut.threshold_low < 0.6 * (plain.threshold_high - plain.threshold_low)
    assert cut.supported and cut.achieved.effective_accepted > 3 * plain.achieved.accepted


def test_stream_weights_refuse_what_they_cannot_weigh() -> None:
    from trigger.stream_weights import stream_weights

    with pytest.raises(UsageError, match=r"process codes \[11\] are not among the stream's processes"):
        stream_weights(np.array([1, 2, 11]), {"w": 0.5, "z": 0.5})  # a signal (ato4l) among SM events
    with pytest.raises(UsageError, match="the background has no z events"):
        stream_weights(np.array([1, 1]), {"w": 0.5, "z": 0.5})
    with pytest.raises(UsageError, match="weights must be one finite, non-negative number per SM event"):
        threshold_for(np.arange(10.0), 0.1, weights=-np.ones(10))
