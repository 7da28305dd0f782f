"""The page's building blocks: escaped tables, notes, embedded figures and number formats."""

from __future__ import annotations

import base64
from collections.abc import Iterable, Sequence
from html import escape
from typing import Any

__all__ = ("NA", "image", "interval", "model_name", "note", "number", "table", "verdict")

NA = "not available"


def number(value: Any, spec: str = ".4g") -> str:
    """A number as the tables show it (thousands separated; None is not available)."""
    if value is None:
        return NA
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return f"{value:,}"
    return format(value, spec)


def table(header: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    """An HTML table, every cell escaped."""
    head = "".join(f"<th>{escape(str(h))}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{escape(str(c))}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def note(text: str, css: str = "note") -> str:
    """A paragraph, escaped."""
    return f'<p class="{css}">{escape(text)}</p>'


def image(images: dict[str, bytes], name: str, alt: str) -> str:
    """The figure ``name`` of ``images`` embedded as base64, or nothing when it was not drawn."""
    if name not in images:
        return ""
    data = base64.b64encode(images[name]).decode("ascii")
    return f'<img src="data:image/png;base64,{data}" alt="{escape(alt)}" title="{escape(name)}">'


def verdict(ok: bool, good: str, bad: str) -> str:
    """``good`` in green or ``bad`` in red."""
    return f'<span class="{"good" if ok else "bad"}">{escape(good if ok else bad)}</span>'


def model_name(label: str, model: dict[str, Any]) -> str:
    """A model's label, with the baseline it reproduces when it is one."""
    return f"{label} ({model['baseline']})" if model["baseline"] else label


def interval(part: dict[str, Any]) -> str:
    """A fraction with its 68 % interval (``fraction``, ``low``, ``high``), in percent."""
    return f"{100 * part['fraction']:.2f} % [{100 * part['low']:.2f}, {100 * part['high']:.2f}]"
