"""What's new: the last 12 months of approvals, label changes and withdrawals, newest first."""

from __future__ import annotations

import datetime as dt

import pytest

from bot import Assistant
from knowledge.loader import load_knowledge

KB = load_knowledge()


@pytest.mark.parametrize("today", [dt.date(2025, 12, 31), dt.date(2026, 6, 1), dt.date(2026, 12, 3)])
def test_whats_new_rows_are_of_the_last_year_newest_first(assistant: Assistant, today: dt.date) -> None:
    rows = assistant.renderer.recent_changes(12, today)
    dates = [date for date, _, _ in rows]
    assert dates == sorted(dates, reverse=True)
    year_ago = today.replace(year=today.year - 1).isoformat()
    assert all(year_ago[: len(d)] <= d <= today.isoformat() for d in dates)
    products = [p for p in assistant.knowledge.products.values() if p.family is None]
    every = [(a.date, p.id) for p in products for a in p.approvals]
    inside = [(d, p) for d, p in every if year_ago <= d <= today.isoformat() and len(d) == 10]
    assert set(inside) <= {(d, p.id) for d, p, _ in rows}


def test_whats_new_answer_names_each_change_with_its_source(assistant: Assistant) -> None:
    today = dt.date(2026, 6, 1)
    rows = assistant.renderer.recent_changes(12, today)
    assert rows, "the knowledge base has changes in the year before 2026-06-01"
    text = assistant.renderer.render("whats_new", today=today)
    for date, product, _approval in rows:
        line = next(x for x in text.splitlines() if x.startswith(f"- {date}, {product.brand}:"))
        assert "(source: " in line


def test_whats_new_is_reachable_by_asking(assistant: Assistant) -> None:
    reply = assistant.reply("what's new in cell and gene therapy?")
    assert reply.intent == "whats_new"
    assert reply.sources and reply.reviewed is not None


CLASSES = sorted(t for t in KB.topics if KB.class_members(t))


@pytest.mark.parametrize("topic_id", CLASSES)
def test_whats_new_of_a_class_names_its_newest_product_and_only_its_changes(
    assistant: Assistant, topic_id: str
) -> None:
    topic = KB.topics[topic_id]
    found = assistant.renderer.select_products([topic], [], [])
    dated = sorted((p for p in found.items if p.first_approval), key=lambda p: str(p.first_approval))
    if not dated or len(found.items) == len(KB.listed_products()):
        pytest.skip("no dated products narrower than the whole list")
    text = assistant.renderer.render("whats_new", topics=[topic], groups=[], conditions=[])
    newest = [p for p in dated if p.first_approval == dated[-1].first_approval]
    assert any(f"the newest is {p.brand}," in text for p in newest), text
    members = {p.brand for p in found.items}
    for line in text.splitlines():
        if line.startswith("- 20"):
            assert line.split(", ", 1)[1].split(":")[0] in members, line
