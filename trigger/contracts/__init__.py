"""Every file one stage writes and another reads, as a versioned dataclass.

Each class writes and reads its file (:meth:`Record.save`, :meth:`Record.load`); the stage
that produces it builds the object, the stages that consume it load it, and nothing else
parses these files.

- ``firmware.json``: :class:`FirmwareManifest`, by ``firmware.bundle`` (``trigger calibrate``)
- ``bundle.json`` of a replay's ``model/``: :class:`ReplayManifest`, by ``replay.bundle``
- ``summary.json``: :class:`RunSummary`, by ``replay.pipeline``
- ``estimate.json``: :class:`Estimate`, by ``firmware.estimate``
- ``evaluation.json``: :class:`Evaluation`, by ``models.evaluate`` (``trigger evaluate --json``)
- ``sweep.json``: :class:`Sweep`, by ``firmware.sweep``
- ``pileup_scan.json``: :class:`PileupScan`, by ``models.pileup_scan`` (``trigger pileup-scan --json``)
- ``report.json``: :class:`ReportData`, by ``trigger.report``
"""

from __future__ import annotations

from trigger.contracts.bundles import FirmwareManifest, ReplayManifest
from trigger.contracts.record import Record, read_json_object
from trigger.contracts.report_data import ReportData
from trigger.contracts.results import Estimate, Evaluation, PileupScan, Sweep
from trigger.contracts.run_summary import RunSummary

__all__ = ("Estimate", "Evaluation", "FirmwareManifest", "PileupScan", "Record", "ReplayManifest", "ReportData",
           "RunSummary", "Sweep", "read_json_object")
