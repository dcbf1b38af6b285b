"""``cgt-bot eval``: how well the assistant does on a labelled JSONL file.

The report follows ``rasa test nlu``: overall intent and product accuracy,
precision / recall / F1 / support per intent, the most frequent confusions, and
every miss with the confidence the bot had.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from bot.assistant import Assistant
from bot.errors import UsageError

__all__ = ["Case", "Report", "evaluate", "read_cases"]


@dataclass(frozen=True)
class Case:
    """One labelled question."""

    line: int
    text: str
    intent: str
    products: tuple[str, ...] | None
    session: str | None
    mentions: tuple[str, ...] = ()
    ordinal: int | None = None
    urgent: bool | None = None


@dataclass
class Report:
    """The figures of one evaluation run."""

    total: int = 0
    intent_correct: int = 0
    product_total: int = 0
    product_correct: int = 0
    all_ok: int = 0
    per_intent: dict[str, dict[str, float]] = field(default_factory=dict)
    confusions: list[tuple[str, str, int]] = field(default_factory=list)
    misses: list[dict[str, Any]] = field(default_factory=list)

    @property
    def intent_accuracy(self) -> float:
        """Share of questions whose intent was right."""
        return self.intent_correct / self.total if self.total else 0.0

    @property
    def product_accuracy(self) -> float:
        """Share of questions with labelled products whose products were right."""
        return self.product_correct / self.product_total if self.product_total else 0.0

    @property
    def all_ok_rate(self) -> float:
        """Share of questions right in every way: intent, products, urgency and named content."""
        return self.all_ok / self.total if self.total else 0.0

    def as_dict(self) -> dict[str, Any]:
        """The figures as one JSON-ready object (``eval --json``)."""
        return {
            "total": self.total,
            "all_ok": round(self.all_ok_rate, 4),
            "intent_accuracy": round(self.intent_accuracy, 4),
            "product_accuracy": round(self.product_accuracy, 4),
            "product_total": self.product_total,
            "per_intent": self.per_intent,
            "confusions": [{"gold": g, "predicted": p, "count": n} for g, p, n in self.confusions],
            "misses": self.misses,
        }

    def as_text(self, most: int = 10) -> str:
        """The human-readable report."""
        lines = [
            f"questions:        {self.total}",
            f"all ok:           {self.all_ok_rate:.1%} (intent, products, urgency and named content)",
            f"intent accuracy:  {self.intent_accuracy:.1%}",
            f"product accuracy: {self.product_accuracy:.1%} (of {self.product_total} with labelled products)",
            "",
            f"{'intent':<24} {'precision':>9} {'recall':>7} {'f1':>6} {'support':>8}",
        ]
        for name, row in sorted(self.per_intent.items()):
            figures = (
                f"{row['precision']:>9.2f} {row['recall']:>7.2f} {row['f1']:>6.2f} {int(row['support']):>8}"
            )
            lines.append(f"{name:<24} {figures}")
        if self.confusions:
            lines += ["", "most frequent confusions (gold -> predicted):"]
            lines += [f"  {g} -> {p}: {n}" for g, p, n in self.confusions[:most]]
        if self.misses:
            lines += ["", f"misses ({len(self.misses)}):"]
            for miss in self.misses:
                lines.append(
                    f"  line {miss['line']}: {miss['text']!r}: expected {miss['intent']} {miss['products']}, "
                    f"got {miss['predicted']} {miss['predicted_products']} ({miss['confidence']:.2f})"
                    + (f"; {miss['why']}" if miss.get("why") else "")
                )
        return "\n".join(lines)


def read_cases(path: Path) -> list[Case]:
    """Read a labelled JSONL file; a bad line is a UsageError naming the line."""
    try:
        raw = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise UsageError(f"cannot read {path}: {error.__class__.__name__}") from None
    cases = []
    for number, line in enumerate(raw.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            raise UsageError(f"{path}: line {number} is not valid JSON") from None
        if not isinstance(row, dict) or not isinstance(row.get("text"), str):
            raise UsageError(f"{path}: line {number} needs a string 'text'")
        if not isinstance(row.get("intent"), str):
            raise UsageError(f"{path}: line {number} needs a string 'intent'")
        products = row.get("products")
        ordinal = None
        if isinstance(products, list) and len(products) == 1:
            products = products[0] if str(products[0]).startswith("ordinal:") else products
        if isinstance(products, str) and products.startswith("ordinal:") and products[8:].isdigit():
            # "how much is the second one?": the second product the last answer showed.
            ordinal, products = int(products[8:]), None
        mentions = row.get("mentions") or []
        if not (isinstance(mentions, list) and all(isinstance(m, str) for m in mentions)):
            raise UsageError(f"{path}: line {number}: 'mentions' must be a list of names")
        urgent = row.get("urgent")
        if products is not None and not (
            isinstance(products, list) and all(isinstance(p, str) for p in products)
        ):
            raise UsageError(f"{path}: line {number}: 'products' must be a list of ids")
        session = row.get("session")
        cases.append(
            Case(
                number,
                row["text"],
                row["intent"],
                tuple(products) if products is not None else None,
                str(session) if session is not None else None,
                tuple(mentions),
                ordinal,
                urgent if isinstance(urgent, bool) else None,
            )
        )
    if not cases:
        raise UsageError(f"{path} holds no questions")
    return cases


def evaluate(assistant: Assistant, cases: list[Case], tag: str = "eval") -> Report:
    """Ask every question (sessions in order) and compare with the labels."""
    report = Report()
    gold_counts: Counter[str] = Counter()
    predicted_counts: Counter[str] = Counter()
    hits: Counter[str] = Counter()
    confusions: Counter[tuple[str, str]] = Counter()
    shown: dict[str | None, list[str]] = {}
    for case in cases:
        session = f"{tag}:{case.session}" if case.session else None
        if case.ordinal is not None:
            listed = shown.get(session, [])
            case = replace(case, products=tuple(listed[case.ordinal - 1 : case.ordinal]))
        reply = assistant.reply(case.text, session=session)
        kb = assistant.knowledge
        listed = [p.id for p in kb.named_in(reply.text, kb.products.values())]
        if len(listed) >= 2:
            # "The second one" counts in the last list shown, not in the answer about one of them.
            shown[session] = listed
        report.total += 1
        gold_counts[case.intent] += 1
        predicted_counts[reply.intent] += 1
        intent_ok = reply.intent == case.intent
        if intent_ok:
            report.intent_correct += 1
            hits[case.intent] += 1
        else:
            confusions[(case.intent, reply.intent)] += 1
        products_ok = True
        if case.products is not None and case.intent != "condition_treatments":
            report.product_total += 1
            products_ok = set(reply.products) == set(case.products)
            report.product_correct += products_ok
        why = _content_problem(case, reply.text, reply.urgent)
        if intent_ok and products_ok and not why:
            report.all_ok += 1
        else:
            report.misses.append(
                {
                    "line": case.line,
                    "text": case.text,
                    "intent": case.intent,
                    "products": list(case.products or []),
                    "predicted": reply.intent,
                    "predicted_products": reply.products,
                    "confidence": reply.confidence,
                    "why": why,
                }
            )
    for name in sorted(set(gold_counts) | set(predicted_counts)):
        precision = hits[name] / predicted_counts[name] if predicted_counts[name] else 0.0
        recall = hits[name] / gold_counts[name] if gold_counts[name] else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        report.per_intent[name] = {
            "precision": round(precision, 4),
            "recall": round(recall, 4),
            "f1": round(f1, 4),
            "support": gold_counts[name],
        }
    report.confusions = [(g, p, n) for (g, p), n in confusions.most_common()]
    return report


#: Answers that admit a gap or ask back: honest, but they leave the question unanswered.
_UNANSWERED = ("I don't have reliable information", "Which therapy do you mean?")


def _content_problem(case: Case, text: str, urgent: bool) -> str:
    """What the answer misses that the label asks for, or "" when nothing."""
    if case.urgent is not None and urgent != case.urgent:
        return "urgent" if case.urgent else "false alarm"
    missing = [name for name in case.mentions if name.lower() not in text.lower()]
    if missing:
        return "does not name " + ", ".join(missing)
    if case.intent != "out_of_scope" and any(marker in text for marker in _UNANSWERED):
        return "leaves the question unanswered"
    return ""
