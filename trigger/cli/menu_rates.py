"""``trigger menu-rates``: each seed's and the emulated L1 menu's total rate on a sample.

A rate is the fraction of the sample's events a seed fires on times the crossing rate, with its
68 % Clopper-Pearson interval. It is an L1 rate only on zero-bias events: on a lepton-filtered
sample (``sm-cocktail``) it is the fraction of *those* events, scaled, and the table says so.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from trigger.events import open_events
from trigger.menu import FILLED_BX_RATE_HZ, load_menu, rate_table
from trigger.rates import format_rate, parse_rate

if TYPE_CHECKING:
    from numpy.typing import NDArray

    from trigger.menu import Menu, SeedRate

__all__ = ("add_arguments", "file_bits", "format_rates", "run")


def add_arguments(parser: argparse.ArgumentParser, name: str) -> None:
    parser.epilog = (f"The crossing rate defaults to 40MHz, the scale the anomaly trigger's working point is "
                     f"set on; CMS quotes L1 rates at the filled bunches' {format_rate(FILLED_BX_RATE_HZ)} "
                     "(40 MHz x 2544/3564): pass --bx-rate 28.55MHz for that.")
    parser.add_argument("file", type=Path, metavar="FILE", help="HDF5 event file (zero bias for L1 rates)")
    parser.add_argument("--menu", default="run3", help="menu TOML file, or a bundled menu's name (run3)")
    parser.add_argument("--bx-rate", default="40MHz", help="bunch-crossing rate the fractions scale to")
    parser.add_argument("--max-events", type=int, default=None, help="cap events read")


def file_bits(menu: Menu, path: Path, max_events: int | None = None) -> tuple[dict[str, NDArray[np.bool_]], str]:
    """Each seed's bits and the menu's (``total``) on a file's events, and the file's process."""
    parts: dict[str, list[NDArray[np.bool_]]] = {seed.name: [] for seed in menu.seeds}
    with open_events(path) as events:
        process = str(events.attrs.get("process", "unknown"))
        for batch in events.iter_batches(stop=max_events):
            for name, fired in menu.fire(batch.particles).items():
                parts[name].append(fired)
    bits: dict[str, NDArray[np.bool_]] = {name: np.concatenate(chunks) if chunks else np.zeros(0, np.bool_)
                                          for name, chunks in parts.items()}
    total: NDArray[np.bool_] = np.zeros(len(next(iter(bits.values()))), np.bool_)
    for b in bits.values():
        total |= b
    return {**bits, "total": total}, process


def format_rates(table: list[SeedRate], bx_hz: float) -> str:
    lines = [f"{'seed':<16}{'fired':>10}{'fraction':>12}{'rate':>13}   68% CL (Clopper-Pearson)"]
    for r in table:
        lines.append(f"{r.name:<16}{r.fired:>10}{r.fired / r.total:>12.3e}{format_rate(r.rate_hz):>13}"
                     f"   [{format_rate(r.rate_low_hz)}, {format_rate(r.rate_high_hz)}]")
    lines.append(f"rate = fraction of {table[0].total} events x {format_rate(bx_hz)} crossings")
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    menu = load_menu(args.menu)
    bx_hz = parse_rate(args.bx_rate)
    bits, process = file_bits(menu, args.file, args.max_events)
    table = rate_table(bits, bx_hz)
    print(f"menu {menu.name} ({menu.source}) on {args.file} (process {process}); seeds are emulated on "
          "this project's stand-in objects, not CMS's")
    print(format_rates(table, bx_hz))
    if process != "zerobias":
        print(f"note: {process!r} is not zero bias; these are fractions of that (filtered) sample scaled "
              "to the crossing rate, not Level-1 rates")
    return 0


