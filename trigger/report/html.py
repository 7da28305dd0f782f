"""The self-contained HTML page: tables from the collected dict, figures as base64 ``<img>``s.

No templates and no network: one string with inline CSS; every text is escaped.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from html import escape
from typing import Any

from trigger.report.inputs import RESOURCES
from trigger.report.level1 import menu_section, pileup_section
from trigger.report.markup import NA, image, model_name, note, number, table, verdict
from trigger.report.plots import figure_name
from trigger.thresholds import FPR_POINTS

__all__ = ("SECTIONS", "render_html")

#: section id -> heading, in page order
SECTIONS = {
    "inputs": "Inputs and working point",
    "performance": "Physics performance",
    "menu": "Level-1 menu view",
    "pileup": "Pileup",
    "combined": "Objects and calorimeter regions",
    "roc": "ROC curves",
    "scores": "Score distributions",
    "agreement": "Float vs fixed point",
    "firmware": "Firmware",
    "replay": "Replay",
    "comparison": "Model comparison",
    "sweep": "Architecture search",
}
CSS = """
body{font-family:system-ui,sans-serif;max-width:1200px;margin:2em auto;padding:0 1em;color:#222}
table{border-collapse:collapse;margin:.6em 0 1.2em;font-size:.9em}
th,td{border:1px solid #ccc;padding:.25em .6em;text-align:right}
th{background:#f0f0f0}td:first-child,th:first-child{text-align:left}
img{max-width:100%;border:1px solid #eee;margin:.3em}
.note{color:#555;font-size:.9em}.bad{color:#b00;font-weight:bold}.good{color:#070;font-weight:bold}
nav a{margin-right:1em}
"""


def _efficiency(point: dict[str, Any]) -> str:
    if point.get("tpr") is None:
        return NA
    text = f"{point['tpr']:.4f} [{point['tpr_low']:.4f}, {point['tpr_high']:.4f}]"
    return text if point["supported"] else text + " *"


def _variant_rows(data: dict[str, Any]) -> Iterable[tuple[str, str, dict[str, Any]]]:
    for label, model in data["models"].items():
        for variant, summary in model["variants"].items():
            yield model_name(label, model), variant, summary["signals"]


def _inputs(data: dict[str, Any]) -> str:
    wp = data["working_point"]
    rows = [(model_name(label, m), m["path"], m["architecture"], m["precision"],
             ", ".join(f"{v} {n:,}" for v, n in m["parameters"].items()), m["score_meaning"],
             f"{m['background_events']:,}: {m['background']}") for label, m in data["models"].items()]
    signals = [(name, s["file"], s["events"]) for name, s in data["signals"].items()]
    return (note(f"Working point: {wp['accept_rate']} of {wp['bx_rate']} bunch crossings, i.e. an SM "
                 f"false-positive rate of {wp['fpr']:.3g}. Background: {data['background_file']}.", "")
            + table(("model", "directory", "layers", "precision", "parameters", "score",
                     "held-out SM events"), rows)
            + table(("signal", "file", "events"), signals))


def _performance(data: dict[str, Any]) -> str:
    signals = list(data["signals"])
    rows = list(_variant_rows(data))
    def by_signal(cell: Callable[[dict[str, Any]], str]) -> str:
        return table(("model", "variant", *signals),
                     [(m, v, *(cell(s[n]) for n in signals)) for m, v, s in rows])

    auc = by_signal(lambda s: f"{s['auc']:.4f} ± {s['auc_error']:.4f}")
    wp = by_signal(lambda s: _efficiency(s["working_point"]))
    notes = sorted({s[n]["working_point"]["note"] for _, _, s in rows for n in signals
                    if not s[n]["working_point"]["supported"]})
    out = ("<h3>ROC AUC (Hanley-McNeil standard error)</h3>" + auc
           + f"<h3>Efficiency at the working point (FPR {data['working_point']['fpr']:.3g}), "
             "68 % Clopper-Pearson interval</h3>" + wp)
    if notes:
        out += note("* not supported by the SM statistics: " + "; ".join(n.rstrip(".") for n in notes)
                  + ". The intervals cover the signal statistics only.")
    supported = [f"{f:g}" for f in FPR_POINTS
                 if all(s[n]["tpr_at_fpr"][f"{f:g}"]["supported"] for _, _, s in rows for n in signals)]
    if supported:
        key = supported[-1]
        out += (f"<h3>Efficiency at FPR {key}, the lowest FPR the held-out SM events support</h3>"
                + by_signal(lambda s: _efficiency(s["tpr_at_fpr"][key])))
    return out


def _combined(data: dict[str, Any]) -> str:
    """Each object trigger with each region trigger: what each, their OR and each alone keeps at a shared rate."""
    views = data.get("combined")
    if not views:
        return note("No region model given (trigger train-regions; its files need CaloRegions): with one beside an "
                    "object model, this section shows their OR at a shared rate and what each keeps alone.")
    html = ""
    for view in views:
        head = f"{escape(view['objects'])} (objects) and {escape(view['regions'])} (regions)"
        if "signals" not in view:
            html += note(f"{head}: {escape(view['note'])}")
            continue
        cells = ("objects", "regions", "either", "both", "objects_only", "regions_only")
        rows = [(name, *(f"{100 * s[c]['eff']:.2f} % [{100 * s[c]['low']:.2f}, {100 * s[c]['high']:.2f}]"
                         for c in cells)) for name, s in view["signals"].items()]
        support = "" if view["supported"] else (" Statistically limited: fewer than 10 SM events are expected "
                                                "above each threshold; a larger held-out SM sample resolves it.")
        html += note(f"{head}, each deciding on its firmware at an equal share of FPR {view['fpr']:.3g} of the same "
                     f"{view['sm_events']:,} held-out SM events (events [{view['sm_span'][0]}, {view['sm_span'][1]}) "
                     f"of the SM file): {view['sm_each']} each, {view['sm_either']} by either.{support}")
        html += table(("signal", "objects", "regions", "OR", "both", "objects only", "regions only"), rows)
    return html


def _figures(images: dict[str, bytes], kind: str, names: Iterable[str]) -> str:
    return "".join(image(images, figure_name(kind, n), f"{kind} {n}") for n in names)


def _agreement(data: dict[str, Any], images: dict[str, bytes]) -> str:
    rows, checks, figures = [], [], []
    for label, model in data["models"].items():
        for pair, a in model["agreement"].items():
            rows.append((label, pair, a["events"], f"{a['identical_decisions']:.4%}", a["decisions_differ"],
                         a["scores_differ"], f"{a['max_abs_difference']:.3g}"))
        check = model["exactness"]
        if check:
            exact = verdict(check["csim_vs_emulator_exact"], "bit-exact", "NOT exact")
            checks.append(f"<h3>{escape(label)}: C-simulation vs emulator on {check['events']:,} held-out SM "
                          f"events: {exact}</h3>"
                          + table(("pair", "events", "scores differ", "decisions differ",
                                   "largest |difference|"),
                                  [(f"{p['first']} vs {p['second']}", p["events"], p["scores_differ"],
                                    p["decisions_differ"], f"{p['max_abs_difference']:.3g}")
                                   for p in check["pairs"]]))
        elif model["scatter"]:
            checks.append(note(f"{label}: C-simulation check not run (--check-events 0)."))
        figures.append(image(images, figure_name("agreement", label), f"agreement {label}"))
    if not rows:
        return note("No quantized model given: nothing to compare.")
    return (note("All held-out SM and signal events; each path decides at its own calibrated threshold "
                 "(the emulator at the quantized one).")
            + table(("model", "pair", "events", "identical decisions", "decisions differ", "scores differ",
                     "largest |difference|"), rows)
            + "".join(checks) + "".join(figures))


def _resource(fw: dict[str, Any], name: str) -> str:
    resources, fractions = fw.get("resources") or {}, fw.get("fractions") or {}
    if name == "BRAM_36K" and name not in resources and "BRAM_18K" in resources:
        name = "BRAM_18K"
    if name not in resources:
        return NA
    share = f" ({fractions[name]:.2%})" if name in fractions else ""
    return f"{resources[name]:,}{share}" + (" 18K" if name == "BRAM_18K" else "")


def _firmware(data: dict[str, Any]) -> str:
    rows, extra = [], []
    for label, model in data["models"].items():
        fw = model["firmware"]
        if fw["source"] is None:
            rows.append((label, fw["label"], *(["–"] * (4 + len(RESOURCES)))))  # noqa: RUF001  (an en dash)
            continue
        rows.append((label, fw["label"], fw.get("part") or NA, number(fw.get("clock_ns")),
                     number(fw.get("latency_cycles")), number(fw.get("latency_ns")),
                     *(_resource(fw, r) for r in RESOURCES)))
        if fw.get("rtl_check"):
            rtl = fw["rtl_check"]
            scope = ("score and decision in the RTL" if fw.get("includes_decision")
                     else "network only: the score and decision are not in the RTL")
            extra.append(note(f"{label}: RTL simulation ({rtl.get('simulator')}) on {rtl.get('events')} "
                              f"events ({scope}): scores differ in {rtl.get('scores_differ', NA)}, decisions in "
                              f"{rtl.get('decisions_differ', NA)} ({rtl.get('mismatches')} events differ).", ""))
        if fw.get("targets"):
            extra.append(table(("target", "limit", "value", "met"),
                               [(t.get("name"), t.get("limit"), t.get("value"), number(t.get("met")))
                                for t in fw["targets"]]))
        if fw.get("timing"):
            t = fw["timing"]
            extra.append(note(f"{label}: Vivado timing WNS {t['wns_ns']} ns, WHS {t['whs_ns']} ns: "
                              f"{'met' if t['met'] else 'NOT met'}.", ""))
    header = ("model", "source", "part", "clock [ns]", "latency [cycles]", "latency [ns]",
              *(f"{r} (% of part)" for r in RESOURCES))
    return table(header, rows) + "".join(extra)


def _replay(data: dict[str, Any], images: dict[str, bytes]) -> str:
    replay = data["replay"]
    if replay is None:
        return note("No replay run given (--replay RUN_DIR).")
    s, acc = replay["summary"], replay["accounting"]
    lat = s["batch_latency_ms"]
    rows = [
        ("run", f"{replay['run_dir']}: {s['rate']} ({s['mode']}), {s['workers']} workers"),
        ("model and threshold", f"{s['model']}, score > {s['threshold']:.6g}"),
        ("events in / decided / quarantined / accepted",
         " / ".join(f"{s[k]:,}" for k in ("events_in", "events_decided", "events_quarantined",
                                          "events_accepted"))),
        ("throughput", f"{s['events_per_second']:,.0f} events/s over {s['wall_seconds']:.3g} s"),
        ("real-time factor", f"{s['real_time_factor']:.4g} (target {s['target_rate_hz']:.4g} Hz)"),
        ("accept rate at the bunch-crossing rate", f"{s['accept_rate_hz_at_bx']:.4g} Hz"),
        ("batch latency p50 / p90 / p99 / max",
         " / ".join("n/a" if lat[k] is None else f"{lat[k]:.3g}" for k in ("p50", "p90", "p99", "max")) + " ms"),
        ("deadline misses", f"{s['deadline_misses']:,}"),
        ("reference disagreements",
         f"{s['reference_disagreements']:,} of {s['reference_events']:,} events ({s['reference_backend']})"),
        ("quarantine reasons", ", ".join(f"{k}: {v}" for k, v in s["quarantine_reasons"].items()) or "none"),
    ]
    if acc["reported_ok"] is None:  # rebuilt from the journal: the source's count of events read died with it
        invariant = note(f"Accounting invariant not known: {s.get('note') or 'the source did not report its count'}. "
                         f"{acc['decided_plus_quarantined']:,} events were decided or quarantined before it stopped.")
    else:
        holds = acc["holds"] and acc["reported_ok"]
        invariant = (f"<p>Accounting invariant events in = decided + quarantined: {acc['events_in']:,} vs "
                     f"{acc['decided_plus_quarantined']:,} (run reports accounting_ok={acc['reported_ok']}): "
                     + verdict(holds, "holds", "VIOLATED") + "</p>")
    figure = note("No batch_latency_ms.npy in the run: no latency histogram.")
    if replay["latency_histogram"]:
        figure = image(images, figure_name("replay_latency"), "replay batch latency")
    return table(("quantity", "value"), rows) + invariant + figure


def _comparison(data: dict[str, Any], images: dict[str, bytes]) -> str:
    if not data["comparison"]:
        return note("One model given: nothing to compare.")
    signals = list(data["signals"])
    rows = [(r["model"] + (f" ({r['baseline']})" if r["baseline"] else ""), r["variant"], r["precision"],
             f"{r['parameters']:,}", f"{r['mean_auc']:.4f}",
             *(f"{r['tpr_at_wp'][n]:.4f}" for n in signals),
             f"{r['mean_tpr_at_wp']:.4f}" + ("" if r["wp_supported"] else " *"),
             number(r["lut"]), number(r["latency_ns"]), r["firmware_source"],
             ", ".join(c for c in ("parameters", "lut") if r.get(f"pareto_{c}")) or "no")
            for r in data["comparison"]["rows"]]
    header = ("model", "variant", "precision", "parameters", "mean AUC", *(f"TPR@WP {n}" for n in signals),
              "mean TPR@WP", "LUT", "latency [ns]", "firmware numbers", "Pareto-optimal in")
    return (table(header, rows) + note("* working point not supported by the SM statistics (see above).")
            + image(images, figure_name("comparison_pareto"), "Pareto plot") + _latency(data, images)
            + _only_reference(data))


def _latency(data: dict[str, Any], images: dict[str, bytes]) -> str:
    points = data["comparison"].get("latency")
    if not points:
        return ""
    rows = [(p["model"], p["variant"], p["path"], f"{p['latency_ns']:,.1f}", f"{p['mean_tpr_at_wp']:.4f}",
             f"{p['mean_auc']:.4f}", p["source"]) for p in points]
    header = ("model", "variant", "path", "latency per event [ns]", "mean TPR@WP", "mean AUC", "latency from")
    return ("<h3>Accuracy against latency</h3>" + table(header, rows)
            + note("FPGA: the pipeline's latency from the firmware numbers. CPU/GPU: the time per event of "
                   "scoring whole files in this report's run (batched; a throughput, not one event's latency).")
            + image(images, figure_name("comparison_latency"), "accuracy against latency"))


def _only_reference(data: dict[str, Any]) -> str:
    only = data["comparison"].get("only_reference")
    if not only or not only["rows"]:
        return ""
    signals = list(data["signals"])
    rows = [(f"{r['reference']}/{r['variant']}",
             *(f"{c['only_reference']:,} / {c['only_trigger']:,} / {c['both']:,}" if (c := r["signals"].get(n))
               else "n/a" for n in signals)) for r in only["rows"]]
    header = ("reference", *(f"{n}: only reference / only trigger / both" for n in signals))
    return ("<h3>Signal events only the reference catches</h3>"
            + note(f"Each at its own working-point threshold, against the trigger {only['trigger']}/{only['variant']} "
                   "(the firmware's decision), event by event on the same signal files.")
            + table(header, rows))


def _sweep(data: dict[str, Any], images: dict[str, bytes]) -> str:
    from firmware.sweep import point_name

    sweep = data.get("sweep")
    if not sweep:
        return note("No architecture search given (trigger report --sweep SWEEP_JSON, from trigger sweep).")
    trials = {t["number"]: t for t in sweep["trials"]}
    luts = {c["trial"]: c for c in sweep["checked"]}
    front = sorted((trials[n] for n in sweep["pareto"]), key=lambda t: t["cost"])
    rows = [(point_name(t), ", ".join(f"{k} {v}" for k, v in t["params"].items()), f"{t['efficiency']:.4f}",
             f"{t['cost']:,.0f}", number(t["latency_ns"]),
             f"{luts[t['number']]['LUT']:,}" if t["number"] in luts else NA) for t in front]
    header = ("trial or included model", "parameters", "mean efficiency at WP", "da4ml cost", "latency [ns]",
              "LUT (yosys)")
    return (note(f"{sweep['file']}: {len(trials)} trials of {sweep['base']}, {sweep['epochs']} epochs each, "
                 f"objectives: {'; '.join(sweep['objectives'])}; trained models included by name. "
                 "The Pareto front, by cost:")
            + table(header, rows) + image(images, figure_name("sweep"), "architecture search"))


def render_html(data: dict[str, Any], images: dict[str, bytes]) -> str:
    """The whole page as one string."""
    body = {
        "inputs": _inputs(data),
        "performance": _performance(data),
        "menu": menu_section(data),
        "pileup": pileup_section(data, images),
        "combined": _combined(data),
        "roc": note("Solid: quantized; dashed: float twin; dotted: firmware emulation. Dots: the working "
                    "point. Grey band: fewer than 10 held-out SM events above threshold.")
               + _figures(images, "roc", data["signals"]),
        "scores": _figures(images, "scores", data["models"]),
        "agreement": _agreement(data, images),
        "firmware": _firmware(data),
        "replay": _replay(data, images),
        "comparison": _comparison(data, images),
        "sweep": _sweep(data, images),
    }
    nav = "".join(f'<a href="#{key}">{escape(title)}</a>' for key, title in SECTIONS.items())
    sections = "".join(f'<section id="{key}"><h2>{escape(SECTIONS[key])}</h2>{html}</section>'
                       for key, html in body.items())
    title = escape(data["title"])
    return (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>{title}</title>'
            f"<style>{CSS}</style></head><body><h1>{title}</h1>"
            + note(f"Written {data['created']} by trigger {data['trigger_version']}. Every number on this page "
                   "is in report.json next to it.")
            + f"<nav>{nav}</nav>{sections}</body></html>\n")
