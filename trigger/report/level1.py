"""The Level-1 view's sections: what the anomaly trigger keeps that no menu seed takes, and how pileup moves it."""

from __future__ import annotations

from typing import Any

from trigger.rates import format_rate
from trigger.report.markup import NA, image, interval, model_name, note, table
from trigger.report.plots import figure_name

__all__ = ("menu_section", "pileup_section")


def menu_section(data: dict[str, Any]) -> str:
    """Per model (the variant that decides as the trigger would), per signal: the trigger's, the
    menu's and the pure efficiency; on the SM events, the trigger's pure rate."""
    menu = data.get("menu")
    if not menu:
        return note("No L1 menu given (trigger report --menu run3, or a menu file): with one, this section "
                    "shows what the anomaly trigger keeps that no seed of the menu takes.")
    signals = list(data["signals"])
    rows = []
    for label, model in data["models"].items():
        variant = next((v for v in ("emulator", "quantized", "float") if v in model["variants"]),
                       model["default_variant"])
        summary = model["variants"][variant]
        if "menu_background" not in summary:
            continue
        cells = [" / ".join(interval(s["menu"][key]) for key in ("anomaly", "menu", "pure"))
                 if (s := summary["signals"].get(name)) and "menu" in s else NA for name in signals]
        sm = summary["menu_background"]
        rows.append((model_name(label, model), variant, *cells,
                     (f"{format_rate(sm['pure']['rate_hz'])} of {format_rate(sm['anomaly']['rate_hz'])} "
                     f"({sm['pure']['count']:,} of {sm['anomaly']['count']:,} events)")))
    header = ("model", "variant", *(f"{n}: trigger / menu / pure" for n in signals), "SM: pure rate of the trigger's")
    text = (f"L1 menu {menu['name']} ({menu['source']}: {', '.join(menu['seeds'])}), emulated on this project's "
            "objects. Per signal, at each model's working point: the fraction the anomaly trigger accepts, the "
            "fraction any seed accepts, and the pure fraction, accepted by the trigger and by no seed (68 % "
            "Clopper-Pearson intervals).")
    if menu.get("background_process") != "zerobias":
        text += (f" The SM events are {menu.get('background_process')!r}, not zero bias: their rates are fractions "
                 "of that sample times the bunch-crossing rate, not Level-1 rates.")
    return note(text) + table(header, rows)


def pileup_section(data: dict[str, Any], images: dict[str, bytes]) -> str:
    """A pileup scan (``trigger pileup-scan``): per ⟨μ⟩ and model, the threshold at the accept rate of
    that zero bias, its pure rate, the rate the stored threshold takes, and per signal the trigger's,
    the menu's and the pure efficiency."""
    scan = data.get("pileup")
    if not scan:
        return note("No pileup scan given (trigger report --pileup-scan SCAN_JSON, from trigger pileup-scan): "
                    "with one, this section shows each model at the same L1 rate at every pileup.")
    signals = list(dict.fromkeys(name for point in scan["points"] for m in point["models"].values()
                                 for name in m["signals"]))
    rows = []
    for point in scan["points"]:
        for name, model in point["models"].items():
            b, stored = model["background"], model["stored_threshold_rate_hz"]
            cells = [" / ".join(f"{100 * c[key]['fraction']:.2f} %" for key in ("anomaly", "menu", "pure"))
                     if (c := model["signals"].get(signal)) else NA for signal in signals]
            rows.append((f"{point['mu']:g}", name, f"{model['background_events']:,}", f"{model['threshold']:.4g}",
                         f"{format_rate(b['pure']['rate_hz'])} of {format_rate(b['anomaly']['rate_hz'])}",
                         NA if stored is None else format_rate(stored), *cells))
    header = ("<mu>", "model", "zero-bias events", "threshold", "pure rate", "stored threshold takes",
              *(f"{s}: trigger / menu / pure" for s in signals))
    rate = format_rate(scan["working_point_fpr"] * scan["bx_rate_hz"])
    text = (f"{scan['file']}: at each <mu>, each model's threshold takes {rate} of that <mu>'s zero bias, so the "
            f"models compare at the same L1 rate; menu {scan['menu'].get('name')}; pure = accepted by the model "
            "and by no seed. 'Stored threshold takes': the rate the model's own calibration, as deployed, "
            "takes at that pileup.")
    return note(text) + table(header, rows) + image(images, figure_name("pileup"), "efficiency against pileup")
