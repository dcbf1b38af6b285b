"""The assistant: one typed question in, one sourced plain-language Reply out.

Every front end (REPL, ``ask``, Telegram) calls :meth:`Assistant.reply`. The
steps follow DESIGN.md: one spaCy Doc, mentions, intent (safety first), context,
template. Nothing here holds a product, a fact or an answer text.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import gzip
import hashlib
import json
import logging
import re
import unicodedata
from collections.abc import Callable
from pathlib import Path
from typing import Any, cast

import spacy
import spacy_lookups_data
from spacy.lang.en.stop_words import STOP_WORDS
from spacy.language import Language
from spacy.lookups import Lookups
from spacy.pipeline import Lemmatizer
from spacy.tokenizer import Tokenizer
from spacy.util import compile_infix_regex, compile_prefix_regex, compile_suffix_regex

from bot.policy import Decider
from bot.render import Renderer
from bot.reply import Reply, SourceRef
from bot.session import Context, SessionStore
from bot.turn import Turn
from intents.catalog import DATA_DIR as INTENTS_DIR
from intents.catalog import Catalog, load_catalog
from intents.matcher import IntentMatcher
from knowledge.cache import cache_dir
from knowledge.loader import DATA_DIR as KNOWLEDGE_DIR
from knowledge.loader import KnowledgeBase, load_knowledge
from knowledge.resolver import Resolution, Resolver, common_words, normalize
from knowledge.schema import Product

__all__ = ["Assistant", "build_nlp"]

log = logging.getLogger(__name__)

#: Longer messages are answered from their beginning; the reply says so.
MAX_CHARS = 2000
_PRONOUNS = frozenset({"it", "its", "this", "that", "they", "them", "one", "these", "those", "both"})
_SENTENCE = re.compile(r"(?<=[.?!])\s+")
# A sentence that asks without a question mark: "also how long is the hospital stay".
_OPENS_QUESTION = re.compile(
    r"^\W*(?:and |also |plus |oh and )*"
    r"(?:what|whats|how|hows|is|are|does|do|can|could|will|would|who|where|when|which|why)\b",
    re.IGNORECASE,
)
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u200b-\u200f\u2028-\u202e\u2066-\u2069]")


def _english_tokenizer() -> Callable[[Language], Tokenizer]:
    """English punctuation rules without the table of special cases.

    Messages are normalized before they are tokenized ("don't" is already "dont"), so the
    1,300 English special cases change little, and building them is most of spaCy's start-up.
    """

    def create(nlp: Language) -> Tokenizer:
        defaults = nlp.Defaults
        return Tokenizer(
            nlp.vocab,
            rules={},
            # None where a language has no such rules, as spaCy's own tokenizer factory does.
            prefix_search=compile_prefix_regex(defaults.prefixes).search if defaults.prefixes else None,
            suffix_search=compile_suffix_regex(defaults.suffixes).search if defaults.suffixes else None,
            infix_finditer=compile_infix_regex(defaults.infixes).finditer if defaults.infixes else None,
            token_match=defaults.token_match,
            url_match=defaults.url_match,
        )

    return create


# Registered by a call, not as a decorator: the registry (catalogue) is untyped, and a decorator
# from it would make the function untyped too.
spacy.registry.tokenizers("cgt_bot.english_tokenizer.v1", func=_english_tokenizer)


def build_nlp(keep: frozenset[str] | None = None) -> Language:
    """A blank English pipeline with the lookup lemmatizer; no model is downloaded.

    Args:
        keep (frozenset[str] | None): when given, only the lemma entries whose word form or lemma
            is one of these words are kept. The bot's decisions read lemmas only of words its
            data knows (catalog examples, names, rules, common English), and a table of those is a
            tenth of the full one, read in a tenth of the time. Built once from spacy-lookups-data
            and cached by the words it keeps.
    """
    nlp = spacy.blank("en", config={"nlp": {"tokenizer": {"@tokenizers": "cgt_bot.english_tokenizer.v1"}}})
    # add_pipe is typed as returning any pipe; the "lemmatizer" factory makes a Lemmatizer.
    lemmatizer = cast(Lemmatizer, nlp.add_pipe("lemmatizer", config={"mode": "lookup"}))
    digest = hashlib.sha256("\n".join(sorted(keep or ())).encode("utf-8")).hexdigest()[:16]
    nlp.meta["lemma_table"] = f"{spacy.__version__}-{digest if keep else 'full'}"
    cached = cache_dir() / f"lemmatizer-{nlp.meta['lemma_table']}"
    try:
        lemmatizer.from_disk(cached)
        return nlp
    except Exception:  # no cache yet, or an unreadable one: build from the package data
        pass
    if keep:
        lemmatizer.initialize(lookups=_kept_lemmas(keep))
    else:
        nlp.initialize()
    with contextlib.suppress(OSError):  # an unwritable cache only costs time
        lemmatizer.to_disk(cached)
    return nlp


def _kept_lemmas(keep: frozenset[str]) -> Lookups:
    """The English lemma table of spacy-lookups-data, cut down to the entries ``keep`` needs."""
    # spaCy's tables hold hashed keys; the words come from the package's own JSON file.
    source = Path(spacy_lookups_data.__file__).parent / "data" / "en_lemma_lookup.json.gz"
    with gzip.open(source, "rt", encoding="utf-8") as handle:
        entries = json.load(handle)
    kept = {form: lemma for form, lemma in entries.items() if form in keep or lemma in keep}
    lookups = Lookups()
    lookups.add_table("lemma_lookup", kept)
    return lookups


def _known_words(kb: KnowledgeBase, catalog: Catalog) -> frozenset[str]:
    """Every word the bot's data uses: the only words whose lemmas its decisions read."""
    texts: list[str] = [e for examples in catalog.examples.values() for e in examples]
    for product in kb.products.values():
        texts += [product.brand, product.generic_name or "", *product.aliases]
    for items in (kb.conditions, kb.groups, kb.topics, kb.not_covered):
        for item in items.values():
            texts += [item.name, *item.aliases]
    scope = catalog.scope
    texts += [*scope.domain_words, *scope.follow_up_words, *scope.treatment_words, *scope.use_words]
    safety = catalog.safety.emergency
    texts += [*safety.signs, *safety.fuzzy_signs, *safety.subjects, *safety.now_verbs]
    words = {w for text in texts for w in re.findall(r"[a-z]+", normalize(text))}
    return frozenset(words | common_words() | set(STOP_WORDS))


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
        self.nlp = build_nlp(_known_words(self.knowledge, self.catalog))
        self.resolver = Resolver(self.knowledge, self.nlp)
        self.matcher = IntentMatcher(self.catalog, self.resolver, self.resolver.common, on_training)
        self.renderer = Renderer(self.catalog.responses_dir, self.knowledge, cache_dir() / "templates")
        self.renderer.warm(
            list(self.catalog.intents),
            [source for spec in self.catalog.intents.values() for source in spec.suggestions],
        )
        self.sessions = sessions or SessionStore()
        self.decider = Decider(
            self.catalog, self.knowledge, self.matcher, frozenset(self.nlp.Defaults.stop_words)
        )
        self._suggestion_cache: dict[tuple[str | None, ...], list[str]] = {}
        scope = self.catalog.scope
        self._follow_words = frozenset(scope.follow_up_words)
        self._name_fillers = frozenset(scope.name_fillers)
        self._languages = {lang: frozenset(words) for lang, words in scope.languages.items()}

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
                text=(
                    "Sorry, something went wrong while I was answering. Please try asking in a "
                    "different way.\n\nFor questions about your own health, please talk to your "
                    "healthcare provider."
                ),
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
        reply = self._render(turn, context)
        self._remember(session, context, turn, reply)
        return reply

    def _understand(self, raw: str, context: Context) -> Turn:
        text = _CONTROL.sub(" ", unicodedata.normalize("NFKC", raw))
        truncated = len(text) > MAX_CHARS
        text = text[:MAX_CHARS]
        normalized = self.catalog.expand(" ".join(normalize(text).split()))
        turn = Turn(text=text, normalized=normalized, truncated=truncated)
        if not re.search(r"[^\W\d_]", normalized):
            # A bare reading ("102.5") is screened before it is called a message without words.
            urgent = self.matcher.safety(normalized) if normalized else None
            if urgent is not None and urgent.intent == "emergency":
                turn.prediction = urgent
                turn.intent, turn.confidence, turn.reason = urgent.intent, urgent.confidence, urgent.reason
            else:
                turn.intent, turn.confidence = "out_of_scope", 1.0
                turn.reason = "empty" if not normalized else "no_words"
            return turn
        turn.language = self._language(normalized)
        resolution = self.resolver.resolve(normalized)
        turn.resolution = resolution
        turn.products = resolution.ids("product")
        turn.conditions = resolution.ids("condition")
        turn.groups = resolution.ids("group")
        turn.others = resolution.ids("other")
        turn.did_you_mean = [p for p in resolution.did_you_mean if p not in turn.products]
        strong = self._strong(resolution.ids("topic"))
        signal = bool(turn.products or turn.conditions or turn.groups or strong or turn.did_you_mean)
        turn.domain_word = self.matcher.has_domain_word(resolution)
        signal = signal or turn.domain_word
        # Everyday ideas (cost, insurance) count only in a question that is about this domain.
        turn.topics = resolution.ids("topic") if signal or context.products else strong
        safety = self.matcher.safety(normalized, in_domain=signal or bool(context.products))
        if safety is not None:
            turn.prediction = safety
            turn.intent, turn.confidence, turn.reason = safety.intent, safety.confidence, safety.reason
            if safety.intent == "personal_advice":
                if turn.others and not (turn.products or turn.topics):
                    turn.intent, turn.reason = "out_of_scope", "other_medicine"
                elif not turn.products and self._is_follow_up(turn, context):
                    turn.products, turn.from_context = list(context.products), True
            return turn
        if turn.language is not None:
            turn.intent, turn.confidence, turn.reason = "out_of_scope", 0.9, "language"
            return turn
        masked = self._masked_with_context(turn, context)
        focus, others = self._questions(text)
        prediction = self.matcher.classify(normalized, focus or masked)
        turn.also = [self.matcher.classify(normalized, other).intent for other in others]
        if masked != resolution.masked and prediction.intent == "out_of_scope":
            # The follow-up was read with its product in place; a product reading that is at
            # all likely beats "out of scope" for a short question in a conversation about it.
            allowed = {n for n, spec in self.catalog.intents.items() if spec.needs == "product"}
            better = self.matcher.best_of(prediction, allowed)
            if better is not None and better.confidence >= 0.15:
                prediction = better
        if prediction.intent == "out_of_scope" and not context.products and not resolution.mentions:
            # "how much is it?" with nothing before it: a product question that needs its product.
            words = resolution.masked.split()
            if self.decider.if_bare_product_question(turn):
                guess = self.matcher.classify(
                    normalized, " ".join("xproductx" if w in _PRONOUNS else w for w in words)
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
        self._apply_context(turn, context)
        self.decider.decide(turn)
        return turn

    def _questions(self, text: str) -> tuple[str | None, list[str]]:
        """The masked question the intent is read from, and the other questions asked with it.

        In a long story the last question is what the person asks, so the story before it cannot
        outvote it; in a short message with two questions, the first is. The names and context
        still come from the whole message. The other questions are offered as suggestions.
        """
        sentences = [s for s in _SENTENCE.split(text) if s.strip()]
        if len(sentences) < 2:
            return None, []
        if len(text.split()) > self.catalog.scope.long_message_words:
            questions = [s for s in sentences if s.rstrip().endswith("?")] or sentences[-1:]
            focus, others = questions[-1], questions[:-1]
        else:
            questions = [s for s in sentences if s.rstrip().endswith("?") or _OPENS_QUESTION.match(s)]
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

    def _language(self, normalized: str) -> str | None:
        """The language of a message that is clearly not English, else None."""
        letters = [ch for ch in normalized if ch.isalpha()]
        if letters and sum(ch.isascii() for ch in letters) / len(letters) < 0.5:
            return "other"
        words = re.findall(r"[^\W\d_]+", normalized)
        if len(words) < 2:
            return None
        english = sum(w in self.nlp.Defaults.stop_words for w in words)
        for lang, vocab in self._languages.items():
            hits = sum(w in vocab for w in words)
            if hits >= 2 and hits > english and hits >= len(words) / 3:
                return lang
        return None

    def _is_follow_up(self, turn: Turn, context: Context) -> bool:
        words = turn.normalized.split()
        return bool(context.products or context.conditions or context.topics or context.listed) and (
            len(words) <= self.catalog.scope.follow_up_max_words
            or any(w.strip("?.!,") in self._follow_words for w in words)
        )

    def _masked_with_context(self, turn: Turn, context: Context) -> str:
        """The masked text, with "it" standing for the product of a follow-up."""
        assert turn.resolution is not None
        masked = turn.resolution.masked
        words = masked.split()
        pronouns = _PRONOUNS
        if (
            not (context.products or context.listed or self._context_class(context))
            or turn.did_you_mean
            or not self._is_follow_up(turn, context)
        ):
            return masked
        named = [m for m in turn.resolution.mentions if m.kind != "other"]
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
        if turn.products or not candidates or len(words) > self.catalog.scope.follow_up_max_words + 3:
            return
        scope = self.catalog.scope
        listed = [self.knowledge.products[p] for p in candidates if p in self.knowledge.products]
        position = next((scope.ordinals[w] for w in words if w in scope.ordinals), None)
        current = set(context.products)
        one = "one" in words or "ones" in words
        described_by: set[str] = set()
        if not context.listed and (
            position is not None
            or not (set(words) & set(scope.list_words) or (one and self._described(words, listed)))
        ):
            # The products talked about one after the other are no list to count in, but "which
            # one", "both" or "the newer one" can still mean them.
            return
        if position is not None and -len(listed) <= position <= len(listed) and position != 0:
            picked = [listed[position - 1 if position > 0 else position]]
        elif set(words) & set(scope.other_words) and current and current < {p.id for p in listed}:
            # "the other one": the listed products not talked about just now.
            picked = [p for p in listed if p.id not in current]
        elif turn.conditions and one:
            picked = [p for p in listed if set(turn.conditions) & set(p.conditions)]
        elif one and (described := self._described(words, listed)):
            # "the one from BMS", "the newer one", "the CRISPR one".
            picked = described
            described_by = set(words) & set().union(*(self.knowledge.descriptors(p.id) for p in picked))
            described_by |= set(words) & set(scope.recency_words)
        elif set(words) & set(scope.list_words):
            picked = listed
        else:
            return
        if not picked:
            return
        turn.products, turn.from_context = [p.id for p in picked], True
        turn.conditions, turn.groups = [], []
        # Read the question again with the picked products in place of "the second one".
        refer = set(scope.ordinals) | set(scope.list_words) | set(scope.other_words) | {"one", "the"}
        masked = " ".join(
            "xproductx" if w.strip("?.!,") in refer or w.strip("?.!,").isdigit() else w
            for w in turn.resolution.masked.split()
        )
        # "the second one" is one product, read as one name.
        masked = re.sub(r"\bxproductx(?: xproductx)+\b", "xproductx", masked)
        allowed = {n for n, spec in self.catalog.intents.items() if spec.needs == "product"}
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
        asked = set(words) - self.nlp.Defaults.stop_words - {"one", "ones"}
        marks = {p.id: self.knowledge.descriptors(p.id) for p in listed}
        shared = set.intersection(*marks.values()) if marks else set()
        scores = {pid: len(asked & (found - shared)) for pid, found in marks.items()}
        best = max(scores.values(), default=0)
        return [p for p in listed if best and scores[p.id] == best]

    def _apply_context(self, turn: Turn, context: Context) -> None:
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
            and self._is_follow_up(turn, context)
        ):
            extra = [p for p in reversed(context.recent) if p not in turn.products]
            wanted = 2 - len(turn.products)
            if extra[:wanted]:
                turn.products = list(reversed(extra[:wanted])) + turn.products
                turn.from_context = True
            return
        if turn.products or turn.did_you_mean or not self._is_follow_up(turn, context):
            return
        spec = self.catalog.intents.get(turn.intent)
        specific = self.decider.specific.get(turn.intent)
        if (
            specific
            and (context.products or self._context_class(context))
            and not (turn.conditions or turn.groups or self._strong(turn.topics))
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
            and not turn.conditions
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
        return self._class_of(turn) is not None and not words & _PRONOUNS

    def _class_of(self, turn: Turn) -> str | None:
        """The class of therapy a message asks about (a topic with members), if any."""
        return next((t for t in turn.topics if self.knowledge.class_members(t)), None)

    def _strong(self, topics: list[str]) -> list[str]:
        return [t for t in topics if not self.knowledge.topics[t].weak]

    # -- rendering ---------------------------------------------------------------------------------

    def _render(self, turn: Turn, session_context: Context | None = None) -> Reply:
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
        turn.listed = [p.id for p in self._listed(turn, context)]
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
            today = self.renderer.env.globals.get("today")
            day = today if isinstance(today, dt.date) else None
            changed = {
                product.id: product for _, product, _ in reversed(self.renderer.recent_changes(12, day))
            }
            return list(reversed(changed.values()))
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
            # Suggestions depend only on the intent and the first product, condition and topic.
            key = tuple([turn.intent] + [getattr(context[k], "id", None) for k in ("p", "c", "t")])
            follow = self._suggestion_cache.get(key)
            if follow is None:
                follow = []
                for source in spec.suggestions:
                    try:
                        rendered = self.renderer.render_string(source, **context)
                    except Exception:  # a suggestion that does not fit this answer is skipped
                        continue
                    if rendered and rendered not in follow:
                        follow.append(rendered)
                if len(self._suggestion_cache) < 20000:
                    self._suggestion_cache[key] = follow
            out += [s for s in follow if s not in out]
        return out[:4] if unsure else out[:3]

    @staticmethod
    def _retry(resolution: Resolution, brand: str) -> str:
        """The question again, with the unsure name replaced by a product's name."""
        doc = resolution.doc
        spans = resolution.unsure_spans
        if not spans:
            return f"What is {brand}?"
        start, end = spans[0]
        words = [t.text_with_ws for t in doc[:start]] + [brand + doc[end - 1].whitespace_]
        words += [t.text_with_ws for t in doc[end:]]
        question = "".join(words).strip()
        return question[:1].upper() + question[1:]

    def _remember(self, session: str | None, context: Context, turn: Turn, reply: Reply) -> None:
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
                context.topics = self._strong(turn.topics)
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
