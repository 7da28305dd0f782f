"""``write_report``: draw the figures of a report dict and write the report directory."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from trigger.contracts import ReportData
from trigger.errors import UsageError
from trigger.report.html import render_html
from trigger.report.plots import render_all

__all__ = ("prepare_out_dir", "write_report")


def prepare_out_dir(out_dir: Path, overwrite: bool) -> None:
    """Create ``out_dir``; a non-empty one is refused unless ``overwrite`` (then old report files go)."""
    if out_dir.exists() and not out_dir.is_dir():
        msg = f"{out_dir}: exists and is not a directory"
        raise UsageError(msg)
    if out_dir.is_dir() and any(out_dir.iterdir()):
        if not overwrite:
            msg = f"{out_dir}: directory is not empty; use --overwrite to replace its report"
            raise UsageError(msg)
        for old in (*out_dir.glob("*.png"), out_dir / "report.html", out_dir / "report.json"):
            old.unlink(missing_ok=True)
    out_dir.mkdir(parents=True, exist_ok=True)


def write_report(out_dir: str | Path, data: dict[str, Any]) -> Path:
    """Write ``report.html``, ``report.json`` and the PNG figures of ``data`` (see
    :func:`trigger.report.collect.assemble`) into ``out_dir``, prepared by :func:`prepare_out_dir`;
    return the page's path."""
    out_dir = Path(out_dir)
    images = render_all(data)
    data = {**data, "images": sorted(images)}
    for name, png in images.items():
        (out_dir / name).write_bytes(png)
    record = {"format": ReportData.FORMAT, "version": ReportData.VERSION, **data}  # assembled here, this version
    ReportData.from_dict(record, out_dir / "report.json").save(out_dir / "report.json")
    page = out_dir / "report.html"
    page.write_text(render_html(data, images), encoding="utf-8")
    return page
