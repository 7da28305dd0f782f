"""``build_report``: run each stage's summary for some models and write their report.

The report's numbers come from each stage: the models are scored (:mod:`models.summary`),
the firmware bundle and a fresh C-simulation checked and firmware results read
(:mod:`firmware.summary`), the replay run read from its folder.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from itertools import product
from pathlib import Path
from typing import TYPE_CHECKING, Any

from trigger.errors import UsageError

if TYPE_CHECKING:
    from numpy.typing import NDArray

    from models.region_artifact import TriggerModel

__all__ = ("build_report",)


def build_report(out_dir: str | Path, models: Sequence[str | Path | Any],
                 background: str | Path | Sequence[str | Path],
                 signals: Sequence[str | Path], *, replay: str | Path | None = None,
                 firmware: Sequence[str | Path | None] = (), sweep: str | Path | None = None,
                 pileup_scan: str | Path | None = None, menu: str | Path | None = None, check_events: int = 2000,
                 accept_rate: str = "1kHz", bx_rate: str = "40MHz", max_events: int | None = None,
                 overwrite: bool = False, progress: Callable[[str], None] = print) -> Path:
    """Run each stage's summary for ``models`` (artifact directories or loaded artifacts; ``firmware[i]``
    belongs to ``models[i]``) and write the report to ``out_dir``; return the page's path. ``menu``
    (a TOML file, or ``run3``) adds the Level-1 view: what the anomaly trigger keeps that no seed does;
    ``pileup_scan`` (``trigger pileup-scan --json``) how pileup moves it."""
    from firmware.summary import emulated_variant, firmware_info
    from models.artifact import Artifact
    from models.evaluate import read_signals
    from models.region_artifact import RegionArtifact, load_model
    from models.summary import model_summary
    from trigger.events import open_events
    from trigger.menu import load_menu
    from trigger.rates import fpr_for_rate, parse_rate
    from trigger.report.collect import assemble, distinct_labels
    from trigger.report.inputs import read_pileup_scan, read_replay, read_sweep
    from trigger.report.write import prepare_out_dir, write_report
    from trigger.schema import DATASET

    backgrounds = _checked(models, background, signals, firmware, menu, check_events)
    out_dir = Path(out_dir)
    prepare_out_dir(out_dir, overwrite)
    wp_fpr = fpr_for_rate(parse_rate(accept_rate), parse_rate(bx_rate))
    fw_dirs = [Path(d) if d is not None else None for d in firmware]
    fw_dirs += [None] * (len(models) - len(fw_dirs))
    l1_menu = load_menu(menu) if menu is not None else None
    replay_info = read_replay(replay) if replay is not None else None
    sweep_info = read_sweep(sweep) if sweep is not None else None
    pileup_info = read_pileup_scan(pileup_scan) if pileup_scan is not None else None
    progress(f"loading {len(models)} model(s)")
    artifacts = [m if isinstance(m, Artifact | RegionArtifact) else load_model(m) for m in models]
    firmware_entries = [firmware_info(a, d) for a, d in zip(artifacts, fw_dirs, strict=True)]
    inputs = {reads: read_signals(signals, max_events, reads) for reads in {a.reads for a in artifacts} | {DATASET}}
    signal_events = inputs[DATASET]
    labels = distinct_labels([a.name for a in artifacts], [a.path for a in artifacts])
    summaries = {}
    for label, artifact, fw in zip(labels, artifacts, firmware_entries, strict=True):
        summaries[label] = model_summary(artifact, label, backgrounds, inputs[artifact.reads], wp_fpr, max_events,
                                         emulated_variant(artifact, check_events, progress), progress,
                                         l1_menu, parse_rate(bx_rate),
                                         signal_events if artifact.reads != DATASET else None)
        summaries[label]["firmware"] = fw
    combined = _or_views(list(zip(labels, artifacts, strict=True)), backgrounds, inputs, wp_fpr, max_events,
                         progress)
    files = {name: (Path(p), len(signal_events[name])) for name, p in zip(signal_events, signals, strict=True)}
    menu_info = None
    if l1_menu is not None:
        with open_events(backgrounds[0]) as events:
            menu_info = {**l1_menu.describe(), "background_process": str(events.attrs.get("process", "unknown"))}
    data = assemble(summaries, backgrounds, files, wp_fpr, accept_rate, bx_rate, replay_info, sweep_info, menu_info,
                    combined, pileup_info)
    progress("drawing figures")
    return write_report(out_dir, data)


def _checked(models: Sequence[Any], background: str | Path | Sequence[str | Path], signals: Sequence[str | Path],
             firmware: Sequence[Any], menu: Any, check_events: int) -> list[Path]:
    """The background files, once the arguments are known to make a report (else a :class:`UsageError`)."""
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
    backgrounds = [Path(background)] if isinstance(background, str | Path) else [Path(p) for p in background]
    if len(backgrounds) > 1 and menu is not None:
        msg = "the L1 menu view takes one --background file, not a weighted set"
        raise UsageError(msg)
    return backgrounds


def _or_views(models: list[tuple[str, TriggerModel]], backgrounds: list[Path],
              inputs: dict[str, dict[str, NDArray[Any]]], wp_fpr: float, max_events: int | None,
              progress: Callable[[str], None]) -> list[dict[str, Any]]:
    """Each region model beside each object model, both deciding on their firmware: their OR at the
    working point shared between them (``models.combined``) on the SM events neither trained on
    (one background file: a weighted set has no OR view yet)."""
    from firmware.bundle import bundle_for
    from models.background import held_out_span
    from models.combined import or_of_triggers
    from trigger.events import open_events
    from trigger.schema import DATASET, REGIONS_DATASET

    firmware = [(label, model) for label, model in models if "quantized" in model.variants]
    views: list[dict[str, Any]] = []
    if len(backgrounds) > 1:
        return views
    background = backgrounds[0]
    with open_events(background) as events:
        for (object_label, objects), (region_label, regions) in product(firmware, firmware):
            if objects.reads != DATASET or regions.reads != REGIONS_DATASET:
                continue
            (a, b, _), (c, d, _) = (held_out_span(m, background, events.n_events, max_events) for m in (objects, regions))
            start, stop = max(a, c), min(b, d)
            view: dict[str, Any] = {"objects": object_label, "regions": region_label, "sm_span": [start, stop]}
            if stop - start < 1:
                views.append({**view, "note": "no SM event of the file is held out from both models"})
                continue
            progress(f"the OR of {object_label} and {region_label} on {stop - start} held-out SM events")
            first, second = bundle_for(objects), bundle_for(regions)
            sm = (first.scores(events.read(start, stop)), second.scores(events.read_regions(start, stop)))
            signals = {name: (first.scores(particles), second.scores(inputs[REGIONS_DATASET][name]))
                       for name, particles in inputs[DATASET].items()}
            views.append({**view, **or_of_triggers(sm, signals, wp_fpr, names=("objects", "regions"))})
    return views
