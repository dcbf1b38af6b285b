"""The decision policy: answer, ask back, or say a question is outside what the bot covers.

The rules are data (``intents/data/policy.yaml``): an ordered table of named rules, each a list
of conditions and an action. This module names the conditions and the actions, checks the table
against them when it is loaded, and applies it to a :class:`~bot.turn.Turn`.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from bot.turn import PRONOUNS, Turn
from intents.catalog import Catalog, PolicyRule
from intents.matcher import IntentMatcher
from knowledge.errors import DataError
from knowledge.loader import KnowledgeBase
from knowledge.resolver import common_words
from knowledge.schema import Product

__all__ = ["Decider"]

_FILE = "policy.yaml"  # named, as every data file is, relative to its data root
_NEEDS = ("product", "topic", "condition", "domain", "nothing")


@dataclass(frozen=True)
class _Rule:
    """A rule with its conditions bound to the functions that test them."""

    spec: PolicyRule
    tests: tuple[tuple[bool, Callable[[Turn], bool]], ...]
    action: Callable[[Turn], None] | None
    #: The intents under which every ``is:``, ``needs:`` and ``missing:`` condition can hold
    #: (None: any), so that a rule for other intents is passed over without testing it.
    intents: frozenset[str] | None = None

    def holds(self, turn: Turn) -> bool:
        return all(test(turn) != negated for negated, test in self.tests)


class Decider:
    """Applies the policy table to a turn the classifier and the conversation have filled in.

    Args:
        catalog (Catalog): intents, scope rules and the policy table.
        knowledge (KnowledgeBase): classes of therapy and their terms.
        matcher (IntentMatcher): the classifier's scores, the safety screen and its vocabulary.
        stop_words (frozenset[str]): words that say nothing about what is asked.
    """

    def __init__(
        self, catalog: Catalog, knowledge: KnowledgeBase, matcher: IntentMatcher, stop_words: frozenset[str]
    ) -> None:
        self.catalog = catalog
        self.kb = knowledge
        self.matcher = matcher
        self.stop_words = stop_words
        scope = catalog.scope
        self.thresholds = catalog.policy.thresholds
        self.therapy_topics = frozenset(scope.therapy_topics)
        self.treatment_words = frozenset(scope.treatment_words)
        self.use_words = frozenset(scope.use_words)
        self._age_words = frozenset(scope.age_words)
        # Words that describe no technology of their own ("dna", "change"); a maker may still
        # be called one ("Vertex").
        self._ordinary = (
            common_words() | frozenset(scope.domain_words) | self.treatment_words | self.use_words
        )
        self._when_words = frozenset(scope.when_words)
        self.product_intents = frozenset(n for n, s in catalog.intents.items() if s.needs == "product")
        self.aspect_intents = frozenset(
            n for n, s in catalog.intents.items() if s.needs == "product" and s.aspect
        )
        # The product intent behind each general one ("cost_general" -> "product_cost").
        self.specific = {
            spec.general: name
            for name, spec in catalog.intents.items()
            if spec.general and spec.needs == "product" and catalog.intents[spec.general].needs != "condition"
        }
        # What each intent needs, read by most rules: looked up once, not through the catalog.
        self._needs = {name: spec.needs for name, spec in catalog.intents.items()}
        self.rules = [self._bind(rule) for rule in catalog.policy.rules]
        # Per intent, the next rule from each position that can hold under it: most of the table
        # is for other intents, and testing even one condition of each costs a tenth of a reply.
        # An unknown intent is tried against every rule, so that it still fails as it did.
        self._every = list(range(len(self.rules) + 1))
        self._next = {intent: self._next_rules(intent) for intent in self._needs}

    # -- the engine --------------------------------------------------------------------------------

    def decide(self, turn: Turn) -> None:
        """Apply the rules in order; record the name of the rule that decided in ``turn.rule``."""
        following = self._next.get(turn.intent, self._every)
        at, end = following[0], len(self.rules)
        while at < end:
            rule = self.rules[at]
            if rule.holds(turn):
                spec = rule.spec
                if spec.intent is not None:
                    turn.intent = spec.intent
                if spec.reason is not None:
                    turn.reason = spec.reason.value
                if rule.action is not None:
                    rule.action(turn)
                turn.rule = spec.name
                if not spec.go_on:
                    return
                # An action may have changed the intent: the rules after this one are its own.
                following = self._next.get(turn.intent, self._every)
            at = following[at + 1]

    def _next_rules(self, intent: str) -> list[int]:
        """For each position in the table, the first rule from there on that can hold under
        ``intent`` (the table's length when none can)."""
        following = [len(self.rules)] * (len(self.rules) + 1)
        for at in range(len(self.rules) - 1, -1, -1):
            intents = self.rules[at].intents
            following[at] = at if intents is None or intent in intents else following[at + 1]
        return following

    def _bind(self, rule: PolicyRule) -> _Rule:
        tests = []
        for condition in rule.when:
            negated = condition.startswith("not ")
            name = condition.removeprefix("not ")
            tests.append((negated, self._condition(rule.name, name)))
        action = None
        if rule.do is not None:
            action = getattr(self, f"do_{rule.do}", None)
            if action is None:
                raise DataError([f"{_FILE}: rules.{rule.name}.do: no step named {rule.do!r}"])
        intents = None
        for condition in rule.when:
            allowed = self._intents_of(condition)
            if allowed is not None:
                intents = allowed if intents is None else intents & allowed
        return _Rule(rule, tuple(tests), action, intents)

    def _intents_of(self, condition: str) -> frozenset[str] | None:
        """The intents under which an ``is:``, ``needs:`` or ``missing:`` condition can hold
        (None: any; a negated one rules out too few to count)."""
        kind, _, value = condition.partition(":")
        if kind == "is" and value in self.catalog.intents:
            return frozenset({value})
        if kind in ("needs", "missing") and value in _NEEDS:
            return frozenset(name for name, needs in self._needs.items() if needs == value)
        return None

    def _condition(self, rule: str, name: str) -> Callable[[Turn], bool]:
        kind, _, value = name.partition(":")
        if kind == "is" and value in self.catalog.intents:
            return lambda turn: turn.intent == value
        if kind in ("needs", "missing") and value in _NEEDS:
            needs = self._needs
            if kind == "needs":
                return lambda turn: needs[turn.intent] == value
            return lambda turn: needs[turn.intent] == value and not self._has(turn, value)
        test = getattr(self, f"if_{name}", None) if not value else None
        if test is None:
            raise DataError([f"{_FILE}: rules.{rule}.when: no condition named {name!r}"])
        return test  # type: ignore[no-any-return]

    def _has(self, turn: Turn, need: str) -> bool:
        """Whether the turn holds what an intent with this need must have."""
        # Only the need asked about is worked out: "domain" looks through the topics each time.
        if need == "product":
            return bool(turn.products)
        if need == "topic":
            return bool(turn.topics)
        if need == "condition":
            return bool(turn.conditions or turn.groups)
        if need == "domain":
            return self.if_on_topic(turn)
        if need == "nothing":
            return True
        raise KeyError(need)

    # -- conditions (named ``if_<name>`` in policy.yaml without the prefix) -------------------------

    def strong(self, turn: Turn) -> list[str]:
        """The named ideas that are no everyday word ("CRS", not "cost")."""
        return [t for t in turn.topics if not self.kb.topics[t].weak]

    def class_of(self, turn: Turn) -> str | None:
        """The class of therapy a message asks about (a topic with members), if any."""
        return self._class_in(turn.topics)

    def _class_in(self, topics: Iterable[str]) -> str | None:
        return next((t for t in topics if self.kb.class_members(t)), None)

    def described(self, turn: Turn) -> tuple[list[Product], str]:
        """The products a message describes without naming one, and what narrowed them last:
        "words" (a maker, a technology), "condition", "class" or "" (nothing: no products).

        "The CRISPR one for sickle cell", "the hemophilia gene therapy Pfizer stopped", "the eye
        implant for MacTel": what it treats, its class, its maker and technology, each narrowing.
        """
        if turn.products or turn.others:
            return [], ""
        assert turn.resolution is not None
        # Several rules ask it of the same turn: worked out once for what it reads.
        pool, how = self._described(
            turn.normalized,
            turn.resolution.masked,
            tuple(turn.conditions),
            tuple(turn.groups),
            tuple(turn.topics),
        )
        return list(pool), how

    @functools.lru_cache(maxsize=512)  # noqa: B019 - one Decider lives as long as the process
    def _described(
        self,
        normalized: str,
        masked: str,
        conditions: tuple[str, ...],
        groups: tuple[str, ...],
        topics: tuple[str, ...],
    ) -> tuple[tuple[Product, ...], str]:
        pool = self.kb.listed_products()
        how = ""
        treated = self.kb.conditions_meant(conditions, groups)
        if treated:
            pool, how = [p for p in pool if treated & set(p.conditions)], "condition"
        cls = self._class_in(topics)
        if cls is not None:
            members = {p.id for p in self.kb.class_members(cls)}
            pool, how = [p for p in pool if p.id in members], how or "class"
        # The words left once names are masked ("gene therapy" already narrowed as a class), as
        # typed: a lemma ("based" -> "base") is no maker's or technology's name.
        typed = {w.strip("?.!,") for w in normalized.split()}
        said = {w for w in masked.split() if w in typed}
        # Only a maker's or technology's words that few products carry count ("pfizer", not
        # "genetic"; what a product treats narrowed above, as a condition named, or not at all:
        # "complete" of "complete DiGeorge anomaly" is no description), and only in a message that
        # speaks of a therapy ("the Novartis one", not "the stock price of Novartis").
        refers = cls is not None or bool(said & (self.treatment_words | {"one", "ones"}))
        by_words = (
            self.kb.described(said - self.stop_words, pool, most=4, uses=False, ordinary=self._ordinary)
            if refers
            else []
        )
        if by_words and len(by_words) < len(pool):
            return tuple(by_words), "words"
        return (tuple(pool) if how else ()), how

    def if_described_one(self, turn: Turn) -> bool:
        pool, how = self.described(turn)
        # "What treats MacTel?" lists what is approved for it; "how is the MacTel one put in?" asks
        # of the one product. An intent with a condition answer needs more than the condition, and
        # a class with one product ("is CRISPR safe?") is still asked about as a class.
        return len(pool) == 1 and (
            how == "words" or (how == "condition" and self.catalog.spec(turn.intent).for_condition is None)
        )

    def if_described_some(self, turn: Turn) -> bool:
        pool, how = self.described(turn)
        return how == "words" and 2 <= len(pool) <= 4

    def if_few_for_a_condition(self, turn: Turn) -> bool:
        pool, how = self.described(turn)
        return how in ("condition", "words") and bool(turn.conditions or turn.groups) and 2 <= len(pool) <= 3

    def if_described_by_words(self, turn: Turn) -> bool:
        pool, how = self.described(turn)
        return how == "words" and 1 <= len(pool) <= 4

    def if_long_message(self, turn: Turn) -> bool:
        """A story: its background names conditions and ages that the question may not ask about."""
        return len(turn.normalized.split()) > self.catalog.scope.long_message_words

    def if_asks_when(self, turn: Turn) -> bool:
        return bool(self._when_words & self._typed(turn))

    def if_asks_about_age(self, turn: Turn) -> bool:
        return bool(self._age_words & self._typed(turn))

    @staticmethod
    def _typed(turn: Turn) -> set[str]:
        """The message's words as typed, without their punctuation."""
        return {w.strip("?.!,") for w in turn.normalized.split()}

    def if_only_a_condition(self, turn: Turn) -> bool:
        """The message is a condition or a group of them and nothing else ("lymphoma?")."""
        assert turn.resolution is not None
        words = [w for w in turn.resolution.masked.split() if w.strip("?.!,")]
        return bool(words) and all(w.strip("?.!,") in ("xconditionx", "xgroupx") for w in words)

    def if_only_a_term(self, turn: Turn) -> bool:
        """The message is one named idea and nothing else ("ICANS?", "REMS"): what it is."""
        assert turn.resolution is not None
        return turn.resolution.masked.split() == ["xtopicx"] and len(self.strong(turn)) == 1

    def if_has_product(self, turn: Turn) -> bool:
        return bool(turn.products)

    def if_several_products(self, turn: Turn) -> bool:
        return len(turn.products) >= 2

    def if_has_topic(self, turn: Turn) -> bool:
        return bool(turn.topics)

    def if_has_topic_or_domain_word(self, turn: Turn) -> bool:
        return bool(turn.topics) or turn.domain_word

    def if_names_condition(self, turn: Turn) -> bool:
        return bool(turn.conditions)

    def if_names_condition_or_group(self, turn: Turn) -> bool:
        return bool(turn.conditions or turn.groups)

    def if_names_class(self, turn: Turn) -> bool:
        return self.class_of(turn) is not None

    def if_class_named_first(self, turn: Turn) -> bool:
        """The class is what the message is about: "is CAR-T a kind of chemo?", not "is Ozempic a
        gene therapy?"."""
        assert turn.resolution is not None
        cls = self.class_of(turn)
        starts = [(m.start, m.kind) for m in turn.resolution.mentions if m.kind == "other" or m.id == cls]
        return cls is not None and bool(starts) and min(starts)[1] != "other"

    def if_strong_topic(self, turn: Turn) -> bool:
        return bool(self.strong(turn))

    def if_therapy_topic(self, turn: Turn) -> bool:
        return any(t in self.therapy_topics for t in self.strong(turn))

    def if_others_named(self, turn: Turn) -> bool:
        return bool(turn.others)

    def if_general_on_strong_topic(self, turn: Turn) -> bool:
        """A general question ("is Keytruda a gene therapy?") about an idea the bot explains."""
        general = self.catalog.spec(turn.intent).needs in ("topic", "domain", "condition")
        return general and self.if_strong_topic(turn)

    def if_did_you_mean(self, turn: Turn) -> bool:
        return bool(turn.did_you_mean)

    def if_choices(self, turn: Turn) -> bool:
        return bool(turn.choices)

    def if_on_topic(self, turn: Turn) -> bool:
        named = turn.products or turn.conditions or turn.groups or turn.did_you_mean
        return bool(named or self.strong(turn)) or turn.domain_word or self.if_described_by_words(turn)

    def if_from_context(self, turn: Turn) -> bool:
        return turn.from_context

    def if_cue(self, turn: Turn) -> bool:
        return turn.prediction is not None and turn.prediction.reason == "cue"

    def if_small_talk(self, turn: Turn) -> bool:
        return self.catalog.spec(turn.intent).small_talk

    def if_out_of_scope_or_long_small_talk(self, turn: Turn) -> bool:
        # Chit-chat words in a long message ("thanks, my son has ...") do not make it small talk.
        long_small_talk = self.if_small_talk(turn) and len(turn.normalized.split()) > 10
        return turn.intent == "out_of_scope" or long_small_talk

    def if_mostly_unknown_words(self, turn: Turn) -> bool:
        assert turn.resolution is not None
        share = self.matcher.unknown_share(turn.resolution.masked, self.stop_words)
        return share >= self.catalog.scope.max_unknown_share

    def if_below_minimum(self, turn: Turn) -> bool:
        return turn.confidence < self.catalog.scope.min_confidence

    def if_below_own_minimum(self, turn: Turn) -> bool:
        minimum = self.catalog.spec(turn.intent).min_confidence
        return minimum is not None and turn.confidence < minimum

    def if_nothing_mentioned(self, turn: Turn) -> bool:
        return not (turn.products or turn.conditions or turn.groups or turn.topics or turn.did_you_mean)

    def if_has_specific(self, turn: Turn) -> bool:
        return turn.intent in self.specific

    def if_general_fits(self, turn: Turn) -> bool:
        general = self.catalog.spec(turn.intent).general
        return general is not None and self._has(turn, self.catalog.spec(general).needs)

    def if_has_aspect(self, turn: Turn) -> bool:
        return self.catalog.spec(turn.intent).aspect is not None

    def if_has_for_condition(self, turn: Turn) -> bool:
        return self.catalog.spec(turn.intent).for_condition is not None

    def if_asks_for_treatment(self, turn: Turn) -> bool:
        """Treatment words ("anything for lymphoma?"), or a therapy named with the condition."""
        return bool(self._lemmas(turn) & self.treatment_words) or self.if_therapy_topic(turn)

    def if_asks_about_a_use(self, turn: Turn) -> bool:
        """What a therapy can do for something: "can stem cells regrow teeth?", "CAR-T for ..."."""
        assert turn.resolution is not None
        for_use = any(f"{p} for" in turn.resolution.masked for p in ("xtopicx", "xclassx"))
        return bool(self._lemmas(turn) & self.use_words) or for_use

    def if_asks_about_signs(self, turn: Turn) -> bool:
        return self.matcher.screen.asks_about_signs(turn.normalized)

    def if_personal_rule(self, turn: Turn) -> bool:
        return self.matcher.screen.is_personal_advice(turn.normalized)

    def if_bare_product_question(self, turn: Turn) -> bool:
        """A short question about "it" with nothing else unknown: "how much is it?"."""
        assert turn.resolution is not None
        words = turn.resolution.masked.split()
        unknown = self.matcher.unknown_share(turn.resolution.masked, self.stop_words)
        return bool(set(words) & PRONOUNS) and len(words) <= 6 and unknown == 0

    def if_advice_in_domain(self, turn: Turn) -> bool:
        """ "Can I take ibuprofen after my CAR-T?": a decision, declined kindly, not another medicine."""
        return turn.intent == "personal_advice" and self.if_on_topic(turn)

    def clear(self, confidence: float) -> bool:
        """Whether a reading is clear enough to stand on its own (``clear_reading``)."""
        return confidence >= self.thresholds.get("clear_reading", 1.0)

    def if_clear_reading(self, turn: Turn) -> bool:
        assert turn.resolution is not None
        known = self.matcher.unknown_share(turn.resolution.masked, self.stop_words) == 0
        return known and self.clear(turn.confidence)

    def if_confident_half(self, turn: Turn) -> bool:
        return turn.confidence >= self.thresholds.get("bare_question", 0.5)

    def if_product_fact_term(self, turn: Turn) -> bool:
        return any(self.kb.topics[t].product_fact for t in self.strong(turn))

    @staticmethod
    def _lemmas(turn: Turn) -> set[str]:
        assert turn.resolution is not None
        doc = turn.resolution.doc
        return {t.lemma_.lower() for t in doc} | {t.text for t in doc}

    # -- actions (named ``do_<name>``) --------------------------------------------------------------

    def _take_best(self, turn: Turn, allowed: frozenset[str]) -> None:
        assert turn.prediction is not None
        better = self.matcher.best_of(turn.prediction, allowed)
        if better is not None:
            turn.intent, turn.confidence = better.intent, better.confidence

    def do_best_product_reading(self, turn: Turn) -> None:
        self._take_best(turn, self.product_intents)

    def do_best_aspect_reading(self, turn: Turn) -> None:
        self._take_best(turn, self.aspect_intents)

    def do_take_described(self, turn: Turn) -> None:
        """The one product described is the one asked about; several described are asked back."""
        pool, _ = self.described(turn)
        if len(pool) == 1:
            self.do_take_all_described(turn)
        else:
            turn.reason, turn.choices = "which_listed", [p.id for p in pool]

    def do_take_all_described(self, turn: Turn) -> None:
        """The products described take the place of what described them (condition, class)."""
        pool, _ = self.described(turn)
        turn.products, turn.conditions, turn.groups = [p.id for p in pool], [], []
        turn.topics = [t for t in turn.topics if not self.kb.class_members(t)]

    def do_to_specific(self, turn: Turn) -> None:
        turn.intent = self.specific[turn.intent]

    def do_to_general(self, turn: Turn) -> None:
        general = self.catalog.spec(turn.intent).general
        assert general is not None
        turn.intent = general

    def do_to_for_condition(self, turn: Turn) -> None:
        target = self.catalog.spec(turn.intent).for_condition
        assert target is not None
        turn.intent = target

    def do_to_terms_intent(self, turn: Turn) -> None:
        """The intent that answers terms from a product's own fields (``terms`` in intents.yaml)."""
        answering = next((n for n, spec in self.catalog.intents.items() if spec.terms), None)
        if answering is not None:
            turn.intent = answering

    def do_keep_strong_topics(self, turn: Turn) -> None:
        turn.topics = self.strong(turn)

    def do_note_class(self, turn: Turn) -> None:
        turn.cls = self.class_of(turn)

    def do_general_for_class(self, turn: Turn) -> None:
        """The general answer, told of the class named (its own facts on that aspect first)."""
        turn.cls = self.class_of(turn)
        self.do_to_general(turn)

    def do_answer_for_class(self, turn: Turn) -> None:
        """The class facts; a term of that class named too ("does CAR-T need a REMS?") is the answer."""
        cls = self.class_of(turn)
        assert cls is not None
        terms = [
            t for t in self.strong(turn) if not self.kb.class_members(t) and cls in self.kb.topics[t].related
        ]
        if terms:
            turn.intent, turn.topics = "concept_definition", terms
        else:
            turn.reason, turn.cls = "class", cls
