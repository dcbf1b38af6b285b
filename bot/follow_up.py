"""Follow-ups: what a short message leaves out, filled in from the conversation so far.

"How much is it?", "the second one", "the one from BMS", "and for Aucatzyl?", "is it safe?"
after an answer about CAR-T. After each answer, :meth:`Conversation.remember` keeps what the next
message may refer to.
"""

from __future__ import annotations

import itertools
import re

from bot.policy import Decider
from bot.reply import Reply
from bot.session import Context, SessionStore
from bot.turn import PRONOUNS, Turn
from intents.catalog import Catalog
from intents.matcher import IntentMatcher
from knowledge.loader import KnowledgeBase
from knowledge.resolver import Resolver
from knowledge.schema import Product

__all__ = ["Conversation"]


class Conversation:
    """Reads a message against the conversation before it, and keeps what the next one needs.

    Args:
        catalog (Catalog): the scope words (follow-up words, ordinals, fillers).
        knowledge (KnowledgeBase): products, classes and their descriptions.
        matcher (IntentMatcher): to read a question again with a picked product in place.
        resolver (Resolver): which names keep their words.
        decider (Decider): the general-to-specific intents.
        stop_words (frozenset[str]): words that describe nothing.
        sessions (SessionStore): where contexts are kept.
    """

    def __init__(
        self,
        catalog: Catalog,
        knowledge: KnowledgeBase,
        matcher: IntentMatcher,
        resolver: Resolver,
        decider: Decider,
        stop_words: frozenset[str],
        sessions: SessionStore,
    ) -> None:
        self.catalog = catalog
        self.knowledge = knowledge
        self.matcher = matcher
        self.resolver = resolver
        self.decider = decider
        self.stop_words = stop_words
        self.sessions = sessions
        self._follow_words = frozenset(catalog.scope.follow_up_words)
        self._name_fillers = frozenset(catalog.scope.name_fillers)

    def is_follow_up(self, turn: Turn, context: Context) -> bool:
        words = turn.normalized.split()
        return bool(context.products or context.conditions or context.topics or context.listed) and (
            len(words) <= self.catalog.scope.follow_up_max_words
            or any(w.strip("?.!,") in self._follow_words for w in words)
        )

    def masked_with_context(self, turn: Turn, context: Context) -> str:
        """The masked text, with "it" standing for the product of a follow-up."""
        assert turn.resolution is not None
        masked = turn.resolution.masked
        words = masked.split()
        pronouns = PRONOUNS
        if (
            not (context.products or context.listed or self._context_class(context))
            or turn.did_you_mean
            or not self.is_follow_up(turn, context)
        ):
            return masked
        named = [m for m in turn.resolution.mentions if m.kind != "other"]
        if len(named) < len(turn.resolution.mentions) and not any(w in pronouns for w in words):
            # "what is Keytruda?" after Kymriah is about Keytruda; only "is it chemo?" points back.
            return masked
        if any(m.id not in self.resolver.unmasked for m in named):
            # "how is it different from Tecelra?": "it" is the product talked about before. Another
            # medicine named ("is it chemo?") leaves "it" the product.
            others = [p for p in context.recent if p not in turn.products]
            if turn.products and others and not (turn.conditions or turn.topics):
                return " ".join("xproductx" if w in pronouns else w for w in words)
            return masked
        if any(w in pronouns for w in words):
            return " ".join("xproductx" if w in pronouns else w for w in words)
        return masked + " xproductx"

    def _pick_from_list(self, turn: Turn, context: Context) -> None:
        """ "How much is the second one?", "the hemophilia B one", "which one works better?"."""
        assert turn.resolution is not None
        words = [w.strip("?.!,") for w in turn.normalized.split()]
        candidates = context.listed or (context.recent[-2:] if len(context.recent) >= 2 else [])
        if (
            turn.products
            or not candidates
            or len(turn.resolution.masked.split()) > self.catalog.scope.follow_up_max_words + 3
        ):
            return
        scope = self.catalog.scope
        listed = [self.knowledge.products[p] for p in candidates if p in self.knowledge.products]
        position = next((scope.ordinals[w] for w in words if w in scope.ordinals), None)
        current = set(context.products)
        one = "one" in words or "ones" in words
        asks_which = bool(words) and words[0] == "which"
        described = self._described(words, listed) if one or asks_which else []
        described_by: set[str] = set()
        if not context.listed and (
            position is not None or not (set(words) & set(scope.list_words) or described)
        ):
            # The products talked about one after the other are no list to count in, but "which
            # one", "both" or "the newer one" can still mean them.
            return
        several = self._several(words, position)
        if several and len(listed) >= 2:
            # "the first two", "the last 3": that many from that end of the list.
            picked = listed[:several] if position == 1 else listed[-several:]
        elif position is not None and -len(listed) <= position <= len(listed) and position != 0:
            picked = [listed[position - 1 if position > 0 else position]]
        elif set(words) & set(scope.other_words) and current and current < {p.id for p in listed}:
            # "the other one": the listed products not talked about just now.
            picked = [p for p in listed if p.id not in current]
        elif (turn.conditions or turn.groups) and (one or asks_which or set(words) & set(scope.list_words)):
            # "the hemophilia B one", "which of those is for prostate?": the listed products for it.
            treated = self.knowledge.conditions_meant(turn.conditions, turn.groups)
            picked = [p for p in listed if treated & set(p.conditions)]
        elif described:
            # "the one from BMS", "the newer one", "the CRISPR one".
            picked = described
            described_by = set(words) & set().union(
                *(self.knowledge.descriptors(p.id) | self.knowledge.condition_words(p.id) for p in picked)
            )
            described_by |= set(words) & set(scope.recency_words)
        elif set(words) & set(scope.list_words):
            picked = listed
        else:
            return
        if not picked:
            return
        picked_by_use = bool(turn.conditions or turn.groups)
        turn.products, turn.from_context = [p.id for p in picked], True
        turn.conditions, turn.groups = [], []
        # Read the question again with the picked products in place of "the second one" (and of
        # the condition that picked them: "the hemophilia A one, how much?").
        refer = (
            set(scope.ordinals)
            | set(scope.counts)
            | set(scope.list_words)
            | set(scope.other_words)
            | {"one", "the"}
        )
        refer |= {"xconditionx", "xgroupx"} if picked_by_use else set()
        masked = " ".join(
            "xproductx" if w.strip("?.!,") in refer or w.strip("?.!,").isdigit() else w
            for w in turn.resolution.masked.split()
        )
        # "the second one" is one product, read as one name.
        masked = re.sub(r"\bxproductx(?: xproductx)+\b", "xproductx", masked)
        allowed = self.decider.product_intents
        used = self._follow_words | self._name_fillers | described_by
        asked = [w for w in masked.split() if w != "xproductx" and w.strip("?.!,") not in used]
        asked = [w for w in asked if w.strip("?.!,")]
        previous = context.intent
        if not asked:
            # "and the fifth one?" asks the question before it again, of another product; after a
            # list, "what about the one from BMS?" asks what it is.
            turn.intent = (
                previous if previous in allowed and previous != "product_compare" else "product_overview"
            )
            return
        better = self.matcher.best_of(self.matcher.classify(turn.normalized, masked), allowed)
        if better is not None and (
            self.catalog.spec(turn.intent).needs != "product" or better.confidence > turn.confidence
        ):
            # Read with the picked product in place, the question is clearer than without it.
            turn.intent, turn.confidence = better.intent, better.confidence
        if len(picked) > 1 and (
            turn.intent == "product_overview" or set(words) & set(scope.comparative_words)
        ):
            # "which one has fewer risks?": the aspect asked, compared across the products.
            spec = self.catalog.spec(turn.intent)
            turn.aspect = spec.aspect if turn.intent != "product_compare" else None
            turn.intent = "product_compare"

    def _several(self, words: list[str], position: int | None) -> int | None:
        """How many "the first two" or "the last 3" picks, or None for one item or no count."""
        if position not in (1, -1):
            return None
        counts = self.catalog.scope.counts
        return next(
            (
                counts[after]
                for word, after in itertools.pairwise(words)
                if word in self.catalog.scope.ordinals and after in counts
            ),
            None,
        )

    def _described(self, words: list[str], listed: list[Product]) -> list[Product]:
        """The listed products a follow-up describes: by maker, kind of technology or age."""
        ages = self.catalog.scope.recency_words
        # "the newer one", not "for older kids".
        recency = next(
            (
                ages[w]
                for w, after in zip(words, [*words[1:], "one"], strict=True)
                if w in ages and after in ("one", "ones")
            ),
            None,
        )
        if recency is not None and all(p.first_approval for p in listed):
            dated = sorted(listed, key=lambda p: str(p.first_approval))
            return [dated[-1] if recency == "newest" else dated[0]]
        return self.knowledge.described(set(words) - self.stop_words - {"one", "ones"}, listed)

    def apply(self, turn: Turn, context: Context) -> None:
        """Fill what a follow-up leaves out from the conversation so far."""
        assert turn.resolution is not None
        self._pick_from_list(turn, context)
        if turn.from_context:
            return
        fillers = self._follow_words | self._name_fillers
        masked_words = [w for w in turn.resolution.masked.split() if w.strip("?.!,") not in fillers]
        only_names = bool(masked_words) and all(w.startswith("x") and w.endswith("x") for w in masked_words)
        previous = context.intent or ""
        unsure = turn.prediction is not None and turn.prediction.confidence < 0.9
        # "what about Yescarta?" after a question on Kymriah's side effects asks the same of Yescarta.
        same_product_question = (
            turn.products and previous.startswith("product_") and previous != "product_compare"
        )
        same_condition_question = turn.conditions and previous == "condition_treatments"
        if only_names and unsure and (same_product_question or same_condition_question):
            turn.intent = previous
        elif only_names and turn.products and not turn.conditions and not turn.topics:
            # A name on its own asks what it is.
            turn.intent = "product_overview"
        elif only_names and unsure and turn.conditions and not turn.products and not turn.topics:
            # "what about hemophilia A?": a condition on its own asks what is approved for it.
            turn.intent = "condition_treatments"
        if (
            turn.intent == "product_compare"
            and len(turn.products) < 2
            and context.recent
            and self.is_follow_up(turn, context)
        ):
            extra = [p for p in reversed(context.recent) if p not in turn.products]
            wanted = 2 - len(turn.products)
            if extra[:wanted]:
                turn.products = list(reversed(extra[:wanted])) + turn.products
                turn.from_context = True
            return
        if turn.products or turn.did_you_mean or not self.is_follow_up(turn, context):
            return
        spec = self.catalog.intents.get(turn.intent)
        specific = self.decider.specific.get(turn.intent)
        if (
            specific
            and (context.products or self._context_class(context))
            and not (turn.conditions or turn.groups or self.strong(turn.topics))
        ):
            # "how much is it?" read as a general cost question is about the product talked about.
            turn.intent, spec = specific, self.catalog.intents[specific]
        wants_product = spec is not None and (
            spec.needs == "product" or self.catalog.spec(turn.intent).safety
        )
        if wants_product and self._names_own_class(turn):
            # "side effects of CAR-T?" after a Zolgensma answer asks about CAR-T, not Zolgensma.
            return
        if context.products and (wants_product or turn.intent in ("about_bot", "sources")):
            turn.products = list(context.products)
            turn.from_context = True
        elif wants_product and (cls := self._context_class(context)):
            # "is it safe?" after an answer about CAR-T: the class is what "it" means.
            turn.topics, turn.from_context = [cls, *(t for t in turn.topics if t != cls)], True
        elif context.listed and wants_product:
            # "is it given only once?" after a list of several: ask which one, with the list as buttons.
            turn.reason, turn.choices = "which_listed", list(context.listed)
        elif (
            context.conditions
            and not (turn.conditions or turn.groups)
            and turn.intent in ("condition_treatments", "clinical_trials")
        ):
            turn.conditions = list(context.conditions)
            turn.from_context = True
        elif (
            context.topics
            and not turn.topics
            and spec is not None
            and (spec.needs == "topic" or turn.intent == "sources")
        ):
            turn.topics = list(context.topics)
            turn.from_context = True

    def _context_class(self, context: Context) -> str | None:
        """The class of therapy the conversation is about, if any."""
        return next((t for t in context.topics if self.knowledge.class_members(t)), None)

    def _names_own_class(self, turn: Turn) -> bool:
        """A class of therapy named with no "it" or "they" pointing back to an earlier product."""
        words = {w.strip("?.!,") for w in turn.normalized.split()}
        return self._class_of(turn) is not None and not words & PRONOUNS

    def _class_of(self, turn: Turn) -> str | None:
        """The class of therapy a message asks about (a topic with members), if any."""
        return next((t for t in turn.topics if self.knowledge.class_members(t)), None)

    def strong(self, topics: list[str]) -> list[str]:
        return [t for t in topics if not self.knowledge.topics[t].weak]

    def remember(self, session: str | None, context: Context, turn: Turn, reply: Reply) -> None:
        if session is None:
            return
        if reply.intent != "sources":
            # "Where is that from?" next shows this answer's sources.
            context.sources, context.reviewed = [s.model_dump() for s in reply.sources], reply.reviewed
        if turn.listed:
            context.listed = turn.listed
        elif turn.products and not turn.from_context:
            context.listed = []
        for product in turn.products:
            if product in context.recent:
                context.recent.remove(product)
            context.recent.append(product)
        del context.recent[:-4]
        if turn.intent == "emergency":
            context.turns += 1
        elif turn.products or turn.conditions or turn.topics:
            if not turn.from_context:
                context.turns = 0
            context.products = turn.products or ([] if turn.conditions or turn.topics else context.products)
            if not turn.from_context:
                # What this message named is the subject now: "is it safe?" after "how does CAR-T
                # work?" asks about CAR-T.
                context.conditions = list(turn.conditions)
                context.topics = self.strong(turn.topics)
        if len(turn.listed) == 1 and not turn.products:
            # An answer that lists one product ("for Duchenne: Elevidys") makes it what "it" means next.
            context.products = list(turn.listed)
            context.conditions = turn.conditions or context.conditions
            context.topics = turn.topics or context.topics
            context.turns += 1
        else:
            context.turns += 1
        if not self.catalog.spec(turn.intent).small_talk and turn.intent != "emergency":
            context.intent = turn.intent
        self.sessions.update(session, context)
