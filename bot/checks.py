"""``cgt-bot check``: validate every data file together: the knowledge base, the intent
catalog, the emergency screen's data and the front ends' words.

Each file is read as its package reads it (``knowledge.datafile``); this adds the checks
across files (ids that exist, names that lead to one product, a template per intent) and
warns about products not reviewed for over a year.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from bot.telegram.texts import TEXTS_PATH, Texts
from bot.texts import TERMINAL_TEXTS, TerminalTexts
from intents.catalog import DATA_DIR as INTENTS_DIR
from intents.catalog import collect_catalog
from intents.emergency import collect_emergency_data
from knowledge.datafile import Problem, read_model
from knowledge.loader import DATA_DIR as KNOWLEDGE_DIR
from knowledge.loader import FACT_FIELDS, KnowledgeBase, collect
from knowledge.schema import Product

if TYPE_CHECKING:
    from bot.reply import Reply

__all__ = ["DEFAULT_ROOTS", "CheckResult", "DataRoots", "answer_problems", "run_checks", "unsourced_facts"]

_PROJECT = KNOWLEDGE_DIR.resolve().parents[1]


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


@dataclass(frozen=True)
class DataRoots:
    """The folders whose data files are checked; problems name files relative to them."""

    knowledge: Path = KNOWLEDGE_DIR
    intents: Path = INTENTS_DIR
    front_ends: Path = TERMINAL_TEXTS.parent


#: What ``cgt-bot check`` checks: the packaged data (tests point it at broken copies).
DEFAULT_ROOTS = DataRoots()


def run_checks(roots: DataRoots | None = None) -> CheckResult:
    """Run every check on the data files under ``roots`` (the packaged ones by default)."""
    roots = roots or DEFAULT_ROOTS
    result = CheckResult()
    kb, problems = collect(roots.knowledge)
    catalog, catalog_problems = collect_catalog(roots.intents)
    problems += catalog_problems
    problems += collect_emergency_data(roots.intents)
    problems += front_end_problems(roots.front_ends)
    if not [p for p in problems if p.severity == "error"]:
        problems += _shared_names(kb)
    if not [p for p in problems if p.severity == "error"]:
        problems += answer_problems(roots)
    problems += list(kb.stale())
    result.errors = [p for p in problems if p.severity == "error"]
    result.warnings = [p for p in problems if p.severity != "error"]
    result.summary = [f"data:       {', '.join(_shown(root) for root in vars(roots).values())}"]
    result.summary += _summary(kb)
    if catalog is not None:
        examples = sum(len(v) for v in catalog.examples.values())
        result.summary.append(f"intents:    {len(catalog.intents)} with {examples} examples")
    return result


def _shown(root: Path) -> str:
    """A data root as the summary names it: relative to the project when it is inside it."""
    try:
        return root.resolve().relative_to(_PROJECT).as_posix()
    except ValueError:
        return str(root)


def _shared_names(kb: KnowledgeBase) -> list[Problem]:
    """Names a person may type that lead to more than one product."""
    # Names are compared the way messages are read, so the real tokenizer is needed.
    from bot.language import build_nlp
    from knowledge.resolver import Resolver

    problems = []
    resolver = Resolver(kb, build_nlp())
    for name, products in resolver.products_sharing_names():
        explicit = [
            pid
            for pid in products
            if name
            in {" ".join(a.lower().split()) for a in (*kb.products[pid].aliases, kb.products[pid].brand)}
        ]
        if len(explicit) > 1:
            problems.append(Problem("products", f"alias '{name}' leads to {', '.join(explicit)}"))
    return problems


def _summary(kb: KnowledgeBase) -> list[str]:
    kinds = Counter(p.kind for p in kb.products.values())
    listed = len(kb.listed_products())
    return [
        f"products:   {len(kb.products)} ({listed} listed, the rest family members)",
        *[f"  {kind}: {count}" for kind, count in sorted(kinds.items())],
        f"conditions: {len(kb.conditions)} ({sum(1 for c in kb.conditions if kb.products_for_condition(c))} "
        "with an approved product)",
        f"topics:     {len(kb.topics)}; comparisons: {len(kb.comparisons)}",
        f"not covered (other medicines, acellular products): {len(kb.not_covered)}",
    ]


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


def front_end_problems(root: Path = TERMINAL_TEXTS.parent) -> list[Problem]:
    """The words of the terminal chat and of Telegram under ``root``, each file checked against
    the model its front end reads it with."""
    return [
        *read_model(root / TERMINAL_TEXTS.name, root, TerminalTexts)[1],
        *read_model(root / TEXTS_PATH.name, root, Texts)[1],
    ]


def answer_problems(roots: DataRoots = DEFAULT_ROOTS) -> list[Problem]:
    """Ask every product question about every product, then every suggestion it offers.

    A fact an answer shows without its sources (see ``unsourced_facts``), and a suggestion whose
    answer states no fact (the knowledge base cannot answer it for that product), are both errors:
    every fact shown names its source, and a person who taps a suggestion must get a real answer.
    """
    from bot.assistant import Assistant

    # The emergency data is always the packaged one: the screen reads no other.
    assistant = Assistant(roots.knowledge, roots.intents)
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
