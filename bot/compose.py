"""Composing the reply: a decided turn, rendered from its template with the facts it names.

The reply's sources are those of the facts the template showed; its suggestions are questions
the knowledge base can answer next.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from bot.render import Renderer
from bot.reply import Reply, SourceRef
from bot.session import Context
from bot.turn import Turn
from intents.catalog import Catalog
from intents.matcher import IntentMatcher
from knowledge.loader import KnowledgeBase
from knowledge.resolver import Resolution
from knowledge.schema import Product

__all__ = ["Composer"]


class Composer:
    """Turns a decided :class:`~bot.turn.Turn` into a :class:`~bot.reply.Reply`.

    Args:
        catalog (Catalog): intents, their suggestions and questions.
        knowledge (KnowledgeBase): the facts.
        matcher (IntentMatcher): the calibration of the confidence people see.
        renderer (Renderer): the templates.
    """

    def __init__(
        self, catalog: Catalog, knowledge: KnowledgeBase, matcher: IntentMatcher, renderer: Renderer
    ) -> None:
        self.catalog = catalog
        self.knowledge = knowledge
        self.matcher = matcher
        self.renderer = renderer
        # Suggestions depend only on the intent and the first product, condition and topic, and
        # those repeat from answer to answer.
        self._follow_ups = lru_cache(maxsize=4096)(self._rendered_suggestions)

    def compose(self, turn: Turn, session_context: Context | None = None) -> Reply:
        """The reply to a decided turn: its template rendered with the facts it names, the sources
        of the facts shown, the products a follow-up may pick from, and suggestions."""
        kb = self.knowledge
        products = [kb.products[p] for p in turn.products if p in kb.products]
        conditions = [kb.conditions[c] for c in turn.conditions if c in kb.conditions]
        groups = [kb.groups[g] for g in turn.groups if g in kb.groups]
        topics = [kb.topics[t] for t in turn.topics if t in kb.topics]
        others = [kb.not_covered[o] for o in turn.others if o in kb.not_covered]
        unsure = [kb.products[p] for p in turn.did_you_mean if p in kb.products]
        spec = self.catalog.intents.get(turn.intent)
        # The templates' context: each name holds its own kind of value, read by name.
        context: dict[str, Any] = {
            "cls": kb.topics[turn.cls] if turn.cls else None,
            "aspect": spec.aspect if spec is not None else None,
            "members": kb.class_members(turn.cls) if turn.cls else [],
            "choices": [kb.products[p] for p in turn.choices if p in kb.products],
            "compared": turn.aspect,
            "intent": turn.intent,
            "reason": turn.reason,
            "products": products,
            "p": products[0] if products else None,
            "conditions": conditions,
            "c": conditions[0] if conditions else None,
            "groups": groups,
            "topics": topics,
            "t": topics[0] if topics else None,
            "others": others,
            "unsure": unsure,
            "language": turn.language,
            "truncated": turn.truncated,
            "from_context": turn.from_context,
            "last_sources": session_context.sources if session_context else [],
            "last_reviewed": session_context.reviewed if session_context else None,
        }
        rendered = self.renderer.render_traced(turn.intent, **context)
        text = rendered.text
        used, reviewed = self.renderer.sources_used(rendered.used)
        sources = [SourceRef(title=s.title, url=s.url, date=s.date) for s in used]
        if turn.intent == "sources":
            # The answer states the previous answer's sources, so those are its sources.
            sources = [SourceRef.model_validate(s) for s in context["last_sources"]]
            reviewed = context["last_reviewed"]
        turn.listed = [p.id for p in self._listed(turn, {**context, "text": text})]
        suggestions = self._suggestions(turn, context, unsure)
        urgent = turn.intent == "emergency"
        if urgent:
            suggestions = []
        return Reply(
            intent=turn.intent,
            confidence=round(max(0.0, min(1.0, self._reported_confidence(turn))), 3),
            products=[p.id for p in products],
            conditions=[c.id for c in conditions],
            topics=[t.id for t in topics],
            did_you_mean=[p.id for p in unsure] if not products else [],
            urgent=urgent,
            text=text,
            suggestions=suggestions,
            sources=sources,
            reviewed=reviewed,
        )

    def _listed(self, turn: Turn, context: dict[str, Any]) -> list[Product]:
        """The products a list answer shows, in order, for follow-ups such as "the second one"."""
        if context["members"]:
            return list(context["members"])
        if turn.intent == "condition_treatments" and context["conditions"]:
            return [p for c in context["conditions"] for p in self.renderer.treats(c)]
        if turn.intent in ("condition_treatments", "list_products"):
            return list(self.renderer.select_products(context["topics"], context["groups"], []).items)
        if turn.intent == "whats_new":
            # In the order a person reads them: the newest of a class first, then each change.
            return self.knowledge.named_in(context["text"], self.knowledge.listed_products())
        return []

    def _reported_confidence(self, turn: Turn) -> float:
        """The classifier's probability after calibration; rule decisions keep their own.

        Decisions use the raw probabilities their thresholds were set on; people and scripts
        see a calibrated one (temperature fitted on held-out catalog examples).
        """
        prediction = turn.prediction
        if prediction is None or not prediction.scores or turn.intent not in prediction.scores:
            return turn.confidence
        return self.matcher.calibrated(prediction.scores, turn.intent)

    def _suggestions(self, turn: Turn, context: dict[str, Any], unsure: list[Product]) -> list[str]:
        out: list[str] = []
        if context["p"] is not None:
            # The other question of a message that asked two, offered first.
            for intent in dict.fromkeys(turn.also):
                spec = self.catalog.intents.get(intent)
                if intent != turn.intent and spec is not None and spec.question and spec.needs == "product":
                    out.append(self.renderer.render_string(spec.question, **context))
        if unsure and not context["products"] and turn.resolution is not None:
            out += [self._retry(turn.resolution, product.brand) for product in unsure]
        spec = self.catalog.intents.get(turn.intent)
        if spec is not None and spec.question and (context["members"] or context["choices"]):
            # Under a class answer or a "which one?", the same question about each product.
            for product in (context["members"] or context["choices"])[:4]:
                out.append(self.renderer.render_string(spec.question, **{**context, "p": product}))
            return out
        if spec is not None and not (spec.needs == "product" and context["p"] is None):
            ids = [getattr(context[k], "id", None) for k in ("p", "c", "t")]
            follow = self._follow_ups(turn.intent, *ids)
            out += [s for s in follow if s not in out]
        return out[:4] if unsure else out[:3]

    def _rendered_suggestions(
        self, intent: str, product: str | None, condition: str | None, topic: str | None
    ) -> list[str]:
        """The intent's suggestions for these ids, rendered with what they may read: p, c and t."""
        kb = self.knowledge
        context = {
            "intent": intent,
            "p": kb.products[product] if product else None,
            "c": kb.conditions[condition] if condition else None,
            "t": kb.topics[topic] if topic else None,
        }
        follow: list[str] = []
        for source in self.catalog.intents[intent].suggestions:
            try:
                rendered = self.renderer.render_string(source, **context)
            except Exception:  # a suggestion that does not fit this answer is skipped
                continue
            if rendered and rendered not in follow:
                follow.append(rendered)
        return follow

    def _retry(self, resolution: Resolution, brand: str) -> str:
        """The question again, with the unsure name replaced by a product's name."""
        doc = resolution.doc
        spans = resolution.unsure_spans
        if not spans:
            return self.catalog.texts.what_is.format(brand=brand)
        start, end = spans[0]
        words = [t.text_with_ws for t in doc[:start]] + [brand + doc[end - 1].whitespace_]
        words += [t.text_with_ws for t in doc[end:]]
        question = "".join(words).strip()
        return question[:1].upper() + question[1:]
