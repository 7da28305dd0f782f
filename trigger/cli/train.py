"""``trigger train``: train a model and its float twin on SM events into an artifact directory."""

from __future__ import annotations

import argparse
from pathlib import Path

from models.config import load_config

__all__ = ("add_arguments", "run")


def add_arguments(parser: argparse.ArgumentParser, name: str) -> None:
    parser.epilog = ("Example: trigger train --config models/configs/dense_ae.toml --data "
                     "data/sample/sm_cocktail.h5 --out runs/ae --set model.latent=4 "
                     "--set training.epochs=30")
    parser.add_argument("--config", type=Path, help="TOML configuration (default: built-in dense AE)")
    parser.add_argument("--data", type=Path, required=True, help="SM events (HDF5, ADC2021 layout)")
    parser.add_argument("--out", type=Path, required=True, help="artifact directory to write")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="TABLE.KEY=VALUE",
                        help="override a configuration value (JSON value), repeatable")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing artifact")


def run(args: argparse.Namespace) -> int:
    from models.train import train
    from trigger.errors import UsageError

    config = load_config(args.config, args.overrides)
    if args.out.exists() and any(args.out.iterdir()) and not args.overwrite:
        msg = f"{args.out} exists and is not empty; pass --overwrite to replace it"
        raise UsageError(msg)
    artifact = train(config, args.data, args.out)
    print(f"artifact written to {artifact.path} (models: {', '.join(artifact.variants)})")
    return 0
