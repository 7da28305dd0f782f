"""``write_report``: collect the numbers, draw the figures and write the report directory."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from models.artifact import Artifact, load_artifact
from trigger.errors import UsageError
from trigger.report.collect import collect
from trigger.report.html import render_html
from trigger.report.plots import render_all

__all__ = ("prepare_out_dir", "write_report")


def prepare_out_dir(out_dir: Path, overwrite: bool) -> None:
    """Create ``out_dir``; a non-empty one is refused unless ``overwrite`` (then old report files go)."""
    if out_dir.exists() and not out_dir.is_dir():
        raise UsageError(f"{out_dir}: exists and is not a directory")
    if out_dir.is_dir() and any(out_dir.iterdir()):
        if not overwrite:
            raise UsageError(f"{out_dir}: directory is not empty; use --overwrite to replace its report")
        for old in (*out_dir.glob("*.png"), out_dir / "report.html", out_dir / "report.json"):
            old.unlink(missing_ok=True)
    out_dir.mkdir(parents=True, exist_ok=True)


def _json_default(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def write_report(out_dir: str | Path, models: Sequence[str | Path | Artifact], background: str | Path,
                 signals: Sequence[str | Path], *, replay: str | Path | None = None,
                 firmware: Sequence[str | Path | None] = (), check_events: int = 2000,
                 accept_rate: str = "1kHz", bx_rate: str = "40MHz", max_events: int | None = None,
                 overwrite: bool = False, progress: Callable[[str], None] = print) -> Path:
    """Write ``report.html``, ``report.json`` and the PNG figures to ``out_dir``; return the page's path.

    ``models`` are artifact directories or loaded artifacts; ``firmware[i]`` belongs to
    ``models[i]`` (fewer entries, or None, mean no firmware information for those models).
    """
    out_dir = Path(out_dir)
    prepare_out_dir(out_dir, overwrite)
    progress(f"loading {len(models)} model(s)")
    artifacts = [m if isinstance(m, Artifact) else load_artifact(m) for m in models]
    data = collect(artifacts, background, signals, replay=replay, firmware=firmware,
                   check_events=check_events, accept_rate=accept_rate, bx_rate=bx_rate,
                   max_events=max_events, progress=progress)
    progress("drawing figures")
    images = render_all(data)
    data["images"] = sorted(images)
    for name, png in images.items():
        (out_dir / name).write_bytes(png)
    (out_dir / "report.json").write_text(json.dumps(data, indent=1, default=_json_default) + "\n")
    page = out_dir / "report.html"
    page.write_text(render_html(data, images), encoding="utf-8")
    return page
