"""Real questions written by other people (../shared/data): the behaviour its README describes."""

from __future__ import annotations

import json

import pytest

from bot import Assistant
from tests.auxil.shared import shared_path

SHARED = shared_path("data")
pytestmark = pytest.mark.skipif(not SHARED.is_dir(), reason=f"shared data folder not found at {SHARED}")

SMALL_TALK = {
    "what_can_i_ask_you": {"help"},
    "who_made_you": {"about_bot"},
    "what_is_your_name": {"about_bot"},
    "where_are_you_from": {"about_bot"},
    "greeting": {"greeting"},
    "goodbye": {"thanks"},
    "thank_you": {"thanks"},
}


def _rows(name: str) -> list[dict]:
    return [
        json.loads(line) for line in (SHARED / name).read_text(encoding="utf-8").splitlines() if line.strip()
    ]


def test_shared_out_of_scope_questions_are_declined(assistant: Assistant) -> None:
    rows = _rows("out_of_scope.jsonl")
    wrong = []
    for row in rows:
        reply = assistant.reply(row["text"])
        allowed = {"out_of_scope"} | SMALL_TALK.get(row.get("label", ""), set())
        if reply.intent not in allowed or reply.products or reply.urgent:
            wrong.append((row["text"], reply.intent))
    assert 1 - len(wrong) / len(rows) >= 0.97, wrong


def test_shared_condition_treatment_questions_list_the_approved_products(assistant: Assistant) -> None:
    rows = [r for r in _rows("condition_questions.jsonl") if r["qtype"] == "treatment"]
    wrong = []
    for row in rows:
        reply = assistant.reply(row["question"])
        if reply.intent != "condition_treatments":
            wrong.append((row["question"], reply.intent))
            continue
        for condition in reply.conditions:
            for product in assistant.knowledge.products_for_condition(condition):
                if product.brand not in reply.text:
                    wrong.append((row["question"], product.brand))
        if not reply.conditions and "FDA" not in reply.text:
            wrong.append((row["question"], "no honest answer"))
    assert len(wrong) <= len(rows) * 0.05, wrong


def test_shared_condition_fact_questions_are_not_answered_with_invented_facts(assistant: Assistant) -> None:
    rows = [r for r in _rows("condition_questions.jsonl") if r["qtype"] not in ("treatment", "research")]
    wrong = []
    for row in rows:
        reply = assistant.reply(row["question"])
        if reply.intent == "out_of_scope":
            if reply.conditions and "I can't answer that about" not in reply.text:
                wrong.append(row["question"])
        elif reply.intent not in ("condition_treatments", "list_products", "clinical_trials"):
            wrong.append((row["question"], reply.intent))
    assert len(wrong) <= len(rows) * 0.03, wrong


def test_shared_research_questions_may_point_to_trials(assistant: Assistant) -> None:
    rows = [r for r in _rows("condition_questions.jsonl") if r["qtype"] == "research"]
    replies = [assistant.reply(r["question"]) for r in rows]
    assert sum(r.intent in ("clinical_trials", "condition_treatments") for r in replies) >= 0.8 * len(rows)


def test_shared_consumer_questions_get_a_safe_reply(assistant: Assistant) -> None:
    for row in _rows("consumer_questions.jsonl"):
        reply = assistant.reply(row["text"])
        assert reply.text.strip()
        assert "<" not in reply.text


def test_shared_unapproved_stem_cell_uses_get_the_honest_answer(assistant: Assistant) -> None:
    rows = [
        r
        for r in _rows("consumer_questions.jsonl")
        if "unapproved" in r["scope_note"] or "not an approved" in r["scope_note"]
    ]
    assert rows
    for row in rows:
        reply = assistant.reply(row["text"])
        assert "FDA" in reply.text, row["text"]
        assert "ClinicalTrials.gov" in reply.text or reply.intent == "personal_advice", row["text"]
