"""``build_report``: run each stage's summary for some models and write their report.

The report's numbers come from each stage: the models are scored (:mod:`models.summary`),
the firmware bundle and a fresh C-simulation checked and firmware results read
(:mod:`firmware.summary`), the replay run read from its folder.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from trigger.errors import UsageError

__all__ = ("build_report",)


def build_report(out_dir: str | Path, models: Sequence[str | Path | Any], background: str | Path,
                 signals: Sequence[str | Path], *, replay: str | Path | None = None,
                 firmware: Sequence[str | Path | None] = (), sweep: str | Path | None = None,
                 menu: str | Path | None = None, check_events: int = 2000,
                 accept_rate: str = "1kHz", bx_rate: str = "40MHz", max_events: int | None = None,
                 overwrite: bool = False, progress: Callable[[str], None] = print) -> Path:
    """Run each stage's summary for ``models`` (artifact directories or loaded artifacts; ``firmware[i]``
    belongs to ``models[i]``) and write the report to ``out_dir``; return the page's path. ``menu``
    (a TOML file, or ``run3``) adds the Level-1 view: what the anomaly trigger keeps that no seed does."""
    from firmware.summary import emulated_variant, firmware_info
    from models.artifact import Artifact, load_artifact
    from models.evaluate import read_signals
    from models.summary import model_summary
    from trigger.events import open_events
    from trigger.menu import load_menu
    from trigger.rates import fpr_for_rate, parse_rate
    from trigger.report.collect import assemble, distinct_labels
    from trigger.report.inputs import read_replay, read_sweep
    from trigger.report.write import prepare_out_dir, write_report

    if not models or not signals:
        msg = "a report needs at least one model and one signal file"
        raise UsageError(msg)
    if len(firmware) > len(models):
        msg = (
            f"{len(firmware)} --firmware directories for {len(models)} models; give at "
            "most one per --model, in the same order"
        )
        raise UsageError(msg)
    if check_events < 0:
        msg = "--check-events must be >= 0"
        raise UsageError(msg)
    out_dir = Path(out_dir)
    prepare_out_dir(out_dir, overwrite)
    wp_fpr = fpr_for_rate(parse_rate(accept_rate), parse_rate(bx_rate))
    fw_dirs = [Path(d) if d is not None else None for d in firmware]
    fw_dirs += [None] * (len(models) - len(fw_dirs))
    l1_menu = load_menu(menu) if menu is not None else None
    replay_info = read_replay(replay) if replay is not None else None
    sweep_info = read_sweep(sweep) if sweep is not None else None
    progress(f"loading {len(models)} model(s)")
    artifacts = [m if isinstance(m, Artifact) else load_artifact(m) for m in models]
    firmware_entries = [firmware_info(a, d) for a, d in zip(artifacts, fw_dirs, strict=True)]
    signal_events = read_signals(signals, max_events)
    labels = distinct_labels([a.config.model.name for a in artifacts], [a.path for a in artifacts])
    summaries = {}
    for label, artifact, fw in zip(labels, artifacts, firmware_entries, strict=True):
        summaries[label] = model_summary(artifact, label, background, signal_events, wp_fpr, max_events,
                                         emulated_variant(artifact, check_events, progress), progress,
                                         l1_menu, parse_rate(bx_rate))
        summaries[label]["firmware"] = fw
    files = {name: (Path(p), len(signal_events[name])) for name, p in zip(signal_events, signals, strict=True)}
    menu_info = None
    if l1_menu is not None:
        with open_events(background) as events:
            menu_info = {**l1_menu.describe(), "background_process": str(events.attrs.get("process", "unknown"))}
    data = assemble(summaries, background, files, wp_fpr, accept_rate, bx_rate, replay_info, sweep_info, menu_info)
    progress("drawing figures")
    return write_report(out_dir, data)
