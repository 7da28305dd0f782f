"""The trigger report: one self-contained HTML page, ``report.json`` and PNG figures.

``inputs`` checks the files the stages write (the contracts), ``collect`` assembles the
report dict, ``plots`` draws from that dict, ``html`` renders the page and ``write`` puts
them on disk. Nothing here imports the models or the firmware: the numbers come from the
stages (``trigger report`` runs them), so a report renders again from its ``report.json``.
"""

from __future__ import annotations

from trigger.report.collect import assemble
from trigger.report.write import prepare_out_dir, write_report

__all__ = ("assemble", "prepare_out_dir", "write_report")


def __dir__() -> list[str]:
    return list(__all__)
