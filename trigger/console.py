"""What every command line of the project shares: the ``--help`` formatter, one module per verb,
and quiet library start-up."""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import warnings
from collections.abc import Mapping

__all__ = ("HelpFormatter", "add_verbs", "quiet_libraries")


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter, argparse.RawDescriptionHelpFormatter):
    """``--help`` shows defaults that mean something (not None/False) and keeps examples as written."""

    def _get_help_string(self, action: argparse.Action) -> str:
        if action.default in (None, False, argparse.SUPPRESS):
            return action.help or ""
        return super()._get_help_string(action) or ""


def add_verbs(subparsers: argparse._SubParsersAction[argparse.ArgumentParser], package: str,
              verbs: Mapping[str, tuple[str, str]]) -> None:
    """One subcommand per ``name -> (module, one-line help)``: module ``package.module`` gives its
    ``add_arguments(parser, name)``, its ``run(args)`` and optionally a longer ``DESCRIPTION``."""
    for name, (module_name, help_text) in verbs.items():
        module = importlib.import_module(f"{package}.{module_name}")
        parser = subparsers.add_parser(name, help=help_text, description=getattr(module, "DESCRIPTION", help_text),
                                       formatter_class=HelpFormatter)
        module.add_arguments(parser, name)
        parser.set_defaults(run=module.run)


def quiet_libraries() -> None:
    """TensorFlow's start-up log lines, Keras's harmless warning, when it serialises a QKeras
    layer, that the quantizer is not a constraint, and TensorFlow's notes that HGQ's functions were
    traced again for a new shape: noise on a command line."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    warnings.filterwarnings("ignore", message=".*keras.constraints.serialize", category=UserWarning)
    logging.getLogger("tensorflow").addFilter(lambda record: "triggered tf.function retracing" not in
                                              record.getMessage())
