"""``cgt-bot check`` reads every kind of data file as its package does: one mistake in one item
is one problem, naming the file relative to its data root and the field."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from bot.checks import DataRoots, run_checks

_Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

# Every kind of data file: (data root, file, the path to one item in it, a field of that item
# that must be text, as it is written in problems).
KINDS = [
    ("knowledge", "products/kymriah.yaml", (), "brand"),
    ("knowledge", "conditions/sickle-cell-disease.yaml", (), "name"),
    ("knowledge", "topics/car-t.yaml", (), "name"),
    ("knowledge", "condition_groups.yaml", (0,), "name"),
    ("knowledge", "comparisons.yaml", (0, "text"), "text"),
    ("knowledge", "not_covered.yaml", (0,), "name"),
    ("knowledge", "sources.yaml", ("*",), "title"),
    ("intents", "intents.yaml", (0,), "description"),
    ("intents", "examples/greeting.yaml", (), "intent"),
    ("intents", "safety.yaml", ("emergency",), "self_harm"),
    ("intents", "policy.yaml", ("rules", 0), "name"),
    ("intents", "scope.yaml", (), "min_confidence"),
    ("intents", "texts.yaml", (), "error"),
    ("intents", "safety/emergency_signs.yaml", ("groups", 0), "name"),
    ("intents", "safety/emergency_tense.yaml", (), "past"),
    ("intents", "safety/emergency_vitals.yaml", ("temperature",), "fever_f"),
    ("intents", "safety/emergency_model.yaml", (), "urgent"),
    ("front_ends", "terminal.yaml", (), "welcome"),
    ("front_ends", "telegram.yaml", ("sources",), "heading"),
]
IDS = [file for _, file, _, _ in KINDS]


def _break(roots: DataRoots, root: str, file: str, where: tuple[Any, ...], change: dict[str, Any]) -> str:
    """Apply ``change`` to one item of a copied file; return the item's loc as problems write it."""
    path = Path(getattr(roots, root)) / file
    data = yaml.load(path.read_text(encoding="utf-8"), Loader=_Loader)
    item, loc = data, []
    for step in where:
        step = next(iter(item)) if step == "*" else step
        item, loc = item[step], [*loc, str(step)]
    item.update(change)
    path.write_text(yaml.safe_dump(data, allow_unicode=True, sort_keys=False), encoding="utf-8")
    return ".".join(loc)


def _errors(roots: DataRoots) -> list[str]:
    return [str(problem) for problem in run_checks(roots).errors]


@pytest.mark.parametrize(("root", "file", "where", "field"), KINDS, ids=IDS)
def test_checks_a_bad_key_in_one_item_is_one_problem(
    data_roots: DataRoots, root: str, file: str, where: tuple[Any, ...], field: str
) -> None:
    loc = _break(data_roots, root, file, where, {"colour": "blue"})
    key = f"{loc}.colour" if loc else "colour"
    assert _errors(data_roots) == [f"{file}: {key}: Extra inputs are not permitted"]


@pytest.mark.parametrize(("root", "file", "where", "field"), KINDS, ids=IDS)
def test_checks_an_invalid_value_in_one_item_is_one_problem(
    data_roots: DataRoots, root: str, file: str, where: tuple[Any, ...], field: str
) -> None:
    loc = _break(data_roots, root, file, where, {field: {"not": "text"}})
    errors = _errors(data_roots)
    assert len(errors) == 1, errors
    assert errors[0].startswith(f"{file}: {loc + '.' if loc else ''}{field}: Input should be a valid ")


def test_checks_a_misspelt_intent_key_is_one_problem_that_names_the_field_meant(
    data_roots: DataRoots,
) -> None:
    path = data_roots.intents / "intents.yaml"
    text = path.read_text(encoding="utf-8")
    path.write_text(text.replace("  description:", "  descripton:", 1), encoding="utf-8")
    assert _errors(data_roots) == [
        "intents.yaml: 0.descripton: Extra inputs are not permitted; did you mean 'description'?"
    ]


def test_checks_a_broken_topic_is_not_reported_again_by_the_products_that_name_it(
    data_roots: DataRoots,
) -> None:
    path = data_roots.knowledge / "topics" / "car-t.yaml"
    path.write_text(path.read_text(encoding="utf-8").replace("\nname:", "\nnaem:", 1), encoding="utf-8")
    assert _errors(data_roots) == [
        "topics/car-t.yaml: naem: Extra inputs are not permitted; did you mean 'name'?"
    ]


def test_checks_every_problem_of_several_files_is_reported(data_roots: DataRoots) -> None:
    _break(data_roots, "front_ends", "telegram.yaml", (), {"colour": "blue"})
    _break(data_roots, "knowledge", "sources.yaml", ("*",), {"colour": "blue"})
    _break(data_roots, "intents", "safety/emergency_tense.yaml", (), {"past": 5})
    errors = _errors(data_roots)
    assert [error.split(":")[0] for error in errors] == [
        "sources.yaml",
        "safety/emergency_tense.yaml",
        "telegram.yaml",
    ]
