"""Options and settings the ``replay`` command's parts share: rate, inputs, working point, hosts."""

from __future__ import annotations

import argparse
from pathlib import Path

from replay.config import Endpoints, ReplayConfig, WorkingPoint
from trigger.errors import UsageError
from trigger.sample import BACKGROUND, DEFAULT_MODEL

__all__ = ("DEFAULT_DEADLINE_MS", "MODEL_HELP", "add_input_options", "add_menu_option", "add_rate_options",
           "add_working_point_options",
           "defaults", "endpoints", "host_port", "replay_config", "working_point")

#: ``--model`` without a value: trigger.sample.default_model()
MODEL_HELP = f"model artifact directory (default: the bundled {DEFAULT_MODEL.name})"
DEFAULT_DEADLINE_MS = ReplayConfig.deadline_s * 1000


def host_port(text: str) -> tuple[str, int]:
    """``HOST:PORT`` (argparse type); a port that leaves room for the two above it."""
    host, _, port = text.rpartition(":")
    if not host or not port.isdigit() or not 0 < int(port) < 65530:
        msg = f"expected HOST:PORT, got {text!r}"
        raise argparse.ArgumentTypeError(msg)
    return host, int(port)


def add_rate_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--rate", default="40MHz-sim",
                        help="40MHz-sim: simulated 25 ns bunch-crossing clock, as fast as possible; "
                             "or a wall-clock rate (100kHz, 1MHz) with deadline-miss counting")
    parser.add_argument("--batch-size", type=int, default=ReplayConfig.batch_size,
                        help="events per batch (paced runs: at most a hundredth of the rate, so that a batch "
                             "leaves at least every 10 ms)")
    parser.add_argument("--deadline-ms", type=float, default=DEFAULT_DEADLINE_MS,
                        help="paced runs: an event must be decided this long after its BX time")
    parser.add_argument("--reference-prescale", type=int, default=1, metavar="N",
                        help="send one batch in N to the reference path as well (it also skips batches "
                             "whenever it is busy: the trigger decision never waits for it)")
    add_menu_option(parser)


def add_menu_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--menu", default=ReplayConfig.menu, metavar="NAME|FILE.toml",
                        help="emulated L1 menu whose seeds tag each accepted event in accepted.h5, and whose "
                             "untouched accepts the summary counts (bundled: run3; 'none': no tags)")


def add_input_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--input", type=Path, action="append", metavar="FILE.h5",
                        help=f"events in the ADC2021 layout (repeatable; default: the bundled SM sample, {BACKGROUND})")
    count = parser.add_mutually_exclusive_group()
    count.add_argument("--events", type=int, help="stop after N events (the inputs are cycled if needed)")
    count.add_argument("--loop", action="store_true", help="cycle the inputs until Ctrl-C")


def add_working_point_options(parser: argparse.ArgumentParser) -> None:
    point = parser.add_mutually_exclusive_group()
    point.add_argument("--threshold", type=float, help="decide at this score threshold instead of the artifact's")
    point.add_argument("--accept-rate", metavar="RATE",
                       help="decide at the threshold for this accept rate (e.g. 2kHz), calibrated on the emulated "
                            "path's scores of held-out SM events of --calibration")
    parser.add_argument("--calibration", type=Path, metavar="SM.h5",
                        help="SM events for --accept-rate (default: the bundled SM sample; its held-out split "
                             "when it is the model's training file)")
    parser.add_argument("--bx-rate", default="40MHz", help="bunch-crossing rate for --accept-rate")


def working_point(args: argparse.Namespace) -> WorkingPoint:
    if args.calibration is not None and args.accept_rate is None:
        msg = "--calibration is for --accept-rate"
        raise UsageError(msg)
    return WorkingPoint(args.threshold, args.accept_rate, args.bx_rate, args.calibration)


def replay_config(args: argparse.Namespace) -> ReplayConfig:
    """The settings given on the command line (a role without rate options: the defaults)."""
    from replay.config import parse_replay_rate

    return ReplayConfig(rate=parse_replay_rate(getattr(args, "rate", "40MHz-sim")),
                        batch_size=getattr(args, "batch_size", ReplayConfig.batch_size),
                        deadline_s=getattr(args, "deadline_ms", DEFAULT_DEADLINE_MS) / 1000,
                        reference_prescale=getattr(args, "reference_prescale", 1),
                        menu=_menu(getattr(args, "menu", ReplayConfig.menu)))


def _menu(text: str | None) -> str | None:
    return None if text is None or text.lower() == "none" else text


def endpoints(source: tuple[str, int], collector: tuple[str, int]) -> Endpoints:
    """The source at ``source`` binds PORT (tasks), PORT+1 (control) and PORT+2 (reference feed);
    the collector binds its PORT (results)."""
    (host, port), (chost, cport) = source, collector
    return Endpoints(tasks=f"tcp://{host}:{port}", control=f"tcp://{host}:{port + 1}",
                     reference=f"tcp://{host}:{port + 2}", results=f"tcp://{chost}:{cport}")


def defaults(args: argparse.Namespace, builds_bundle: bool, reads_input: bool) -> None:
    """The bundled model (for a part that builds the bundle and got none) and sample (for one that
    reads events and got none)."""
    from trigger.sample import bundled_sample, default_model

    if builds_bundle and args.model is None and getattr(args, "bundle", None) is None:
        args.model = default_model()
    if reads_input and not args.input:
        args.input = [bundled_sample().background]
