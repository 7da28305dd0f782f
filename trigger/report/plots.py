"""The report's figures, drawn from the collected dict alone, as PNG bytes (matplotlib, Agg).

Figures are built with :class:`matplotlib.figure.Figure` (no pyplot state), so drawing
is safe from any thread and never opens a window. mplhep's CMS style is used if installed.
"""

from __future__ import annotations

import io
import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import matplotlib.style
import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.ticker import LogLocator, NullFormatter, StrMethodFormatter

__all__ = ("figure_name", "pileup_figure", "render_all", "sweep_figure")

LINESTYLES = {"quantized": "-", "float": "--", "emulator": ":"}
SIZE = (7.0, 5.0)
DPI = 110


def figure_name(kind: str, name: str = "") -> str:
    """File name of a figure: ``roc_ato4l.png``; unsafe characters become ``_``."""
    stem = f"{kind}_{name}" if name else kind
    return re.sub(r"[^A-Za-z0-9_.-]", "_", stem) + ".png"


@contextmanager
def _style() -> Iterator[None]:
    try:
        import mplhep  # optional styling; often not installed

        style: Any = mplhep.style.CMS
    except ImportError:
        style = {"axes.grid": True, "grid.alpha": 0.3, "font.size": 10, "legend.fontsize": 8}
    with matplotlib.style.context(style):
        yield


def _png(fig: Figure) -> bytes:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=DPI)
    return buffer.getvalue()


def _model_colors(data: dict[str, Any]) -> dict[str, str]:
    return {label: f"C{i % 10}" for i, label in enumerate(data["models"])}


def _wp_label(wp: dict[str, Any]) -> str:
    return f"working point {wp['accept_rate']} of {wp['bx_rate']} (FPR {wp['fpr']:.2g})"


def roc_figure(data: dict[str, Any], signal: str) -> Figure:
    """ROC of every model and variant for one signal, log-log, working point and statistics marked."""
    wp = data["working_point"]
    fig = Figure(figsize=(10.0, 5.0), layout="constrained")
    ax = fig.add_subplot()
    colors = _model_colors(data)
    resolvable = min(m["statistics"]["min_resolvable_fpr"] for m in data["models"].values())
    supported = max(m["statistics"]["min_supported_fpr"] for m in data["models"].values())
    n_sm = max(m["background_events"] for m in data["models"].values())
    low = min(resolvable, wp["fpr"] / 2)
    ax.axvspan(low, supported, color="0.85", alpha=0.6, lw=0,
               label=f"< 10 SM events above threshold ({n_sm} held-out SM events)")
    ax.plot([low, 1], [low, 1], color="0.5", lw=0.8, ls="-.", label="random (TPR = FPR)")
    for label, model in data["models"].items():
        for variant, summary in model["variants"].items():
            s = summary["signals"][signal]
            ax.plot(s["roc"]["fpr"], s["roc"]["tpr"], color=colors[label], ls=LINESTYLES.get(variant, "-"),
                    lw=1.6, label=f"{label} {variant} (AUC {s['auc']:.3f})")
            if variant == model["default_variant"] and s["working_point"]["tpr"]:
                ax.plot([wp["fpr"]], [s["working_point"]["tpr"]], "o", color=colors[label], ms=5)
    ax.axvline(wp["fpr"], color="crimson", lw=1.2, label=_wp_label(wp))
    ax.set(xscale="log", yscale="log", xlim=(low, 1), ylim=(max(low, 1e-4), 1.05),
           xlabel="SM false-positive rate (fraction of held-out SM events accepted)",
           ylabel=f"signal efficiency (TPR, {signal})", title=f"ROC: {signal} vs held-out SM")
    bx = wp["bx_rate_hz"]
    # matplotlib calls these with arrays (its stubs say ArrayLike, which declares no arithmetic)
    to_and_from_khz: tuple[Callable[[Any], Any], Callable[[Any], Any]] = (lambda f: f * bx / 1e3,
                                                                          lambda r: r * 1e3 / bx)
    top = ax.secondary_xaxis("top", functions=to_and_from_khz)
    top.set_xlabel(f"trigger accept rate at {wp['bx_rate']} [kHz]")
    ax.legend(loc="center left", bbox_to_anchor=(1.02, 0.5), fontsize=8)
    return fig


def score_figure(data: dict[str, Any], label: str) -> Figure:
    """Score distributions of SM and every signal for a model's default variant; the threshold line."""
    model = data["models"][label]
    variant = model["default_variant"]
    summary = model["variants"][variant]
    hist = summary["histogram"]
    edges = np.asarray(hist["edges"])
    fig = Figure(figsize=SIZE, layout="constrained")
    ax = fig.add_subplot()
    for i, (sample, counts) in enumerate(hist["counts"].items()):
        fraction = np.asarray(counts, np.float64) / hist["events"][sample]
        ax.stairs(fraction, edges, color="black" if i == 0 else f"C{i - 1}", lw=2.0 if i == 0 else 1.4,
                  label=f"{sample} ({hist['events'][sample]} events)")
    ax.axvline(summary["threshold"], color="crimson", ls="--", lw=1.2,
               label=f"threshold {summary['threshold']:.4g} ({data['working_point']['accept_rate']})")
    scale = hist.get("x_scale", "log" if hist["log_bins"] else "linear")  # report.json of earlier versions
    if scale == "symlog":
        ax.set_xscale("symlog", linthresh=hist["linthresh"])
        ax.set_xlim(edges[0], edges[-1])
    else:
        ax.set_xscale(scale)
    ax.set(yscale="log", xlabel=f"anomaly score: {model['score_meaning']} (dimensionless)",
           ylabel="fraction of events per bin", title=f"{label} ({variant}): score distributions")
    ax.legend(fontsize=8)
    return fig


def agreement_figure(data: dict[str, Any], label: str) -> Figure:
    """Quantized vs float-twin score per event, with both thresholds and the diagonal."""
    model = data["models"][label]
    agreement = model["agreement"]["quantized vs float"]
    fig = Figure(figsize=(6.0, 5.6), layout="constrained")
    ax = fig.add_subplot()
    values = []
    for i, (sample, points) in enumerate(model["scatter"].items()):
        ax.scatter(points["float"], points["quantized"], s=4, alpha=0.5, lw=0,
                   color="black" if i == 0 else f"C{i - 1}", label=sample, rasterized=True)
        values += points["float"] + points["quantized"]
    positive = min((v for v in values if v > 0), default=1e-6)
    low, high = positive, max([*values, positive * 10])
    log = min(values) > 0 and high / low > 100
    ax.plot([low, high], [low, high], color="0.4", lw=0.8, label="equal scores")
    ax.axvline(model["variants"]["float"]["threshold"], color="crimson", ls=":", lw=1,
               label="float threshold")
    ax.axhline(model["variants"]["quantized"]["threshold"], color="crimson", ls="--", lw=1,
               label="quantized threshold")
    scale = "log" if log else "linear"
    ax.set(xscale=scale, yscale=scale, xlabel="float-twin score (dimensionless)",
           ylabel="quantized (fixed-point) score (dimensionless)",
           title=f"{label}: identical decisions {agreement['identical_decisions']:.4%} "
                 f"of {agreement['events']} events")
    ax.legend(fontsize=8, markerscale=3)
    return fig


def latency_figure(replay: dict[str, Any]) -> Figure:
    """Histogram of per-batch latencies of the replay run, with its percentiles."""
    hist = replay["latency_histogram"]
    percentiles = replay["summary"]["batch_latency_ms"]
    fig = Figure(figsize=SIZE, layout="constrained")
    ax = fig.add_subplot()
    ax.stairs(hist["counts"], hist["edges_ms"], fill=True, alpha=0.6, label=f"{hist['batches']} batches")
    for (name, value), style in zip(percentiles.items(), ("-", "--", "-.", ":"), strict=False):
        if value is not None:  # None: not known (no batch's latency was recorded)
            ax.axvline(value, color="crimson", ls=style, lw=1, label=f"{name} {value:.3g} ms")
    summary = replay["summary"]
    ax.set(xscale="log" if hist["log_bins"] else "linear", yscale="log", xlabel="batch latency [ms]",
           ylabel="batches per bin", title=f"replay {summary['rate']} ({summary['mode']})")
    ax.legend(fontsize=8)
    return fig


def _pareto_panel(ax: Axes, rows: list[dict[str, Any]], cost: str, xlabel: str,
                  colors: dict[str, str]) -> None:
    have = [r for r in rows if r[cost] is not None]
    if not have:
        ax.text(0.5, 0.5, "no firmware resource numbers\n(no vendor report or estimate given)",
                ha="center", va="center", transform=ax.transAxes)
        ax.set(xlabel=xlabel, xticks=[])
        return
    for row in have:
        marker = "*" if row[f"pareto_{cost}"] else "o"
        ax.plot([row[cost]], [row["mean_tpr_at_wp"]], marker, ms=11 if marker == "*" else 7,
                color=colors[row["model"]], label=f"{row['model']} ({row['variant']})")
        ax.annotate(row["model"], (row[cost], row["mean_tpr_at_wp"]), textcoords="offset points",
                    xytext=(6, 4), fontsize=8)
    front = sorted((r[cost], r["mean_tpr_at_wp"]) for r in have if r[f"pareto_{cost}"])
    ax.step([c for c, _ in front], [g for _, g in front], where="post", color="0.4", lw=0.8, ls="--",
            label="Pareto front")
    ax.set(xscale="log", xlabel=xlabel)
    ax.xaxis.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0)))
    ax.xaxis.set_major_formatter(StrMethodFormatter("{x:,.0f}"))
    ax.xaxis.set_minor_formatter(NullFormatter())
    ax.margins(x=0.3, y=0.2)


def pareto_figure(data: dict[str, Any]) -> Figure:
    """Mean efficiency at the working point against model size and against LUTs."""
    rows = data["comparison"]["rows"]
    colors = _model_colors(data)
    fig = Figure(figsize=(11.0, 4.8), layout="constrained")
    left, right = fig.subplots(1, 2, sharey=True)
    _pareto_panel(left, rows, "parameters", "trained parameters", colors)
    _pareto_panel(right, rows, "lut", "LUTs (firmware)", colors)
    left.set_ylabel(f"mean signal efficiency at {data['working_point']['accept_rate']}")
    left.legend(fontsize=8, loc="best")
    fig.suptitle("efficiency vs cost (stars: Pareto-optimal)")
    return fig


def _path_marker(path: str) -> str:
    return "s" if path == "FPGA" else "^" if path.startswith("GPU") else "o"


def latency_accuracy_figure(data: dict[str, Any]) -> Figure:
    """Each model and path: mean efficiency at the working point and mean AUC against latency per
    event (the FPGA's from its firmware numbers; on a CPU or GPU, the scoring time per event measured
    in the report's run)."""
    points = data["comparison"]["latency"]
    colors = _model_colors(data)
    fig = Figure(figsize=(11.0, 4.8), layout="constrained")
    panels = fig.subplots(1, 2, sharex=True)
    for ax, key, ylabel in zip(panels, ("mean_tpr_at_wp", "mean_auc"),
                               (f"mean signal efficiency at {data['working_point']['accept_rate']}", "mean AUC"),
                               strict=True):
        for p in points:
            ax.plot([p["latency_ns"]], [p[key]], _path_marker(p["path"]), color=colors[p["model"]], ms=8)
            ax.annotate(f"{p['model']}/{p['variant']}", (p["latency_ns"], p[key]), textcoords="offset points",
                        xytext=(5, 3), fontsize=7)
        ax.set(xscale="log", xlabel="latency per event [ns]", ylabel=ylabel)
        ax.margins(x=0.25, y=0.15)
    paths = sorted({p["path"] for p in points}, key=lambda path: path != "FPGA")
    for path in paths:
        how = "pipeline latency, firmware numbers" if path == "FPGA" else "scoring time per event, measured"
        panels[0].plot([], [], _path_marker(path), color="0.3", label=f"{path}: {how}")
    panels[0].legend(fontsize=8, loc="best")
    fig.suptitle("accuracy vs latency, per model and path")
    return fig


def sweep_figure(sweep: dict[str, Any]) -> Figure:
    """An architecture search (``sweep.json``): every trial's cost and efficiency, the Pareto
    front, and the LUTs yosys counted on the front points it checked."""
    from firmware.estimate import LUT_BUDGET
    from firmware.sweep import point_name

    fig = Figure(figsize=(6.5, 4.5))
    ax = fig.add_subplot()
    trials = {t["number"]: t for t in sweep["trials"]}
    by_quantizer: dict[str, list[dict[str, Any]]] = {}
    for t in trials.values():
        if not t.get("artifact"):  # models measured beside the trials are named below
            by_quantizer.setdefault(t["params"].get("quantizer", "qkeras"), []).append(t)
    for (quantizer, group), marker in zip(sorted(by_quantizer.items()), "os^", strict=False):
        ax.scatter([t["cost"] for t in group], [t["efficiency"] for t in group], c="0.6", marker=marker,
                   label=f"{len(group)} {'HGQ' if quantizer == 'hgq' else 'QKeras'} trials")
    included = [t for t in trials.values() if t.get("artifact")]
    if included:
        ax.scatter([t["cost"] for t in included], [t["efficiency"] for t in included], c="C0", marker="D",
                   label="trained models, included")
        for t in included:
            ax.annotate(point_name(t), (t["cost"], t["efficiency"]), fontsize=7, color="C0",
                        textcoords="offset points", xytext=(4, -9))
    front = sorted((trials[n] for n in sweep["pareto"]), key=lambda t: t["cost"])
    ax.axvline(LUT_BUDGET, ls=":", c="0.5", label=f"LUT budget ({LUT_BUDGET:,}: 2 % of a VU9P)")
    ax.plot([t["cost"] for t in front], [t["efficiency"] for t in front], "o-", c="C3", label="Pareto front")
    for checked in sweep["checked"]:
        trial = trials.get(checked["trial"])
        if trial is not None:
            ax.annotate(f"{checked['LUT']:,} LUT", (trial["cost"], trial["efficiency"]), fontsize=7,
                        textcoords="offset points", xytext=(4, 4))
    ax.set_xlabel("da4ml cost (adder bits; about one LUT each)")
    ax.set_ylabel("mean signal efficiency at the working point")
    ax.set_title(f"trigger sweep of {sweep['base']} ({sweep['epochs']} epochs a trial)", fontsize=9)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def pileup_figure(scan: dict[str, Any]) -> Figure:
    """A pileup scan: per signal the trigger's (solid) and pure (dashed) efficiency of each model and
    the menu's (grey) against <mu>, and the rate each model's stored threshold takes there."""
    points = scan["points"]
    signals = list(dict.fromkeys(name for p in points for m in p["models"].values() for name in m["signals"]))
    models = list(dict.fromkeys(name for p in points for name in p["models"]))
    fig = Figure(figsize=(3.2 * (len(signals) + 1), 3.6))
    panels = fig.subplots(1, len(signals) + 1, squeeze=False)[0]
    floor = 1e-4  # an efficiency of 0 drawn at 0.01 %

    def series(model: str, signal: str | None, key: str) -> tuple[list[float], list[float]]:
        """<mu> and the model's ``key`` fraction of ``signal`` (or, with no signal, its stored threshold's rate)."""
        xs, ys = [], []
        for p in points:
            entry = p["models"].get(model)
            if entry is None or (signal is not None and signal not in entry["signals"]):
                continue
            value = entry[key] if signal is None else entry["signals"][signal][key]["fraction"]
            if value is not None:
                xs.append(p["mu"])
                ys.append(value)
        return xs, ys

    for ax, signal in zip(panels, signals, strict=False):
        for i, model in enumerate(models):
            for key, style in (("anomaly", "o-"), ("pure", "s--")):
                xs, ys = series(model, signal, key)
                ax.plot(xs, [100 * max(y, floor) for y in ys], style, color=f"C{i}",
                        label=f"{model} {'trigger' if key == 'anomaly' else 'pure'}")
        xs, ys = series(models[0], signal, "menu")
        ax.plot(xs, [100 * y for y in ys], ":", color="0.5", label="L1 menu")
        ax.set_yscale("log")
        ax.set_title(signal, fontsize=9)
        ax.set_xlabel("<mu>")
    panels[0].set_ylabel("efficiency [%]")
    panels[0].legend(fontsize=6)
    rates = panels[-1]
    for i, model in enumerate(models):
        xs, ys = series(model, None, "stored_threshold_rate_hz")
        rates.plot(xs, ys, "o-", color=f"C{i}", label=model)
    rates.axhline(scan["working_point_fpr"] * scan["bx_rate_hz"], color="0.5", ls=":", label="the accept rate")
    rates.set_yscale("log")
    rates.set_xlabel("<mu>")
    rates.set_title("rate its stored threshold takes [Hz]", fontsize=9)
    rates.legend(fontsize=6)
    fig.tight_layout()
    return fig


def render_all(data: dict[str, Any]) -> dict[str, bytes]:
    """Every figure the data supports: file name -> PNG bytes."""
    images: dict[str, bytes] = {}
    with _style():
        for signal in data["signals"]:
            images[figure_name("roc", signal)] = _png(roc_figure(data, signal))
        for label, model in data["models"].items():
            images[figure_name("scores", label)] = _png(score_figure(data, label))
            if model["scatter"]:
                images[figure_name("agreement", label)] = _png(agreement_figure(data, label))
        if data["replay"] and data["replay"]["latency_histogram"]:
            images[figure_name("replay_latency")] = _png(latency_figure(data["replay"]))
        if data["comparison"]:
            images[figure_name("comparison_pareto")] = _png(pareto_figure(data))
            if data["comparison"].get("latency"):
                images[figure_name("comparison_latency")] = _png(latency_accuracy_figure(data))
        if data.get("sweep"):
            images[figure_name("sweep")] = _png(sweep_figure(data["sweep"]))
        if data.get("pileup"):
            images[figure_name("pileup")] = _png(pileup_figure(data["pileup"]))
    return images
