"""The run summary as the ``replay`` command prints it (``--json`` prints the summary itself)."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from trigger.contracts import RunSummary

__all__ = ("print_summary",)


def print_summary(summary: RunSummary) -> None:
    """The summary's counts, rates, latencies and what went wrong, a few lines for a person."""
    from trigger.rates import format_rate

    s = summary.as_dict()
    lat = s["batch_latency_ms"]
    check = {True: "OK", False: "VIOLATED", None: "not known (the source's count was lost)"}[s["accounting_ok"]]
    print(f"events in {s['events_in']:,} = decided {s['events_decided']:,} + quarantined "
          f"{s['events_quarantined']:,}: accounting {check}")
    print(f"accepted {s['events_accepted']:,} (accept rate {format_rate(s['accept_rate_hz_at_bx'])} at 40 MHz, "
          f"threshold {s['threshold']:.5g}: {s['working_point']['source']})")
    if s.get("accepted_by_no_seed") is not None:
        print(f"  of which {s['accepted_by_no_seed']:,} no seed of the {s['menu']} menu takes (pure; each accepted "
              f"event's seeds are in accepted.h5)")
    print(f"throughput {s['events_per_second']:,.0f} events/s in {s['wall_seconds']:.2f} s, "
          f"real-time factor {s['real_time_factor']:.4f} of 40 MHz ({s['workers']} workers, {s['mode']})")
    if lat["p50"] is not None:
        print(f"batch latency p50 {lat['p50']:.2f} ms, p90 {lat['p90']:.2f} ms, p99 {lat['p99']:.2f} ms, "
              f"max {lat['max']:.2f} ms (clock: {s.get('latency_clock', 'this host')})")
    scoring = s.get("batch_scoring_ms") or {}
    if scoring.get("p50") is not None:
        print(f"  of which the workers' scoring p50 {scoring['p50']:.2f} ms, p99 {scoring['p99']:.2f} ms, "
              f"max {scoring['max']:.2f} ms (the rest: waiting for a worker and moving the batch)")
    held = s.get("held_out")
    if held and held["trained_on_events"]:
        rate = held["held_out_accept_rate_hz_at_bx"]
        print(f"{held['trained_on_events']:,} of the {s['events_in']:,} events replayed were the model's training "
              f"or validation events, so the accept rate above is not a trigger rate; on the "
              f"{held['held_out_events']:,} held-out ones (its test split, never trained on): "
              + (f"{format_rate(rate)} ({held['held_out_accepted']:,} accepted)" if rate is not None else "none"))
    if s["reference_backend"] != "none":
        compared = s["reference_events"] / s["events_in"] if s["events_in"] else 0.0
        prescale = f", prescale {s['reference_prescale']}" if s["reference_prescale"] > 1 else ""
        print(f"reference {s.get('reference_model') or ''} ({s['reference_backend']}{prescale}): "
              f"{s['reference_events']:,} events compared ({compared:.1%}; {s['reference_skipped']:,} skipped, the "
              f"trigger path never waits for it), {s['reference_disagreements']} decisions differ "
              f"({s.get('reference_only_accepts', 0)} accepted by the reference only, "
              f"{s.get('trigger_only_accepts', 0)} by the trigger only)"
              + (f", largest score difference {s['reference_max_abs_score_difference']:.3g}"
                 if s.get("reference_twin", True) else ""))
    if s["mode"] == "paced":
        print(f"deadline misses: {s['deadline_misses']:,} events later than {s['deadline_s'] * 1000:.0f} ms")
    src = s["source"]
    restarts = s.get("restarts") or {}
    if src["resent_batches"] or src["workers_lost"] or s["duplicate_batches"] or restarts:
        restarted = "".join(f", {role} restarted {n}x" for role, n in restarts.items())
        print(f"recovered: {src['workers_lost']} worker(s) lost{restarted}, {src['resent_batches']} batch(es) "
              f"re-sent, {s['duplicate_batches']} duplicate(s) dropped")
    if s["quarantine_reasons"] or s["rejected_frames"]:
        print(f"quarantine: {s['quarantine_reasons']}; rejected frames: {s['rejected_frames']}")
    if src["interrupted"]:
        print(f"interrupted: {src['events_abandoned']} events in flight abandoned")
    if src.get("resumed_events"):
        print(f"resumed: {src['resumed_events']:,} events were decided before the run was continued")
