"""Versions of the installed packages a file was made with, for its record."""

from __future__ import annotations

from collections.abc import Iterable
from importlib import metadata

__all__ = ("package_versions",)


def package_versions(names: Iterable[str]) -> dict[str, str]:
    """``{name: version}``, "not installed" for a package that is not."""
    versions = {}
    for name in names:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return versions
