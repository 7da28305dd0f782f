"""The trigger report: one self-contained HTML page, ``report.json`` and PNG figures.

``build`` runs the stages' summaries for a set of models (the one module here that loads
models and firmware), ``inputs`` reads the files the stages write (``trigger.contracts``),
``collect`` assembles the report dict, ``plots`` draws from that dict, ``html`` renders the
page and ``write`` puts them on disk, so a report renders again from its ``report.json``.
"""

from __future__ import annotations

from trigger.report.build import build_report
from trigger.report.collect import assemble
from trigger.report.write import prepare_out_dir, write_report

__all__ = ("assemble", "build_report", "prepare_out_dir", "write_report")


def __dir__() -> list[str]:
    return list(__all__)
