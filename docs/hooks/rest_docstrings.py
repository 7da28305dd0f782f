"""Griffe extension: the project's reST habits in docstrings, rendered as the Markdown the site reads.

The docstrings are written to be read in the source: Sphinx roles (``:class:`Name```), ``::``
before a literal block and simple tables framed by ``===`` lines. mkdocstrings renders Markdown,
where those come out as stray colons and a heading, so before rendering each docstring's roles
become code spans, a trailing ``::`` a colon, and a simple table a Markdown table. The source is
left as it is.
"""

from __future__ import annotations

import re
from typing import Any

import griffe

ROLE = re.compile(r":(?:py:)?(?:class|meth|func|attr|mod|obj|data|exc|const|ref|term):`~?([^`]+)`")
BORDER = re.compile(r"^(\s*)(=+)(\s+=+)+\s*$")


def _columns(border: str) -> list[tuple[int, int]]:
    return [(m.start(), m.end()) for m in re.finditer(r"=+", border)]


def _cells(line: str, spans: list[tuple[int, int]]) -> list[str]:
    cells = []
    for i, (start, _) in enumerate(spans):
        end = spans[i + 1][0] if i + 1 < len(spans) else len(line)
        cells.append(line[start:end].strip().replace("|", "\\|"))
    return cells


def tables(text: str) -> str:
    """Each reST simple table (border, header, border, rows, border) as a Markdown table."""
    lines, out, i = text.split("\n"), [], 0
    while i < len(lines):
        line = lines[i]
        if BORDER.match(line) and i + 2 < len(lines) and lines[i + 2].strip() == line.strip():
            spans, end = _columns(line), i + 3
            while end < len(lines) and lines[end].strip() != line.strip():
                end += 1
            if end < len(lines):
                header, rows = _cells(lines[i + 1], spans), [_cells(r, spans) for r in lines[i + 3:end] if r.strip()]
                indent = BORDER.match(line).group(1)  # type: ignore[union-attr]
                if out and out[-1].strip():
                    out.append("")
                out.append(indent + "| " + " | ".join(header) + " |")
                out.append(indent + "|" + "---|" * len(header))
                out += [indent + "| " + " | ".join(row) + " |" for row in rows]
                i = end + 1
                continue
        out.append(line)
        i += 1
    return "\n".join(out)


def markdown(text: str) -> str:
    """``text`` (a docstring) with its reST roles, ``::`` and simple tables made Markdown."""
    text = tables(text)
    text = ROLE.sub(lambda m: f"`{m.group(1)}`", text)
    text = re.sub(r"(?m)^\s*::\s*$", "", text)
    return re.sub(r"(?m)(\S)::\s*$", r"\1:", text)


class RestDocstrings(griffe.Extension):
    """Rewrites every docstring with :func:`markdown` as griffe loads it."""

    def on_instance(self, *, obj: griffe.Object, **kwargs: Any) -> None:  # noqa: ARG002
        if obj.docstring is not None:
            obj.docstring.value = markdown(obj.docstring.value)
