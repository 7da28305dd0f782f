"""The trigger report: one self-contained HTML page, ``report.json`` and PNG figures.

``collect`` computes every number (pure data), ``plots`` draws from that data,
``html`` renders the page and ``write`` puts the three together on disk.
"""

from __future__ import annotations

from trigger.report.collect import collect
from trigger.report.write import write_report

__all__ = ("collect", "write_report")


def __dir__() -> list[str]:
    return list(__all__)
