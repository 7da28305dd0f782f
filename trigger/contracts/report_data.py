"""``report.json``: every number the HTML report shows, so a report renders again without TensorFlow."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from trigger.contracts.record import Record

__all__ = ("MODEL_KEYS", "ReportData")

#: what each entry of ``models`` holds (``models.summary.model_summary``, with its firmware entry)
MODEL_KEYS = ("name", "variants", "default_variant", "parameters", "firmware", "background_events", "agreement")


@dataclass
class ReportData(Record):
    """Assembled by ``trigger.report.collect.assemble``, written and read by ``trigger.report.write``.

    ``models`` maps a label to a model's summary (``models.summary.model_summary`` plus its
    ``firmware`` entry); ``replay`` is the run's summary with its accounting and latency histogram,
    ``sweep`` an architecture search (``trigger.contracts.Sweep``), ``pileup`` a pileup scan
    (``trigger.contracts.PileupScan``), ``comparison`` the models side by side,
    ``menu`` the L1 menu whose view each model's variants carry (``menu``, ``menu_background``).
    """

    FORMAT = "trigger.report"
    VERSION = 2  # 2: menu

    title: str
    working_point: dict[str, Any]  # accept_rate, bx_rate, fpr, bx_rate_hz
    signals: dict[str, Any]  # name -> file and events
    models: dict[str, Any]
    created: str = ""
    trigger_version: str = ""
    background_file: str = ""
    comparison: dict[str, Any] | None = None
    replay: dict[str, Any] | None = None
    sweep: dict[str, Any] | None = None
    menu: dict[str, Any] | None = None  # the L1 menu (Menu.describe, background_process) of the Level-1 view
    combined: list[dict[str, Any]] | None = None  # object and region triggers' OR at a shared rate, per pair
    pileup: dict[str, Any] | None = None  # a pileup scan (trigger.contracts.PileupScan) and its file name
    images: list[str] = field(default_factory=list)  # the PNG figures beside report.json

    def problem(self) -> str | None:
        for label, model in self.models.items():
            if not isinstance(model, dict):
                return f"model {label!r} is not an object"
            missing = [key for key in MODEL_KEYS if key not in model]
            if missing:
                return f"model {label!r} lacks {', '.join(missing)}"
        return None
