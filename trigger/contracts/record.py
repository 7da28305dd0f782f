"""The base of every cross-stage file: a dataclass that writes and reads itself as versioned JSON.

A file holds ``{"format": ..., "version": ..., <one key per field>}``. Reading checks the
format and version, that every field without a default is present, that no unknown key is,
and each value's type against the field's annotation (containers by their outer type, a
nested :class:`Record` field recursively), so a file another version wrote is a one-line
:class:`~trigger.errors.InputFileError` naming it instead of a ``KeyError`` three stages later.
Files written before records carried a version (they have no ``format`` key) read as version 1.
"""

from __future__ import annotations

import json
import types
import typing
from dataclasses import MISSING, asdict, dataclass, fields
from pathlib import Path
from typing import Any, ClassVar, Self

from trigger.errors import InputFileError

__all__ = ("Record", "read_json_object")

#: the annotation types whose values are checked as these Python types (bool is not an int here)
_SIMPLE: dict[object, tuple[type, ...]] = {
    int: (int,), float: (int, float), str: (str,), bool: (bool,), type(None): (type(None),),
    dict: (dict,), list: (list,), tuple: (list, tuple),
}


def read_json_object(path: Path) -> dict[str, Any]:
    """A JSON file holding one object, or a one-line error naming the file."""
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        raise InputFileError(path, "missing") from None
    except (OSError, UnicodeDecodeError, ValueError) as err:
        raise InputFileError(path, f"not readable JSON ({err})") from None
    if not isinstance(data, dict):
        raise InputFileError(path, f"expected a JSON object, found {type(data).__name__}")
    return data


def _matches(value: Any, hint: Any) -> bool:
    """Whether ``value`` (from JSON) fits the annotation ``hint`` at its outer level."""
    if hint is Any:
        return True
    origin = typing.get_origin(hint)
    if origin in (types.UnionType, typing.Union):
        return any(_matches(value, option) for option in typing.get_args(hint))
    if origin is typing.Literal:
        return value in typing.get_args(hint)
    python = _SIMPLE.get(origin or hint)
    if python is None:  # a nested Record: from_dict checks it
        return isinstance(value, dict)
    return isinstance(value, python) and not (isinstance(value, bool) and bool not in python)


@dataclass
class Record:
    """A versioned JSON file. Subclasses are dataclasses that set ``FORMAT`` and ``VERSION``."""

    FORMAT: ClassVar[str] = "trigger.record"
    VERSION: ClassVar[int] = 1

    def as_dict(self) -> dict[str, Any]:
        return {"format": self.FORMAT, "version": self.VERSION, **asdict(self)}

    def save(self, path: str | Path) -> Path:
        """Write the record (replacing the file in one step: a reader never sees half of it), its
        folder made if missing."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_name(f".{path.name}.partial")
        partial.write_text(json.dumps(self.as_dict(), indent=1, default=_json_default) + "\n")
        partial.replace(path)
        return path

    @classmethod
    def load(cls, path: str | Path) -> Self:
        path = Path(path)
        return cls.from_dict(read_json_object(path), path)

    @classmethod
    def from_dict(cls, data: dict[str, Any], path: str | Path = "<record>") -> Self:
        """The record in ``data``, checked (see the module's docstring)."""
        data = dict(data)
        found = (data.pop("format", cls.FORMAT), data.pop("version", 1))
        if found != (cls.FORMAT, cls.VERSION):
            raise InputFileError(path, f"a {found[0]!r} file of version {found[1]!r}; expected {cls.FORMAT!r} "
                                       f"version {cls.VERSION}")
        hints = typing.get_type_hints(cls)
        known = {f.name: f for f in fields(cls)}
        unknown = sorted(set(data) - set(known))
        if unknown:
            raise InputFileError(path, f"unknown key(s) {', '.join(unknown)} in a {cls.FORMAT} file")
        missing = [name for name, f in known.items()
                   if name not in data and f.default is MISSING and f.default_factory is MISSING]
        if missing:
            raise InputFileError(path, f"missing key(s) {', '.join(missing)}")
        values = {}
        for name, value in data.items():
            hint = hints[name]
            if not _matches(value, hint):
                raise InputFileError(path, f"{name!r} is {value!r}, expected {_describe(hint)}")
            nested = _record_type(hint)
            values[name] = nested.from_dict(value, path) if nested is not None and value is not None else value
        record = cls(**values)
        problem = record.problem()
        if problem:
            raise InputFileError(path, problem)
        return record

    def problem(self) -> str | None:
        """What makes a record whose fields all have the right types unusable, or None; a subclass
        checks what the annotations cannot say (keys inside nested objects, cross references)."""
        return None


def _record_type(hint: Any) -> type[Record] | None:
    options = typing.get_args(hint) if typing.get_origin(hint) in (types.UnionType, typing.Union) else (hint,)
    return next((o for o in options if isinstance(o, type) and issubclass(o, Record)), None)


def _describe(hint: Any) -> str:
    return str(hint).replace("typing.", "") if not isinstance(hint, type) else hint.__name__


def _json_default(value: Any) -> Any:
    """numpy scalars and arrays, and paths, as JSON."""
    if hasattr(value, "tolist"):
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    msg = f"{type(value).__name__} is not JSON serialisable"
    raise TypeError(msg)
