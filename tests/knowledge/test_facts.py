"""Facts that a patient could misread: makers' history, status, eligibility, warnings, prices.

Each test runs over every product of the knowledge base, so a new product is checked the same way.
"""

from __future__ import annotations

import calendar

import pytest
from pydantic import ValidationError

from bot import Assistant
from knowledge import load_knowledge
from knowledge.schema import Maker

KB = load_knowledge()
LISTED = sorted(p.id for p in KB.listed_products())
# A family (cord blood) has one maker per licence; its answer lists them (tests/bot/test_texts.py).
WITH_MAKER = sorted(p.id for p in KB.listed_products() if p.maker is not None and not KB.members(p.id))


def _month_year(date: str) -> str:
    parts = date.split("-")
    return f"{calendar.month_name[int(parts[1])]} {parts[0]}" if len(parts) > 1 else parts[0]


@pytest.mark.parametrize("product_id", WITH_MAKER)
def test_facts_maker_answer_tells_each_change_as_what_happened(assistant: Assistant, product_id: str) -> None:
    product = KB.product(product_id)
    assert product.maker is not None
    reply = assistant.reply(f"who makes {product.brand}?", session=f"maker-{product_id}")
    assert reply.intent == "product_maker"
    assert "earlier known as" not in reply.text
    assert product.maker.name in reply.text
    for change in product.maker.history:
        assert change.company.lower() in reply.text.lower()
        assert (change.to or product.maker.name) in reply.text
        assert _month_year(change.date) in reply.text
        # The change's own sources are among the answer's.
        titles = {s.title for s in reply.sources}
        assert {s.title for s in KB.fact_sources(change, product)} <= titles


def test_facts_maker_history_is_oldest_first() -> None:
    change = {"kind": "renamed", "company": "Old Name", "sources": ["s"]}
    with pytest.raises(ValidationError, match="oldest first"):
        Maker(
            name="New Name",
            history=[{**change, "date": "2020"}, {**change, "date": "2019"}],  # type: ignore[list-item]
            sources=["s"],
        )


def test_facts_maker_history_kind_is_one_of_four() -> None:
    with pytest.raises(ValidationError):
        Maker(
            name="New Name",
            history=[{"kind": "formerly", "company": "Old", "date": "2020", "sources": ["s"]}],  # type: ignore[list-item]
            sources=["s"],
        )


WITH_STATUS_NOTE = sorted(p.id for p in KB.listed_products() if p.status_note is not None)


@pytest.mark.parametrize("product_id", WITH_STATUS_NOTE)
def test_facts_status_note_answers_availability_and_approval(assistant: Assistant, product_id: str) -> None:
    """News about a product (divested, sold, offered at one centre, first patient) reaches the
    answers people get when they ask whether it is still available or where to get it."""
    product = KB.product(product_id)
    assert product.status_note is not None
    for question in (f"when was {product.brand} approved?", f"where can I get {product.brand}?"):
        reply = assistant.reply(question, session=f"status-{product_id}")
        assert product.status_note.text in reply.text, question
        titles = {s.title for s in reply.sources}
        assert {s.title for s in KB.fact_sources(product.status_note, product)} <= titles


def test_facts_label_changes_the_bot_cannot_read_are_said_so() -> None:
    """A label revision whose new text no source gave is a dated change that says so, and the
    use it touches does not state the old limit as today's."""
    for product in KB.listed_products():
        for change in product.approvals:
            if "could not confirm" in change.change and product.uses is not None:
                assert "could not confirm" in product.uses.text, product.id


def _still_accelerated(product_id: str) -> bool:
    changes = [a.change.lower() for a in KB.product(product_id).approvals]
    last = max((i for i, c in enumerate(changes) if "accelerated approval" in c), default=None)
    if last is None:
        return False
    return not any("regular approval" in c or "traditional" in c for c in changes[last + 1 :])


@pytest.mark.parametrize("product_id", [p for p in LISTED if _still_accelerated(p)])
def test_facts_uses_say_when_a_use_has_accelerated_approval(assistant: Assistant, product_id: str) -> None:
    """A patient reading who can get a product learns whether a use rests on accelerated approval
    (or, where an accelerated use was removed, that the remaining use has full approval)."""
    product = KB.product(product_id)
    reply = assistant.reply(f"who can get {product.brand}?", session=f"aa-{product_id}")
    assert reply.intent == "product_uses"
    assert "accelerated approval" in reply.text or "full) approval" in reply.text


def test_facts_zolgensma_for_older_children_points_to_itvisma(assistant: Assistant) -> None:
    """Asked about older children, the Zolgensma answer names the product approved for them."""
    reply = assistant.reply("is zolgensma for older children?", session="zol-older")
    assert reply.intent == "product_uses"
    assert KB.product("itvisma").brand in reply.text


def _texts(node: object) -> list[str]:
    if isinstance(node, dict):
        return [t for key, value in node.items() for t in (_texts(value) if key != "sources" else [])]
    if isinstance(node, list):
        return [t for value in node for t in _texts(value)]
    return [node] if isinstance(node, str) else []


@pytest.mark.parametrize("item_id", sorted(KB.topics) + LISTED)
def test_facts_speak_of_facts_not_of_a_source_article(item_id: str) -> None:
    """Answers say what is true, not what 'our source article' says."""
    item = KB.topics[item_id] if item_id in KB.topics else KB.product(item_id)
    assert not any("source article" in t.lower() for t in _texts(item.model_dump())), item_id


def test_facts_omisirge_boxed_warning_names_every_risk_the_label_boxes(assistant: Assistant) -> None:
    """The label's boxed warning names five risks; the answer names all of them."""
    reply = assistant.reply("does omisirge have a boxed warning?", session="omi-bw")
    text = reply.text.lower()
    for risk in (
        "graft-versus-host",
        "infusion reactions",
        "autoimmune cytopenias",
        "graft failure",
        "engraftment",
    ):
        assert risk in text, risk
