"""The catalog matches the contract, and every intent has enough varied examples."""

from __future__ import annotations

import re

import pytest

from intents import load_catalog
from tests.auxil.shared import REPO, shared_path

# Vendored copy so CI on a clean clone (no ../shared) checks the table too; kept identical to the shared spec.
CONTRACT = REPO / "docs" / "CONTRACT.md"
SHARED_CONTRACT = shared_path("spec/CONTRACT.md")
CATALOG = load_catalog()
CONTRACT_INTENTS = {
    "greeting", "thanks", "help", "about_bot", "sources", "whats_new", "emergency", "personal_advice",
    "out_of_scope",
    "concept_definition", "concept_compare", "choosing_treatment", "cost_general", "clinical_trials",
    "list_products", "condition_treatments", "product_overview", "product_uses", "product_administration",
    "product_side_effects", "product_effectiveness", "product_access", "product_cost", "product_category",
    "product_mechanism", "product_approval", "product_maker", "product_compare",
}  # fmt: skip


def test_catalog_has_exactly_the_contract_intents() -> None:
    assert set(CATALOG.intents) == CONTRACT_INTENTS


def test_catalog_matches_the_contract_table() -> None:
    assert CONTRACT.exists(), f"contract file missing: {CONTRACT}"
    names = set(re.findall(r"^\| `([a-z_]+)` \|", CONTRACT.read_text(encoding="utf-8"), flags=re.M))
    assert names == set(CATALOG.intents)


def test_vendored_contract_is_the_shared_one() -> None:
    if not SHARED_CONTRACT.exists():
        pytest.skip(f"shared contract not found at {SHARED_CONTRACT}")
    assert CONTRACT.read_bytes() == SHARED_CONTRACT.read_bytes()


def test_catalog_every_intent_has_twenty_varied_examples() -> None:
    for intent, examples in CATALOG.examples.items():
        assert len(examples) >= 20, intent
        lowered = [e.lower() for e in examples]
        assert len(set(lowered)) == len(lowered), f"{intent} repeats an example"
        assert any(len(e.split()) <= 5 for e in examples), f"{intent} has no short example"
        small_talk = intent in ("greeting", "thanks", "help", "about_bot")
        assert any(len(e.split()) >= 12 for e in examples) or small_talk, intent


def test_catalog_no_example_under_two_intents() -> None:
    seen: dict[str, str] = {}
    for intent, examples in CATALOG.examples.items():
        for example in examples:
            key = " ".join(example.lower().split())
            assert seen.setdefault(key, intent) == intent, f"{example!r} in {intent} and {seen[key]}"


def test_catalog_every_intent_has_a_template() -> None:
    for intent in CATALOG.intents:
        assert (CATALOG.responses_dir / f"{intent}.j2").exists(), intent


def test_catalog_shorthand_is_spelled_out_as_whole_words() -> None:
    assert CATALOG.expand("wat r u") == "what are you"
    assert CATALOG.expand("can u tell me abt it pls") == "can you tell me about it please"
    assert CATALOG.expand("the u.s. price") == "the u.s. price"
    assert CATALOG.expand("urgent") == "urgent"
