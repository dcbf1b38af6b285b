"""Small text faults of answers: capitals, grammar, and saying each thing once."""

from __future__ import annotations

import re

from bot import Assistant


def test_texts_maker_of_a_family_lists_each_licence_holder(assistant: Assistant) -> None:
    reply = assistant.reply("who makes cord blood?")
    assert reply.intent == "product_maker"
    family = reply.products[0]
    members = assistant.knowledge.members(family)
    assert len(members) >= 2
    for member in members:
        assert f"- {member.brand}: " in reply.text
    # No capital in the middle of a sentence ("is made by Several ...").
    assert not re.search(r"\b(?:is|by|of|and) (?:Several|Many|Some|The)\b", reply.text)


def test_texts_missing_fact_reads_as_a_sentence(assistant: Assistant) -> None:
    for product in assistant.knowledge.products.values():
        reply = assistant.reply(f"where is {product.brand} given?")
        text = reply.text.replace("\n", " ")
        # Not "I don't have reliable information about where it is given for X."
        assert not re.search(r"information about [^.]* for " + re.escape(product.brand) + r"\.", text)
        if "I don't have reliable information about where" in reply.text:
            assert f"about where {product.brand} is given." in reply.text


def test_texts_out_of_scope_examples_are_not_also_suggested(assistant: Assistant) -> None:
    reply = assistant.reply("what's the weather today?")
    assert reply.intent == "out_of_scope"
    shown = reply.text.lower()
    for suggestion in reply.suggestions:
        assert suggestion.lower().rstrip("?") not in shown
    assert shown.count("difference between cell") <= 1


def test_texts_different_questions_about_one_product_get_different_text(assistant: Assistant) -> None:
    questions = [
        "what is yescarta",
        "what is yescarta used for",
        "how does yescarta work",
        "side effects of yescarta",
        "who makes yescarta",
    ]
    replies = [assistant.reply(q) for q in questions]
    assert len({r.intent for r in replies}) == len(questions)
    assert len({r.text for r in replies}) == len(questions)
    # A narrower question gets a shorter answer than the overview.
    overview, maker = replies[0], replies[-1]
    assert len(maker.text) < len(overview.text)
