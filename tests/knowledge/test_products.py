"""Every product answers every product question from its own facts, or says it does not know."""

from __future__ import annotations

import pytest

from bot import Assistant
from knowledge import load_knowledge

KB = load_knowledge()
PRODUCT_INTENTS = [
    "product_overview",
    "product_uses",
    "product_administration",
    "product_side_effects",
    "product_effectiveness",
    "product_access",
    "product_cost",
    "product_category",
    "product_mechanism",
    "product_approval",
    "product_maker",
]
FIELD_OF = {
    "product_uses": "uses",
    "product_administration": "administration",
    "product_effectiveness": "effectiveness",
    "product_cost": "cost",
    "product_mechanism": "mechanism",
}
REMINDER = "talk to your healthcare provider"


def _render(assistant: Assistant, intent: str, product_id: str) -> str:
    product = assistant.knowledge.product(product_id)
    return assistant.renderer.render(
        intent,
        intent=intent,
        reason="",
        products=[product],
        p=product,
        conditions=[],
        c=None,
        groups=[],
        topics=[],
        t=None,
        others=[],
        unsure=[],
        language=None,
        truncated=False,
        from_context=False,
    )


@pytest.mark.parametrize("product_id", sorted(KB.products))
def test_products_every_intent_renders_own_facts(assistant: Assistant, product_id: str) -> None:
    product = assistant.knowledge.product(product_id)
    for intent in PRODUCT_INTENTS:
        text = _render(assistant, intent, product_id)
        assert product.brand in text, intent
        assert REMINDER in text, intent
        field = FIELD_OF.get(intent)
        if field:
            fact = getattr(product, field)
            if fact is not None:
                assert fact.text in text, f"{intent} lacks its {field} fact"
            else:
                assert "I don't have reliable information" in text, f"{intent} must admit the gap"


@pytest.mark.parametrize("product_id", sorted(p.id for p in KB.listed_products()))
def test_products_answer_by_name_through_the_assistant(assistant: Assistant, product_id: str) -> None:
    product = assistant.knowledge.product(product_id)
    reply = assistant.reply(f"how much does {product.brand} cost?")
    assert reply.products == [product_id]
    assert reply.intent == "product_cost"
    reply = assistant.reply(f"what is {product.brand}")
    assert reply.intent == "product_overview"
    assert reply.products == [product_id]


@pytest.mark.parametrize("product_id", sorted(p.id for p in KB.listed_products() if p.generic_name))
def test_products_answer_by_generic_name(assistant: Assistant, product_id: str) -> None:
    product = assistant.knowledge.product(product_id)
    reply = assistant.reply(f"side effects of {product.generic_name}")
    assert product_id in reply.products or product_id in reply.did_you_mean


@pytest.mark.parametrize("condition_id", sorted(c for c in KB.conditions if KB.products_for_condition(c)))
def test_products_every_condition_lists_its_products(assistant: Assistant, condition_id: str) -> None:
    condition = assistant.knowledge.conditions[condition_id]
    reply = assistant.reply(f"what treatments are approved for {condition.name}?")
    assert reply.intent == "condition_treatments"
    assert condition_id in reply.conditions
    for product in assistant.knowledge.products_for_condition(condition_id):
        assert product.brand in reply.text


@pytest.mark.parametrize("condition_id", sorted(c for c in KB.conditions if not KB.products_for_condition(c)))
def test_products_conditions_without_therapy_get_an_honest_no(
    assistant: Assistant, condition_id: str
) -> None:
    condition = assistant.knowledge.conditions[condition_id]
    reply = assistant.reply(f"is there a gene therapy for {condition.name}?")
    assert reply.intent == "condition_treatments"
    assert "I don't know of any cell or gene therapy approved by the FDA" in reply.text
    assert "ClinicalTrials.gov" in reply.text


def test_products_golden_answer_gene_therapy_cost(assistant: Assistant) -> None:
    reply = assistant.reply("how much is zolgensma?")
    assert reply.intent == "product_cost"
    assert "$2.125 million" in reply.text
    assert REMINDER in reply.text


def test_products_golden_answer_car_t_category(assistant: Assistant) -> None:
    reply = assistant.reply("is kymriah a gene therapy?")
    assert reply.intent == "product_category"
    assert "cell-based gene therapy" in reply.text
    assert "own cells" in reply.text


def test_products_golden_answer_cell_therapy_category(assistant: Assistant) -> None:
    reply = assistant.reply("is provenge a gene therapy?")
    assert "a cell therapy" in reply.text


def test_products_golden_answer_cord_blood_family(assistant: Assistant) -> None:
    reply = assistant.reply("what is ducord")
    assert reply.products == ["ducord"]
    assert "cord blood" in reply.text.lower()


def test_products_discontinued_product_says_so(assistant: Assistant) -> None:
    reply = assistant.reply("where can i get beqvez?")
    assert reply.products == ["beqvez"]
    assert (
        "discontinu" in reply.text.lower()
        or "no longer" in reply.text.lower()
        or "stop" in reply.text.lower()
    )


def test_products_acellular_products_are_explained(assistant: Assistant) -> None:
    reply = assistant.reply("is symvess a cell therapy?")
    assert reply.products == []
    assert "Symvess" in reply.text


def test_products_list_answer_is_short_and_filtered(assistant: Assistant) -> None:
    reply = assistant.reply("which CAR-T therapies are approved?")
    assert reply.intent == "list_products"
    for brand in ("Kymriah", "Yescarta", "Abecma", "Carvykti", "Breyanzi", "Tecartus"):
        assert brand in reply.text
    assert "Zolgensma" not in reply.text
    assert len(reply.text) < 1500
