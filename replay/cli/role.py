"""What the four network roles share (``replay source|worker|reference|collector``): their keys,
their model or bundle, and a warning when one binds an address others can reach unencrypted."""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from replay.cli.options import MODEL_HELP, defaults, host_port, replay_config
from replay.config import ReplayConfig
from trigger.contracts import ReplayManifest
from trigger.errors import UsageError

if TYPE_CHECKING:
    from replay.security import Curve

__all__ = ("ROLES", "RoleSetup", "add_role_arguments", "exposure_warning", "set_up")

#: role -> what it does (its ``--help``)
ROLES = {
    "source": "read and pace the events, hand batches to workers, re-send lost ones, write the summary",
    "worker": "score batches on the bit-exact emulated firmware path and decide (one thread: start one per core)",
    "reference": "score batches at full precision (the float twin, or the bundle's reference model) with "
                 "TensorFlow or numpy",
    "collector": "join decisions with reference scores, write accepted events, account for every event",
}


def add_role_arguments(parser: argparse.ArgumentParser, name: str) -> None:
    """``--curve``, the model (a role that scores or decides: or a bundle) and the addresses role
    ``name`` connects to."""
    parser.add_argument("--curve", type=Path, metavar="KEY_DIR",
                        help=f"encrypt with the {name}'s CurveZMQ keys in KEY_DIR (see `replay keys`)")
    if name == "source":  # it never loads the model
        parser.add_argument("--model", type=Path,
                            help="the model the workers run, named in the summary (default: \"the workers' bundle\")")
        parser.add_argument("--collector", type=host_port, required=True, help="the collector's HOST:PORT")
        return
    model = parser.add_mutually_exclusive_group()
    goes = "--out" if name == "collector" else f"runs/{name}-DATE-TIME"
    model.add_argument("--model", type=Path, help=f"{MODEL_HELP}; the bundle made from it goes to {goes}/model")
    model.add_argument("--bundle", type=Path, metavar="BUNDLE_DIR",
                       help="a bundle written by `replay bundle` (no TensorFlow or hls4ml needed)")
    parser.add_argument("--source", type=host_port, required=True, help="the source's HOST:PORT")
    if name != "collector":
        parser.add_argument("--collector", type=host_port, required=True, help="the collector's HOST:PORT")


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


@dataclass(frozen=True)
class RoleSetup:
    """A role's keys (None: unencrypted), settings, run folder and its bundle's manifest."""

    curve: Curve | None
    config: ReplayConfig
    out: Path
    bundle_dir: Path
    loaded: ReplayManifest | None  # None for the source role, which loads no model

    @property
    def manifest(self) -> ReplayManifest:
        """The bundle's manifest; every role but the source has one."""
        if self.loaded is None:
            msg = "the source role loads no model bundle"
            raise UsageError(msg)
        return self.loaded


def set_up(args: argparse.Namespace) -> RoleSetup:
    """The keys loaded (a role that binds without them is warned), the bundle read or written."""
    from replay.bundle import read_bundle, write_bundle
    from replay.security import Curve

    curve = Curve.load(args.curve, args.role) if args.curve else None
    if args.role in ("source", "collector") and curve is None:
        warning = exposure_warning(args.bind[0])
        if warning:
            print(f"replay {args.role}: warning: {warning}", file=sys.stderr)
    config = replay_config(args)
    out = getattr(args, "out", None) or Path("runs") / time.strftime(f"{args.role}-%Y%m%d-%H%M%S")
    bundle_dir = getattr(args, "bundle", None) or out / "model"
    if args.role == "source":
        return RoleSetup(curve, config, out, bundle_dir, None)
    defaults(args, builds_bundle=True, reads_input=False)
    manifest = read_bundle(bundle_dir) if getattr(args, "bundle", None) else write_bundle(args.model, bundle_dir)
    return RoleSetup(curve, config, out, bundle_dir, manifest)
