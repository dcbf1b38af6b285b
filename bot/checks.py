"""``cgt-bot check``: validate the knowledge base and the intent catalog together.

Loading already validates each file against its schema; this adds the checks
across files (ids that exist, names that lead to one product, a template per
intent) and warns about products not reviewed for over a year.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from intents.catalog import collect_catalog
from knowledge.errors import DataError
from knowledge.loader import FACT_FIELDS, KnowledgeBase, Problem, collect
from knowledge.schema import Product

if TYPE_CHECKING:
    from bot.reply import Reply

__all__ = ["CheckResult", "answer_problems", "run_checks", "unsourced_facts"]


@dataclass
class CheckResult:
    """What ``cgt-bot check`` found."""

    errors: list[Problem] = field(default_factory=list)
    warnings: list[Problem] = field(default_factory=list)
    summary: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """True when nothing blocks the bot from starting."""
        return not self.errors


def run_checks() -> CheckResult:
    """Run every check on the packaged data files."""
    result = CheckResult()
    kb, problems = collect()
    catalog, catalog_problems = collect_catalog()
    problems += catalog_problems
    if not [p for p in problems if p.severity == "error"]:
        # Names are compared the way messages are read, so the real tokenizer is needed.
        from bot.language import build_nlp
        from knowledge.resolver import Resolver

        resolver = Resolver(kb, build_nlp())
        for name, products in resolver.products_sharing_names():
            explicit = [
                pid
                for pid in products
                if name
                in {" ".join(a.lower().split()) for a in (*kb.products[pid].aliases, kb.products[pid].brand)}
            ]
            if len(explicit) > 1:
                problems.append(
                    Problem("knowledge/data/products", f"alias '{name}' leads to {', '.join(explicit)}")
                )
    problems += front_end_problems()
    if not [p for p in problems if p.severity == "error"]:
        problems += answer_problems()
    problems += list(kb.stale())
    result.errors = [p for p in problems if p.severity == "error"]
    result.warnings = [p for p in problems if p.severity != "error"]
    kinds = Counter(p.kind for p in kb.products.values())
    listed = len(kb.listed_products())
    result.summary = [
        f"products:   {len(kb.products)} ({listed} listed, the rest family members)",
        *[f"  {kind}: {count}" for kind, count in sorted(kinds.items())],
        f"conditions: {len(kb.conditions)} ({sum(1 for c in kb.conditions if kb.products_for_condition(c))} "
        "with an approved product)",
        f"topics:     {len(kb.topics)}; comparisons: {len(kb.comparisons)}",
        f"not covered (other medicines, acellular products): {len(kb.not_covered)}",
    ]
    if catalog is not None:
        examples = sum(len(v) for v in catalog.examples.values())
        result.summary.append(f"intents:    {len(catalog.intents)} with {examples} examples")
    return result


def unsourced_facts(kb: KnowledgeBase, product: Product, reply: Reply) -> list[str]:
    """The fact fields of ``product`` whose text the answer shows without all of that fact's sources.

    A fact is rendered when its text is in the answer; its sources must then be among the answer's
    (a source id that resolves to nothing, or a template that reads a fact past the tracing, both
    show here).
    """
    shown = {s.title for s in reply.sources}
    missing = []
    for name in FACT_FIELDS:
        fact = getattr(product, name)
        text = getattr(fact, "text", None)
        if not text or text not in reply.text:
            continue
        wanted = {s.title for s in kb.fact_sources(fact, product)}
        if not wanted or not wanted <= shown:
            missing.append(name)
    return missing


def front_end_problems() -> list[Problem]:
    """The words of the terminal chat and of Telegram, each file checked as the front end reads it."""
    from bot.telegram.texts import load_texts
    from bot.texts import terminal_texts

    found: list[Problem] = []
    for load in (terminal_texts, load_texts):
        try:
            load()
        except DataError as error:
            # Each problem already reads "file: field: message".
            found += [Problem(*message.split(": ", 1)) for message in error.problems if ": " in message]
    return found


def answer_problems() -> list[Problem]:
    """Ask every product question about every product, then every suggestion it offers.

    A fact an answer shows without its sources (see ``unsourced_facts``), and a suggestion whose
    answer states no fact (the knowledge base cannot answer it for that product), are both errors:
    every fact shown names its source, and a person who taps a suggestion must get a real answer.
    """
    from bot.assistant import Assistant

    assistant = Assistant()
    found: list[Problem] = []
    from jinja2 import TemplateError

    for name, spec in assistant.catalog.intents.items():
        for source in spec.suggestions if spec.needs == "product" else []:
            for product in assistant.knowledge.listed_products():
                try:
                    assistant.renderer.render_string(source, p=product, c=None, t=None)
                except (TemplateError, AttributeError, TypeError) as error:
                    # The answer would drop this suggestion silently; a typo must not pass.
                    found.append(
                        Problem(f"intents.yaml: {name}: {product.id}", f"suggestion does not render: {error}")
                    )
    questions = [(n, s.question) for n, s in assistant.catalog.intents.items() if s.question]
    # A term one product field answers ("does Kymriah have a REMS?") is asked of every product too.
    questions += [
        (f"term {t.id}", f"Does {{{{ p.brand }}}} have a {(t.aliases or [t.name])[0]}?")
        for t in assistant.knowledge.topics.values()
        if t.product_fact
    ]
    for product in assistant.knowledge.listed_products():
        for intent, template in questions:
            question = assistant.renderer.render_string(template, p=product)
            session = f"check-{product.id}-{intent}"
            reply = assistant.reply(question, session=session)
            for name in unsourced_facts(assistant.knowledge, product, reply):
                message = f"'{question}' shows {name} without its sources"
                found.append(Problem(f"intents.yaml: {intent}: {product.id}", message))
            for number, suggestion in enumerate(reply.suggestions):
                # Each suggestion is asked as a person would: right after the answer offering it.
                if number:
                    assistant.reset(session)
                    assistant.reply(question, session=session)
                answer = assistant.reply(suggestion, session=session)
                for name in unsourced_facts(assistant.knowledge, product, answer):
                    message = f"suggestion '{suggestion}' shows {name} without its sources"
                    found.append(Problem(f"intents.yaml: {intent}: {product.id}", message))
                if not assistant.catalog.spec(answer.intent).small_talk and not answer.sources:
                    message = f"suggestion '{suggestion}' (after '{question}') gets no sourced answer"
                    found.append(Problem(f"intents.yaml: {intent}: {product.id}", message))
    return found
