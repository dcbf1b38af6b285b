"""The assistant: one typed question in, one sourced plain-language Reply out.

Every front end (REPL, ``ask``, Telegram) calls :meth:`Assistant.reply`. The
steps follow DESIGN.md: one spaCy Doc, mentions, intent (safety first), context,
template. Nothing here holds a product, a fact or an answer text.
"""

from __future__ import annotations

import logging
import re
import unicodedata
from collections.abc import Callable
from pathlib import Path

from bot.compose import Composer
from bot.follow_up import Conversation
from bot.language import build_nlp, known_words, language_of
from bot.policy import Decider
from bot.render import Renderer, bytecode_folder
from bot.reply import Reply
from bot.session import Context, SessionStore
from bot.turn import PRONOUNS, Turn
from intents.catalog import DATA_DIR as INTENTS_DIR
from intents.catalog import Catalog, load_catalog
from intents.matcher import IntentMatcher, Prediction
from knowledge.loader import DATA_DIR as KNOWLEDGE_DIR
from knowledge.loader import KnowledgeBase, load_knowledge
from knowledge.resolver import Resolution, Resolver, normalize

__all__ = ["Assistant"]

log = logging.getLogger(__name__)

#: Longer messages are answered from their beginning; the reply says so.
MAX_CHARS = 2000
_SENTENCE = re.compile(r"(?<=[.?!])\s+")
_LETTER = re.compile(r"[^\W\d_]")
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u200b-\u200f\u2028-\u202e\u2066-\u2069]")


class Assistant:
    """Answers questions about FDA-approved cell and gene therapies.

    Builds the spaCy pipeline, the knowledge base, the name resolver, the intent
    matcher and the templates once; :meth:`reply` is then cheap and never raises.

    Args:
        knowledge_dir (Path): folder of knowledge files (default: the packaged ones).
        intents_dir (Path): folder of the intent catalog (default: the packaged one).
        sessions (SessionStore): where conversation context is kept (default: in memory).
        on_training (Callable[[], None] | None): called when the classifier must first be trained.
    """

    def __init__(
        self,
        knowledge_dir: Path = KNOWLEDGE_DIR,
        intents_dir: Path = INTENTS_DIR,
        sessions: SessionStore | None = None,
        on_training: Callable[[], None] | None = None,
    ) -> None:
        self.knowledge: KnowledgeBase = load_knowledge(knowledge_dir)
        self.catalog: Catalog = load_catalog(intents_dir)
        self.nlp = build_nlp(known_words(self.knowledge, self.catalog))
        self.resolver = Resolver(self.knowledge, self.nlp)
        self.matcher = IntentMatcher(self.catalog, self.resolver, self.resolver.common, on_training)
        self.renderer = Renderer(
            self.catalog.responses_dir,
            self.knowledge,
            self.catalog.texts,
            bytecode_folder(self.catalog.responses_dir),
        )
        self.renderer.warm(
            list(self.catalog.intents),
            [source for spec in self.catalog.intents.values() for source in spec.suggestions],
        )
        self.sessions = sessions or SessionStore()
        self._stop_words = frozenset(self.nlp.Defaults.stop_words)
        self.decider = Decider(self.catalog, self.knowledge, self.matcher, self._stop_words)
        self.conversation = Conversation(
            self.catalog,
            self.knowledge,
            self.matcher,
            self.resolver,
            self.decider,
            self._stop_words,
            self.sessions,
        )
        self.composer = Composer(self.catalog, self.knowledge, self.matcher, self.renderer)
        self._languages = {lang: frozenset(words) for lang, words in self.catalog.scope.languages.items()}
        self._error_text = self.catalog.texts.error
        words = "|".join(map(re.escape, self.catalog.scope.question_words))
        joining = "|".join(map(re.escape, self.catalog.scope.joining_words))
        # "What is Zynteglo and how long is the infusion?": a second question joined by "and".
        self._joined = re.compile(rf",?\s+(?=(?:{joining})\s+(?:{words})\b)", re.IGNORECASE)
        # A sentence that asks without a question mark: "also how long is the hospital stay".
        self._opens_question = re.compile(rf"^\W*(?:(?:{joining}|oh and) )*(?:{words})\b", re.IGNORECASE)

    # -- public API --------------------------------------------------------------------------------

    def reply(self, text: str, session: str | None = None) -> Reply:
        """Answer one message; ``session`` ties messages of one conversation together."""
        try:
            return self._reply(text if isinstance(text, str) else str(text), session)
        except Exception:  # the contract: reply never raises on anything a person can type
            log.exception("could not answer a message")
            return Reply(
                intent="out_of_scope",
                confidence=0.0,
                text=self._error_text,
            )

    def reset(self, session: str) -> None:
        """Forget the subject of a conversation (``/reset``)."""
        self.sessions.reset(session)

    def forget(self, session: str) -> None:
        """Remove everything held about a session (``/forget``); only its context is held."""
        self.sessions.reset(session)

    # -- the steps ---------------------------------------------------------------------------------

    def _reply(self, raw: str, session: str | None) -> Reply:
        context = self.sessions.get(session)
        turn = self._understand(raw, context)
        reply = self.composer.compose(turn, context)
        self.conversation.remember(session, context, turn, reply)
        return reply

    def _understand(self, raw: str, context: Context) -> Turn:
        text = _CONTROL.sub(" ", unicodedata.normalize("NFKC", raw))
        truncated = len(text) > MAX_CHARS
        text = text[:MAX_CHARS]
        normalized = self.catalog.expand(" ".join(normalize(text).split()))
        turn = Turn(text=text, normalized=normalized, truncated=truncated)
        if not _LETTER.search(normalized):
            # A bare reading ("102.5") is screened before it is called a message without words.
            urgent = self.matcher.safety(normalized) if normalized else None
            if urgent is not None and urgent.intent == "emergency":
                turn.prediction = urgent
                turn.intent, turn.confidence, turn.reason = urgent.intent, urgent.confidence, urgent.reason
            else:
                turn.intent, turn.confidence = "out_of_scope", 1.0
                turn.reason = "empty" if not normalized else "no_words"
            return turn
        turn.language = language_of(normalized, self._stop_words, self._languages)
        resolution = self.resolver.resolve(normalized)
        turn.resolution = resolution
        turn.products = resolution.ids("product")
        ruled_out = self._ruled_out(resolution)
        turn.conditions = [c for c in resolution.ids("condition") if c not in ruled_out]
        turn.groups = [g for g in resolution.ids("group") if g not in ruled_out]
        turn.others = resolution.ids("other")
        turn.did_you_mean = [p for p in resolution.did_you_mean if p not in turn.products]
        strong = self.conversation.strong(resolution.ids("topic"))
        signal = bool(turn.products or turn.conditions or turn.groups or strong or turn.did_you_mean)
        turn.domain_word = self.matcher.has_domain_word(resolution)
        signal = signal or turn.domain_word
        # Everyday ideas (cost, insurance) count only in a question that is about this domain.
        turn.topics = resolution.ids("topic") if signal or context.products else strong
        safety = self.matcher.safety(normalized, in_domain=signal or bool(context.products))
        if safety is not None:
            self._apply_safety(turn, safety, context)
            return turn
        if turn.language is not None:
            turn.intent, turn.confidence, turn.reason = "out_of_scope", 0.9, "language"
            return turn
        masked = self.conversation.masked_with_context(turn, context)
        focus, others = self._questions(text)
        prediction = self.matcher.classify(normalized, focus or masked)
        turn.also = [self.matcher.classify(normalized, other).intent for other in others]
        if masked != resolution.masked and not resolution.mentions:
            # Read alone, "whats the best pizza in chicago" is clearly out of scope: a short
            # message after an answer is not about that answer just because it is short.
            alone = self.matcher.classify(normalized, resolution.masked)
            if alone.intent == "out_of_scope" and self.decider.clear(alone.confidence):
                prediction = alone
        if masked != resolution.masked and prediction.intent == "out_of_scope":
            # The follow-up was read with its product in place; a product reading that is at
            # all likely beats "out of scope" for a short question in a conversation about it.
            better = self.matcher.best_of(prediction, self.decider.product_intents)
            if better is not None and better.confidence >= 0.15:
                prediction = better
        if prediction.intent == "out_of_scope" and not context.products and not resolution.mentions:
            # "how much is it?" with nothing before it: a product question that needs its product.
            words = resolution.masked.split()
            if self.decider.if_bare_product_question(turn):
                guess = self.matcher.classify(
                    normalized, " ".join("xproductx" if w in PRONOUNS else w for w in words)
                )
                if self.catalog.spec(guess.intent).needs == "product" and guess.confidence >= 0.7:
                    turn.prediction = guess
                    turn.intent, turn.confidence, turn.reason = (
                        guess.intent,
                        guess.confidence,
                        "which_product",
                    )
                    return turn
        turn.prediction = prediction
        turn.intent, turn.confidence = prediction.intent, prediction.confidence
        self.conversation.apply(turn, context)
        self.decider.decide(turn)
        return turn

    def _ruled_out(self, resolution: Resolution) -> set[str]:
        """Conditions and groups the message excludes: "cell therapy for solid tumors, not blood cancer"."""
        named = [m for m in resolution.mentions if m.kind in ("condition", "group")]
        if not named:
            return set()  # most messages name neither, and the words need not be read then
        words = [t.text for t in resolution.doc]
        before = self.catalog.scope.negations
        return {
            m.id
            for m in named
            if any(" ".join(words[max(0, m.start - len(n.split())) : m.start]) == n for n in before)
        }

    def _apply_safety(self, turn: Turn, safety: Prediction, context: Context) -> None:
        """An emergency or a personal decision: the safety verdict, with the product it is about."""
        turn.prediction = safety
        turn.intent, turn.confidence, turn.reason = safety.intent, safety.confidence, safety.reason
        if safety.intent == "personal_advice" and turn.others and not (turn.products or turn.topics):
            turn.intent, turn.reason = "out_of_scope", "other_medicine"
        elif not turn.products and context.products and self.conversation.is_follow_up(turn, context):
            # "Should he take it?", "103 fever, got it 4 days ago": the treatment talked about, so
            # that the answer (and the emergency team) hear which.
            turn.products, turn.from_context = list(context.products), True

    def _questions(self, text: str) -> tuple[str | None, list[str]]:
        """The masked question the intent is read from, and the other questions asked with it.

        In a long story the last question is what the person asks, so the story before it cannot
        outvote it; in a short message with two questions, the first is. The names and context
        still come from the whole message. The other questions are offered as suggestions.
        """
        sentences = [s for s in _SENTENCE.split(text) if s.strip()]
        long = len(text.split()) > self.catalog.scope.long_message_words
        joined: set[str] = set()
        if not long:
            # Both sides of "papzimeos who makes and is it one time?" are questions.
            parts = [[p for p in self._joined.split(s) if p.strip()] for s in sentences]
            joined = {p for split in parts if len(split) > 1 for p in split}
            sentences = [p for split in parts for p in split]
        if len(sentences) < 2:
            return None, []
        if long:
            questions = [s for s in sentences if s.rstrip().endswith("?")] or sentences[-1:]
            focus, others = questions[-1], questions[:-1]
        else:
            questions = [
                s
                for s in sentences
                if s in joined or s.rstrip().endswith("?") or self._opens_question.match(s)
            ]
            if len(questions) < 2:
                return None, []
            focus, others = questions[0], questions[1:]
        if len(focus.split()) < 3:
            return None, []
        masked = [self._masked(sentence) for sentence in [focus, *others] if len(sentence.split()) >= 3]
        return masked[0] or None, [m for m in masked[1:] if m]

    def _masked(self, sentence: str) -> str:
        normalized = self.catalog.expand(" ".join(normalize(sentence).split()))
        return self.resolver.resolve(normalized).masked
