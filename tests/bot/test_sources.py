"""Every answer carries the sources of the facts it states; "where is that from?" shows them."""

from __future__ import annotations

import pytest

from bot import Assistant
from knowledge.loader import KnowledgeBase, load_knowledge


def _listed() -> list[str]:
    kb: KnowledgeBase = load_knowledge()
    return [p.brand for p in kb.products.values() if p.family is None and p.side_effects is not None]


@pytest.mark.parametrize("brand", _listed())
def test_sources_side_effect_answer_lists_the_sources_of_its_facts(assistant: Assistant, brand: str) -> None:
    reply = assistant.reply(f"what are the side effects of {brand}?", session=f"src-{brand}")
    assert reply.sources, reply.text
    assert reply.reviewed is not None
    follow = assistant.reply("where is that from?", session=f"src-{brand}")
    assert follow.intent == "sources"
    assert [s.title for s in follow.sources] == [s.title for s in reply.sources]
    assert reply.sources[0].title in follow.text


def test_sources_greeting_states_no_fact(assistant: Assistant) -> None:
    reply = assistant.reply("hello", session="src-greet")
    assert reply.sources == [] and reply.reviewed is None
    follow = assistant.reply("where is that from?", session="src-greet")
    assert follow.intent == "sources" and follow.sources == []


def test_sources_every_suggestion_of_every_product_answer_is_answered() -> None:
    from bot.checks import answer_problems

    problems = answer_problems()
    assert not problems, "\n".join(f"{p.where}: {p.message}" for p in problems[:20])


@pytest.mark.parametrize("product_id", sorted(p.id for p in load_knowledge().listed_products())[:8])
def test_sources_where_do_these_facts_come_from_after_an_answer(
    assistant: Assistant, product_id: str
) -> None:
    session = f"facts-from:{product_id}"
    assistant.reply(f"how is {load_knowledge().products[product_id].brand} given?", session=session)
    reply = assistant.reply("where do these facts come from", session=session)
    assert reply.intent == "sources", reply.text
