"""Boxed warnings and REMS: a yes-or-no question about any product gets yes, no, or an honest
"I could not confirm", from that product's own data and with its sources.

Each test runs over every product of the knowledge base (family members too), so a new product is
checked the same way.
"""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from bot import Assistant
from bot.checks import unsourced_facts
from bot.reply import Reply, SourceRef
from knowledge import load_knowledge
from knowledge.schema import BoxedWarning, Rems

KB = load_knowledge()
PRODUCTS = sorted(KB.products)
#: The product field each term answers ("boxed_warning", "rems"), and the term's name people use.
TERMS = {t.product_fact: (t.aliases or [t.name])[0] for t in KB.topics.values() if t.product_fact}


def _sourced(reply: Reply, fact: object, product_id: str) -> bool:
    wanted = {s.title for s in KB.fact_sources(fact, KB.product(product_id))}  # type: ignore[arg-type]
    return bool(wanted) and wanted <= {s.title for s in reply.sources}


def test_warnings_both_terms_are_answered_from_product_fields() -> None:
    assert set(TERMS) == {"boxed_warning", "rems"}


@pytest.mark.parametrize("product_id", PRODUCTS)
@pytest.mark.parametrize("form", ["does {brand} have a {term}?", "is there a {term} for {brand}"])
def test_warnings_boxed_warning_answer_says_yes_or_no(
    assistant: Assistant, product_id: str, form: str
) -> None:
    product = KB.product(product_id)
    question = form.format(brand=product.brand, term=TERMS["boxed_warning"])
    reply = assistant.reply(question, session=f"bw-{product_id}-{form[:5]}")
    assert reply.intent == "product_side_effects" and reply.products == [product_id], question
    warning = product.boxed_warning
    if warning is None:
        # Not checked on the label: no claim either way, and no fact to source.
        assert "could not confirm" in reply.text and not reply.text.startswith(("Yes", "No")), reply.text
        return
    assert reply.text.startswith("Yes." if warning.present else "No."), reply.text
    assert _sourced(reply, warning, product_id), reply.sources
    if warning.present:
        assert warning.text is not None and warning.text in reply.text


@pytest.mark.parametrize("product_id", PRODUCTS)
def test_warnings_rems_answer_says_yes_or_no(assistant: Assistant, product_id: str) -> None:
    product = KB.product(product_id)
    reply = assistant.reply(f"does {product.brand} need a {TERMS['rems']}?", session=f"rems-{product_id}")
    assert reply.intent == "product_side_effects" and reply.products == [product_id], reply.text
    rems = product.rems
    if rems is None:
        assert "don't have reliable information" in reply.text and not reply.text.startswith(("Yes", "No"))
        return
    start = {"active": "Yes.", "ended": "No, not anymore.", "none": "No."}[rems.status]
    assert reply.text.startswith(start), reply.text
    assert _sourced(reply, rems, product_id), reply.sources
    if rems.ended:
        _month, year = reply.text.split("until FDA ended it in ")[1].split(".")[0].split()
        assert rems.ended.startswith(year)


@pytest.mark.parametrize("product_id", [p for p in PRODUCTS if KB.product(p).rems is not None])
def test_warnings_rems_follow_up_about_it_is_the_product_talked_about(
    assistant: Assistant, product_id: str
) -> None:
    product = KB.product(product_id)
    session = f"rems-follow-{product_id}"
    assistant.reply(f"what is {product.brand}?", session=session)
    reply = assistant.reply(f"does it need a {TERMS['rems']}?", session=session)
    assert reply.products == [product_id] and reply.text.startswith(("Yes", "No")), reply.text


def test_warnings_a_present_boxed_warning_says_what_it_covers() -> None:
    with pytest.raises(ValidationError, match="needs 'text'"):
        BoxedWarning(present=True, sources=["label"])
    assert BoxedWarning(present=False, sources=["label"]).text is None


@pytest.mark.parametrize("status, ended", [("ended", None), ("none", "2025-06"), ("active", "2025")])
def test_warnings_rems_end_date_only_for_an_ended_rems(status: str, ended: str | None) -> None:
    with pytest.raises(ValidationError, match="exactly when status is 'ended'"):
        Rems(status=status, ended=ended, sources=["s"])  # type: ignore[arg-type]


def test_warnings_check_finds_a_fact_shown_without_its_sources() -> None:
    """``cgt-bot check`` flags an answer that shows a fact's text but not that fact's sources."""
    product = next(p for p in KB.products.values() if p.boxed_warning and p.boxed_warning.text)
    assert product.boxed_warning is not None and product.boxed_warning.text is not None
    text = f"Yes. {product.boxed_warning.text}"
    bare = Reply(intent="product_side_effects", confidence=1.0, text=text)
    assert unsourced_facts(KB, product, bare) == ["boxed_warning"]
    sources = [
        SourceRef(title=s.title, url=s.url, date=s.date)
        for s in KB.fact_sources(product.boxed_warning, product)
    ]
    assert unsourced_facts(KB, product, bare.model_copy(update={"sources": sources})) == []
