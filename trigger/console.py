"""What every command line of the project shares: the ``--help`` formatter."""

from __future__ import annotations

import argparse

__all__ = ("HelpFormatter",)


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter, argparse.RawDescriptionHelpFormatter):
    """``--help`` shows defaults that mean something (not None/False) and keeps examples as written."""

    def _get_help_string(self, action: argparse.Action) -> str:
        if action.default in (None, False, argparse.SUPPRESS):
            return action.help or ""
        return super()._get_help_string(action) or ""
