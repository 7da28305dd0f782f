"""Pythia8 stand-in events in the ADC2021 layout."""

from __future__ import annotations

from trigger.generator.processes import COCKTAIL, GENERATED, PROCESSES, get_process
from trigger.generator.run import GenerationPlan, GenerationResult, generate

__all__ = ("COCKTAIL", "GENERATED", "PROCESSES", "GenerationPlan", "GenerationResult", "generate", "get_process")
