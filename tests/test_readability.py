"""Every rendered answer reads at about 8th grade: measured with textstat, names set aside."""

from __future__ import annotations

import re

import pytest
import textstat

from bot import Assistant

GRADE_LIMIT = 9.0
QUESTIONS = [
    "hi",
    "thanks",
    "what can you do",
    "are you a doctor",
    "what is gene therapy",
    "what is car-t",
    "difference between cell and gene therapy",
    "is cell or gene therapy better",
    "why is gene therapy so expensive",
    "how do i join a clinical trial",
    "which gene therapies are approved",
    "is there a gene therapy for autism",
    "what treats sickle cell disease",
    "my son has a high fever after car-t",
    "i want to kill myself",
    "should my dad get kymriah",
    "what is the weather",
    "what are the symptoms of sma",
]


def _without_names(assistant: Assistant, text: str) -> str:
    """Replace product, generic, condition and topic names by one short word before measuring."""
    names: set[str] = set()
    kb = assistant.knowledge
    for p in kb.products.values():
        names.update([p.brand, *(p.aliases), p.generic_name or ""])
        if p.maker:
            names.add(p.maker.name)
    for c in kb.conditions.values():
        names.update([c.name, *c.aliases])
    for t in kb.topics.values():
        names.update([t.name, *t.aliases])
    for name in sorted((n for n in names if len(n) > 3), key=len, reverse=True):
        text = re.sub(rf"\b{re.escape(name)}\b", "Name", text, flags=re.IGNORECASE)
    return text


def _grade(text: str) -> float:
    # A list line is read as a sentence of its own, not as part of one long sentence.
    lines = [
        line if line.rstrip().endswith((".", "?", "!", ":")) else line + "." for line in text.splitlines()
    ]
    return textstat.flesch_kincaid_grade("\n".join(lines))


@pytest.mark.parametrize("question", QUESTIONS)
def test_readability_general_answers(assistant: Assistant, question: str) -> None:
    text = assistant.reply(question).text
    assert _grade(_without_names(assistant, text)) <= GRADE_LIMIT, text


def test_readability_every_product_answer(assistant: Assistant) -> None:
    intents = ["overview", "side effects", "how is it given", "how much", "how does it work", "who makes"]
    too_hard = []
    for product in assistant.knowledge.listed_products():
        for aspect in intents:
            text = assistant.reply(f"{product.brand} {aspect}").text
            grade = _grade(_without_names(assistant, text))
            if grade > GRADE_LIMIT:
                too_hard.append((product.id, aspect, round(grade, 1)))
    assert too_hard == []


def test_readability_every_topic_definition(assistant: Assistant) -> None:
    too_hard = []
    for topic in assistant.knowledge.topics.values():
        text = _without_names(assistant, topic.definition.text)
        if _grade(text) > GRADE_LIMIT:
            too_hard.append((topic.id, round(_grade(text), 1)))
    assert too_hard == []
