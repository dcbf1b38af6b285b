"""The one way cgt-bot reads a data file: parse it, validate it, and name every problem alike.

Every data file of every package (knowledge, intents, the front ends' words) is read here, and
every model of such a file derives from :class:`DataModel`. A problem always reads
``<file relative to its data root>: <loc.path>: <message>``, whichever package reads the file.

A file that is a list or a mapping of items (``intents.yaml``, ``sources.yaml``...) is validated
item by item (:func:`read_items`): one broken item is one problem, the other items still load,
and the ids of broken items are kept so that checks across files do not report them again as
unknown.
"""

from __future__ import annotations

import difflib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Generic, TypeVar

from pydantic import BaseModel, ConfigDict, ValidationError
from pydantic_core import ErrorDetails

from knowledge.errors import DataError

__all__ = [
    "DataModel",
    "Items",
    "Problem",
    "display_name",
    "load_validated",
    "read_data",
    "read_items",
    "read_model",
    "validation_problems",
]

M = TypeVar("M", bound=BaseModel)


class DataModel(BaseModel):
    """Base of every model of a data file: immutable, and a key it does not know is an error.

    Whitespace around a text is stripped: in YAML it is left by block scalars (``>``, ``|``)
    and is never meant; a regex that needs a space at its edge says so with ``\\s`` or ``\\b``.
    """

    model_config = ConfigDict(frozen=True, extra="forbid", str_strip_whitespace=True)


@dataclass(frozen=True)
class Problem:
    """One finding of the checks: where, what, and whether it blocks loading."""

    where: str
    message: str
    severity: str = "error"

    def __str__(self) -> str:
        return f"{self.where}: {self.message}"


def display_name(path: Path, root: Path) -> str:
    """How problems name ``path``: relative to its data root, with forward slashes."""
    try:
        return path.relative_to(root).as_posix()
    except ValueError:
        return path.as_posix()


def validation_problems(name: str, error: ValidationError, prefix: str = "") -> list[Problem]:
    """Every error of a pydantic validation as a Problem reading ``name: loc.path: message``.

    A misspelt key is one mistake, though pydantic sees two (an unknown key, a missing field):
    the missing field it most likely meant is named in the unknown key's problem instead.
    """
    errors = error.errors()
    meant = _misspellings(errors)
    problems = []
    for item in errors:
        if item["type"] == "missing" and item["loc"] in meant.values():
            continue
        loc = ".".join(str(part) for part in (prefix, *item["loc"]) if part != "")
        message = item["msg"]
        if item["loc"] in meant:
            message += f"; did you mean '{meant[item['loc']][-1]}'?"
        problems.append(Problem(name, f"{loc or '(top)'}: {message}"))
    return problems


def _misspellings(errors: list[ErrorDetails]) -> dict[tuple[int | str, ...], tuple[int | str, ...]]:
    """The loc of each unknown key that is a near miss of a missing field -> that field's loc."""
    missing = {item["loc"] for item in errors if item["type"] == "missing" and item["loc"]}
    meant: dict[tuple[int | str, ...], tuple[int | str, ...]] = {}
    for item in errors:
        loc = item["loc"]
        if item["type"] != "extra_forbidden" or not loc:
            continue
        fields = [str(m[-1]) for m in missing if m[:-1] == loc[:-1] and m not in meant.values()]
        close = difflib.get_close_matches(str(loc[-1]), fields, n=1, cutoff=0.75)
        if close:
            meant[loc] = (*loc[:-1], close[0])
    return meant


def read_data(path: Path, root: Path) -> tuple[Any, list[Problem]]:
    """Parse one YAML or JSON file; a syntax or read error becomes a Problem naming the file."""
    name = display_name(path, root)
    if path.suffix == ".json":
        try:
            return json.loads(path.read_text(encoding="utf-8")), []
        except json.JSONDecodeError as error:
            return None, [Problem(name, f"line {error.lineno}: {error.msg}")]
        except (OSError, UnicodeDecodeError) as error:
            return None, [Problem(name, f"cannot be read ({error.__class__.__name__})")]
    # The loader keeps parsed YAML in a disk cache; imported here, not at the top, because the
    # loader's own models derive from this module.
    from knowledge.loader import read_yaml

    return read_yaml(path, root)


def read_model(path: Path, root: Path, model: type[M]) -> tuple[M | None, list[Problem]]:
    """Read a file that holds one object: the validated model (None if invalid) and the problems."""
    data, problems = read_data(path, root)
    if problems:
        return None, problems
    try:
        return model.model_validate(data), []
    except ValidationError as error:
        return None, validation_problems(display_name(path, root), error)


def load_validated(path: Path, root: Path, model: type[M]) -> M:
    """Like :func:`read_model`, for a reader that cannot go on: raise DataError on any problem."""
    item, problems = read_model(path, root, model)
    if item is None or problems:
        raise DataError([str(p) for p in problems] or [f"{display_name(path, root)}: (top): no data"])
    return item


@dataclass
class Items(Generic[M]):
    """The items of a list or mapping file that validated, and what the others were called.

    Attributes:
        valid (dict[str, M]): by key (the mapping's key, the item's ``key`` field, or its index).
        broken (set[str]): keys of the items that did not validate; references to them are not
            reported again as unknown.
        problems (list[Problem]): every problem of the file.
    """

    valid: dict[str, M] = field(default_factory=dict)
    broken: set[str] = field(default_factory=set)
    problems: list[Problem] = field(default_factory=list)


def read_items(
    path: Path, root: Path, model: type[M], *, key: str | None = None, mapping: bool = False
) -> Items[M]:
    """Read a file that is a list of items, or with ``mapping`` a mapping of key to item,
    validating each item on its own.

    Args:
        key (str | None): the field that names a list's item (its id); without it, its index.
        mapping (bool): the file maps keys to items (``sources.yaml``) instead of listing them.

    A missing or empty file has no items; a file of the wrong shape is one problem.
    """
    items: Items[M] = Items()
    data, items.problems = read_data(path, root)
    if items.problems or data is None:
        return items
    name = display_name(path, root)
    entries = _entries(data, key, mapping)
    if entries is None:
        shape = "a mapping" if mapping else "a list"
        items.problems.append(Problem(name, f"(top): should be {shape} of {model.__name__} items"))
        return items
    for item_key, where, raw in entries:
        try:
            item = model.model_validate(raw)
        except ValidationError as error:
            items.broken.add(item_key)
            items.problems += validation_problems(name, error, prefix=where)
            continue
        if item_key in items.valid:
            items.problems.append(Problem(name, f"{where}: '{item_key}' is defined twice"))
        items.valid[item_key] = item
    return items


def _entries(data: Any, key: str | None, mapping: bool) -> list[tuple[str, str, Any]] | None:
    """(key, loc of the item, raw item) of a list or mapping file; None if of another shape."""
    if mapping and isinstance(data, dict):
        return [(str(k), str(k), v) for k, v in data.items()]
    if not mapping and isinstance(data, list):
        return [(_item_key(raw, key, index), str(index), raw) for index, raw in enumerate(data)]
    return None


def _item_key(raw: Any, key: str | None, index: int) -> str:
    value = raw.get(key) if key is not None and isinstance(raw, dict) else None
    return value if isinstance(value, str) else f"#{index}"
