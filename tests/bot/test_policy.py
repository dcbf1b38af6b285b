"""The decision policy is data: its rules bind to named conditions and steps, and its reasons are
the ones the templates test."""

from __future__ import annotations

import dataclasses
import re
import shutil
from pathlib import Path

import pytest

from bot import Assistant
from bot.policy import Decider
from intents.catalog import DATA_DIR, PolicyRule, collect_catalog
from intents.reasons import Reason
from knowledge.errors import DataError

_TESTED = re.compile(r"reason\s*(?:==|!=)\s*\"([a-z_]*)\"|reason\s+in\s*\(([^)]*)\)")


def _template_reasons() -> set[str]:
    found: set[str] = set()
    for path in (DATA_DIR / "responses").glob("*.j2"):
        for single, many in _TESTED.findall(path.read_text(encoding="utf-8")):
            found |= {single} if single else set(re.findall(r"\"([a-z_]*)\"", many))
    return found


def test_policy_every_reason_a_template_tests_is_a_reason_code() -> None:
    tested = _template_reasons()
    assert tested, "the templates test reasons"
    assert tested <= {r.value for r in Reason}


def test_policy_every_rule_binds(assistant: Assistant) -> None:
    names = [rule.spec.name for rule in assistant.decider.rules]
    assert names and len(names) == len(set(names))


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({"when": ["no_such_condition"]}, "no condition named 'no_such_condition'"),
        ({"when": ["has_product"], "do": "no_such_step"}, "no step named 'no_such_step'"),
    ],
)
def test_policy_an_unknown_condition_or_step_is_a_data_error(
    assistant: Assistant, change: dict, expected: str
) -> None:
    policy = assistant.catalog.policy
    assert policy is not None
    broken = PolicyRule(name="broken", **change)
    catalog = dataclasses.replace(
        assistant.catalog, policy=policy.model_copy(update={"rules": [broken, *policy.rules]})
    )
    with pytest.raises(DataError) as error:
        Decider(catalog, assistant.knowledge, assistant.matcher, frozenset())
    assert str(error.value).startswith("policy.yaml: rules.broken") and expected in str(error.value)


def test_policy_an_unknown_intent_is_named_with_its_file(tmp_path: Path) -> None:
    root = tmp_path / "data"
    shutil.copytree(DATA_DIR, root)
    policy = root / "policy.yaml"
    policy.write_text(
        policy.read_text(encoding="utf-8").replace("intent: concept_compare", "intent: concept_comparison"),
        encoding="utf-8",
    )
    _, problems = collect_catalog(root)
    assert any(
        p.where == "policy.yaml" and "compare_ideas.intent: unknown intent" in p.message for p in problems
    ), problems
