"""Accuracy on the held-out labelled questions (tests/data/dev.jsonl), never trained on."""

from __future__ import annotations

from pathlib import Path

from bot import Assistant
from bot.evaluate import evaluate, read_cases

DEV = Path(__file__).resolve().parents[1] / "data" / "dev.jsonl"


def test_eval_dev_set_reaches_the_bars(assistant: Assistant) -> None:
    cases = read_cases(DEV)
    assert len(cases) >= 450
    assert len({c.intent for c in cases}) == 26
    report = evaluate(assistant, cases, tag="test-eval")
    assert report.intent_accuracy >= 0.95, report.as_text()
    assert report.product_accuracy >= 0.97, report.as_text()


def test_eval_dev_set_is_not_in_the_catalog(assistant: Assistant) -> None:
    catalog = {" ".join(e.lower().split()) for ex in assistant.catalog.examples.values() for e in ex}
    overlap = [c.text for c in read_cases(DEV) if " ".join(c.text.lower().split()) in catalog]
    assert len(overlap) <= 10, overlap
