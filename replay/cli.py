"""The ``replay`` command: the whole pipeline on one machine, or one role of it per host.

    replay --rate 40MHz-sim                       # bundled sample, default model, 2 workers
    replay --rate 100kHz --input sm.h5 --events 200000 --workers 2 --out runs/paced
    replay --resume runs/paced                    # continue a run whose processes died
    replay recover runs/paced                     # or rebuild its files and summary as they are
    replay source    --rate 40MHz-sim --input sm.h5 --bind 0.0.0.0:5555 --collector hostB:5558
    replay bundle    --model DIR BUNDLE_DIR    # once, where TensorFlow and hls4ml are installed
    replay worker    --bundle BUNDLE_DIR --source hostA:5555 --collector hostB:5558
    replay reference --bundle BUNDLE_DIR --source hostA:5555 --collector hostB:5558
    replay collector --bundle BUNDLE_DIR --bind 0.0.0.0:5558 --source hostA:5555 --out RUN_DIR

A bundle holds what the roles load (numpy files and JSON), so a worker host needs only the
replay's runtime: pip install "trigger-anomaly[replay]". Roles given --model instead build
the bundle themselves, which needs TensorFlow and hls4ml there.

Ports: the source binds PORT (tasks), PORT+1 (control) and PORT+2 (reference feed); the
collector binds its PORT (results). Roles on one host default to 127.0.0.1. Across hosts,
encrypt with CurveZMQ: on each host `replay keys KEY_DIR ROLE` makes that role's own key pair and
says which public key to copy where (secret keys never leave their host); then add
`--curve KEY_DIR` to every role.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from replay.config import ReplayConfig
from trigger.errors import TriggerError, UsageError

__all__ = ("exposure_warning", "main", "print_summary")

ROLES = {
    "source": "read and pace the events, hand batches to workers, re-send lost ones, write the summary",
    "worker": "score batches on the bit-exact emulated firmware path and decide (one thread: start one per core)",
    "reference": "score batches with the float twin (TensorFlow on a GPU, or numpy)",
    "collector": "join decisions with reference scores, write accepted events, account for every event",
}


def _host_port(text: str) -> tuple[str, int]:
    host, _, port = text.rpartition(":")
    if not host or not port.isdigit() or not 0 < int(port) < 65530:
        msg = f"expected HOST:PORT, got {text!r}"
        raise argparse.ArgumentTypeError(msg)
    return host, int(port)


def _rate_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--rate", default="40MHz-sim",
                        help="40MHz-sim: simulated 25 ns bunch-crossing clock, as fast as possible; "
                             "or a wall-clock rate (100kHz, 1MHz) with deadline-miss counting")
    parser.add_argument("--batch-size", type=int, default=ReplayConfig.batch_size,
                        help="events per batch (paced runs use less)")
    parser.add_argument("--deadline-ms", type=float, default=100.0,
                        help="paced runs: an event must be decided this long after its BX time")
    parser.add_argument("--reference-prescale", type=int, default=1, metavar="N",
                        help="send one batch in N to the reference path as well (it also skips batches "
                             "whenever it is busy: the trigger decision never waits for it)")


def _input_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--input", type=Path, action="append", metavar="FILE.h5",
                        help="events in the ADC2021 layout (repeatable; default: the bundled SM sample)")
    count = parser.add_mutually_exclusive_group()
    count.add_argument("--events", type=int, help="stop after N events (the inputs are cycled if needed)")
    count.add_argument("--loop", action="store_true", help="cycle the inputs until Ctrl-C")


def _working_point_options(parser: argparse.ArgumentParser) -> None:
    point = parser.add_mutually_exclusive_group()
    point.add_argument("--threshold", type=float, help="decide at this score threshold instead of the artifact's")
    point.add_argument("--accept-rate", metavar="RATE",
                       help="decide at the threshold for this accept rate (e.g. 2kHz), calibrated on the emulated "
                            "path's scores of held-out SM events of --calibration")
    parser.add_argument("--calibration", type=Path, metavar="SM.h5",
                        help="SM events for --accept-rate (default: the bundled SM sample; its held-out split "
                             "when it is the model's training file)")
    parser.add_argument("--bx-rate", default="40MHz", help="bunch-crossing rate for --accept-rate")


def _working_point(args: argparse.Namespace) -> Any:
    from replay.config import WorkingPoint

    if args.calibration is not None and args.accept_rate is None:
        msg = "--calibration is for --accept-rate"
        raise UsageError(msg)
    return WorkingPoint(args.threshold, args.accept_rate, args.bx_rate, args.calibration)


def build_parser() -> argparse.ArgumentParser:
    from trigger.console import HelpFormatter as fmt

    parser = argparse.ArgumentParser(prog="replay", formatter_class=fmt, description=(
        "Replay HDF5 event streams through the trigger decision path: a source, K workers running "
        "the bit-exact firmware emulator, a float reference path and a collector, over ZeroMQ. "
        "Without a role it runs the whole pipeline here."), epilog=__doc__.split("\n\n", 1)[1],
    )
    _rate_options(parser)
    _input_options(parser)
    parser.add_argument("--model", type=Path, help="model artifact directory (default: the bundled dense AE)")
    parser.add_argument("--workers", type=int, default=2, help="worker processes")
    _working_point_options(parser)
    parser.add_argument("--reference", type=Path, metavar="MODEL_DIR",
                        help="the reference path's model: any artifact's full-precision model, at its own "
                             "calibrated threshold (default: the trigger model's float twin); the summary counts "
                             "the events only it accepts and those only the trigger accepts")
    parser.add_argument("--reference-backend", default="auto", choices=("auto", "tensorflow", "numpy", "none"),
                        help="float reference path; auto = tensorflow when a GPU is visible (or the reference "
                             "has convolutions or attention), else numpy")
    parser.add_argument("--out", type=Path, help="run directory (default: runs/replay-DATE-TIME)")
    parser.add_argument("--transport", default="ipc", choices=("ipc", "tcp"), help="socket transport")
    parser.add_argument("--curve", action="store_true",
                        help="encrypt and authenticate with CurveZMQ, fresh keys for each role of this run, "
                             "none written (tcp only)")
    parser.add_argument("--json", action="store_true", help="print the summary as JSON")
    parser.add_argument("--quiet", action="store_true", help="no live progress line")
    parser.add_argument("--resume", type=Path, metavar="RUN_DIR",
                        help="continue the run in RUN_DIR with its recorded settings (run.json): the batches "
                             "its journal holds are counted, not replayed, so it ends as an uninterrupted run")
    roles = parser.add_subparsers(dest="role", metavar="ROLE", help="run one role (multi-host)")
    recover = roles.add_parser("recover", help="rebuild a run's files and summary from its journal",
                               description="write accepted.h5, quarantine.h5 and summary.json of a run that "
                                           "did not finish from the decisions its collector journaled")
    recover.add_argument("directory", type=Path, metavar="RUN_DIR")
    keys = roles.add_parser("keys", help="make this host's CurveZMQ key pair for one role",
                            description="write ROLE's CurveZMQ key pair into KEY_DIR (the secret one 0600, "
                                        "never to be copied) with servers/ and authorized_clients/ for the "
                                        "public keys of its peers, and print what to copy where")
    keys.add_argument("directory", type=Path, metavar="KEY_DIR")
    keys.add_argument("key_role", metavar="ROLE", choices=tuple(ROLES), help=", ".join(ROLES))
    bundle = roles.add_parser("bundle", help="write the model bundle that worker, reference and collector load",
                              description="read a model artifact once (TensorFlow, hls4ml) and write the "
                                          "numpy/JSON bundle the roles load without them", formatter_class=fmt)
    bundle.add_argument("directory", type=Path, metavar="BUNDLE_DIR")
    bundle.add_argument("--model", type=Path, help="model artifact directory (default: the bundled dense AE)")
    bundle.add_argument("--reference", type=Path, metavar="MODEL_DIR",
                        help="another artifact's full-precision model for the reference role (default: the float twin)")
    _working_point_options(bundle)
    for role, text in ROLES.items():
        sub = roles.add_parser(role, help=text, description=text, formatter_class=fmt)
        sub.add_argument("--curve", type=Path, metavar="KEY_DIR",
                         help=f"encrypt with the {role}'s CurveZMQ keys in KEY_DIR (see `replay keys`)")
        model = sub.add_mutually_exclusive_group()
        model.add_argument("--model", type=Path, help="model artifact directory (default: the bundled dense AE)")
        if role != "source":
            model.add_argument("--bundle", type=Path, metavar="BUNDLE_DIR",
                               help="a bundle written by `replay bundle` (no TensorFlow or hls4ml needed)")
        if role == "source":
            _rate_options(sub)
            _input_options(sub)
            sub.add_argument("--bind", type=_host_port, default="127.0.0.1:5555", help="HOST:PORT to bind")
            sub.add_argument("--collector", type=_host_port, required=True, help="the collector's HOST:PORT")
            sub.add_argument("--no-reference", action="store_true", help="no reference role will connect")
            sub.add_argument("--out", type=Path, help="where summary.json goes")
        else:
            sub.add_argument("--source", type=_host_port, required=True, help="the source's HOST:PORT")
        if role in ("worker", "reference"):
            sub.add_argument("--collector", type=_host_port, required=True, help="the collector's HOST:PORT")
        if role == "reference":
            sub.add_argument("--backend", default="auto", choices=("auto", "tensorflow", "numpy"))
        if role == "collector":
            sub.add_argument("--bind", type=_host_port, default="127.0.0.1:5558", help="HOST:PORT to bind")
            sub.add_argument("--out", type=Path, required=True, help="run directory for accepted events")
            sub.add_argument("--no-reference", action="store_true", help="no reference role will connect")
    return parser


def _config(args: argparse.Namespace) -> Any:
    from replay.config import parse_replay_rate

    return ReplayConfig(rate=parse_replay_rate(getattr(args, "rate", "40MHz-sim")),
                        batch_size=getattr(args, "batch_size", ReplayConfig.batch_size),
                        deadline_s=getattr(args, "deadline_ms", 100.0) / 1000,
                        reference_prescale=getattr(args, "reference_prescale", 1))


def _defaults(args: argparse.Namespace) -> None:
    """The bundled model and sample where a role needs them and none was given."""
    from trigger.sample import bundled_sample, default_model

    builds_bundle = args.role in (None, "bundle", "worker", "reference", "collector")
    if builds_bundle and args.model is None and getattr(args, "bundle", None) is None:
        args.model = default_model()
    if args.role in (None, "source") and not args.input:
        args.input = [bundled_sample().background]


def print_summary(summary: dict[str, Any]) -> None:
    from trigger.rates import format_rate

    s = summary
    lat = s["batch_latency_ms"]
    check = {True: "OK", False: "VIOLATED", None: "not known (the source's count was lost)"}[s["accounting_ok"]]
    print(f"events in {s['events_in']:,} = decided {s['events_decided']:,} + quarantined "
          f"{s['events_quarantined']:,}: accounting {check}")
    print(f"accepted {s['events_accepted']:,} (accept rate {format_rate(s['accept_rate_hz_at_bx'])} at 40 MHz, "
          f"threshold {s['threshold']:.5g}: {s['working_point']['source']})")
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


def _run_local(args: argparse.Namespace) -> int:
    from replay.pipeline import ReplayRun, load_run, run_replay

    if args.resume is not None:
        out, run = args.resume, load_run(args.resume)
    else:
        out = args.out or Path("runs") / time.strftime("replay-%Y%m%d-%H%M%S")
        if out.exists() and any(out.iterdir()):
            msg = f"{out} is not empty; choose another --out (or continue the run there with --resume {out})"
            raise UsageError(msg)
        run = ReplayRun(tuple(args.input), args.model, out, _config(args), args.events, args.loop, args.workers,
                        args.reference_backend, args.transport, args.curve, _working_point(args), args.reference)
    summary = run_replay(run, progress=None if args.quiet or args.json else sys.stderr,
                         resume=args.resume is not None)
    if args.json:
        print(json.dumps(summary, indent=1))
    else:
        print_summary(summary)
        print(f"summary: {out / 'summary.json'}; accepted events: {out / 'accepted.h5'}")
    return 0 if summary["accounting_ok"] else 1


def exposure_warning(host: str) -> str | None:
    """What to tell a role that binds ``host`` without CurveZMQ: None for loopback addresses."""
    import ipaddress

    if host == "localhost":
        return None
    try:
        if ipaddress.ip_address(host).is_loopback:
            return None
    except ValueError:
        pass  # a host name: reachable from elsewhere
    return (f"binding {host} without --curve: anyone who can reach this port can send or read events "
            "unencrypted; make keys with `replay keys KEY_DIR ROLE` on each host and add --curve KEY_DIR to every role")


def _endpoints(host_port: tuple[str, int], collector: tuple[str, int]) -> Any:
    from replay.config import Endpoints

    (host, port), (chost, cport) = host_port, collector
    return Endpoints(f"tcp://{host}:{port}", f"tcp://{host}:{port + 1}", f"tcp://{host}:{port + 2}",
                     f"tcp://{chost}:{cport}")


def _run_role(args: argparse.Namespace) -> int:
    from replay.paths import read_bundle, reference_backend, write_bundle

    if args.role == "keys":
        from replay.security import create_keys, key_instructions

        create_keys(args.directory, args.key_role)
        print(key_instructions(args.directory, args.key_role))
        return 0
    if args.role == "recover":
        from replay.pipeline import recover_run

        summary = recover_run(args.directory)
        print_summary(summary)
        print(f"{summary['note']}; summary: {args.directory / 'summary.json'}")
        return 0
    if args.role == "bundle":
        from replay.paths import apply_working_point
        from trigger.sample import bundled_sample

        write_bundle(args.model, args.directory, args.reference)
        manifest = apply_working_point(args.directory, _working_point(args), lambda: bundled_sample().background)
        print(f"bundle of {manifest['name']} written to {args.directory} (threshold {manifest['threshold']:.6g}: "
              f"{manifest['working_point']['source']}); copy it to the worker hosts")
        return 0
    from replay.security import Curve

    curve = Curve.load(args.curve, args.role) if args.curve else None
    if args.role in ("source", "collector") and curve is None:
        warning = exposure_warning(args.bind[0])
        if warning:
            print(f"replay {args.role}: warning: {warning}", file=sys.stderr)
    config = _config(args)
    out = getattr(args, "out", None) or Path("runs") / time.strftime(f"{args.role}-%Y%m%d-%H%M%S")
    bundle_dir = getattr(args, "bundle", None) or out / "model"
    if args.role != "source":
        bundle = read_bundle(bundle_dir) if getattr(args, "bundle", None) else write_bundle(args.model, bundle_dir)
    if args.role == "worker":
        from threadpoolctl import threadpool_limits

        from replay.worker import run_worker

        threadpool_limits(1)  # one BLAS thread: run a worker per core (several threads each ran at a third)

        ends = _endpoints(args.source, args.collector)
        def say(message: str) -> None:
            print(f"worker: {message}", file=sys.stderr, flush=True)

        print(f"worker: scored {run_worker(ends.tasks, ends.results, bundle_dir, config, curve=curve, say=say)} "
              "batches")
    elif args.role == "reference":
        from replay.reference import run_reference

        ends = _endpoints(args.source, args.collector)
        backend = reference_backend(args.backend, bundle)
        n = run_reference(ends.reference, ends.acks, ends.results, bundle_dir, backend, config, curve=curve)
        print(f"reference: scored {n} batches")
    elif args.role == "collector":
        from replay.collector import run_collector

        ends = _endpoints(args.source, args.bind)
        counts = run_collector(ends.results, ends.acks, out,
                               bundle["threshold"], None if args.no_reference else bundle["reference_threshold"],
                               config, curve=curve)
        print(json.dumps({k: v for k, v in counts.items() if k != "batch_latency_ms"}))
    else:
        return _run_source_role(args, config, out, curve)
    return 0


def _run_source_role(args: argparse.Namespace, config: Any, out: Path, curve: Any) -> int:
    from replay.pipeline import REMOTE, ReplayRun, summarize
    from replay.source import run_source
    from replay.stream import EventStream

    ends = _endpoints(args.bind, args.collector)
    stream = EventStream(args.input, config.effective_batch_size, args.events, args.loop)
    try:
        stats = run_source(ends, stream, config, reference=not args.no_reference, curve=curve)
    finally:
        stream.close()
    out.mkdir(parents=True, exist_ok=True)
    run = ReplayRun(tuple(args.input), args.model, out, config)
    summary = summarize(run, stats, {}, REMOTE)
    (out / "summary.json").write_text(json.dumps(summary, indent=1) + "\n")
    print_summary(summary)
    return 0 if summary["accounting_ok"] else 1


def main(argv: Sequence[str] | None = None) -> int:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    warnings.filterwarnings("ignore", message=".*keras.constraints.serialize", category=UserWarning)
    args = build_parser().parse_args(argv)
    try:
        if args.resume is not None and (args.role or args.input or args.model or args.out or args.events or args.loop):
            msg = "--resume takes the run's settings from RUN_DIR/run.json; give it alone (with --quiet or --json)"
            raise UsageError(msg)
        _defaults(args)
        return _run_role(args) if args.role else _run_local(args)
    except TriggerError as err:
        print(f"replay{' ' + args.role if args.role else ''}: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("replay: interrupted", file=sys.stderr)
        return 130
