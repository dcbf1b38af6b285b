"""Find the products, conditions and topics a message mentions, typos and all.

Exact names are found with a spaCy PhraseMatcher; what is left is compared with
rapidfuzz, under cut-offs that grow stricter for short words and never apply to
common English words, so "car", "yes" or "revenge" never become a product.
"""

from __future__ import annotations

import functools
import json
import re
import unicodedata
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import spacy
from rapidfuzz import fuzz, process
from spacy.language import Language
from spacy.matcher import PhraseMatcher
from spacy.tokens import Doc, Span
from spacy.util import filter_spans

from knowledge.cache import cache_key, cached
from knowledge.loader import DATA_DIR, KnowledgeBase

__all__ = ["PLACEHOLDERS", "Mention", "Resolution", "Resolver", "common_words", "normalize"]

#: What a mention is replaced by before classification, per kind of entity.
PLACEHOLDERS = {
    "product": "xproductx",
    "condition": "xconditionx",
    "group": "xgroupx",
    "topic": "xtopicx",
    "class": "xclassx",
    "other": "xdrugx",
}
_KIND_ORDER = {"product": 0, "other": 1, "condition": 2, "group": 3, "topic": 4}

_SIGNS = dict.fromkeys(map(ord, "®™©℠"), None)
_SUFFIX = re.compile(r"-[a-z]{4}$")
_PAREN = re.compile(r"\s*\(([^)]*)\)")
# Compiled once: normalize runs several times per message (the message and each sentence).
_QUOTES = re.compile(r"[\u2018\u2019`\u00b4]")
_APOSTROPHE = re.compile(r"(?<=\w)'(?=\w)")
_JOINER = re.compile(r"(?<=\w)[-\u2010\u2011\u2013\u2014/](?=\w)")


def normalize(text: str) -> str:
    """Lowercase a text and fold the spellings people mix up.

    ® and ™ go, curly quotes become straight, "parkinson's" becomes "parkinsons"
    and a hyphen or slash inside a word becomes a space ("tisa-cel" -> "tisa cel"),
    so that every spelling of a name meets the same tokens.
    """
    text = unicodedata.normalize("NFKC", text).translate(_SIGNS)
    text = _QUOTES.sub("'", text)
    text = _APOSTROPHE.sub("", text)
    text = _JOINER.sub(" ", text)
    return text.lower()


#: A one-word name cut short: at least this many letters typed, at most this many missing.
_CUT_SHORT_MIN = 5
_CUT_SHORT_BY = 4


def _squash(text: str) -> str:
    return re.sub(r"[^a-z0-9]", "", text)


@dataclass(frozen=True)
class Mention:
    """A span of the message that names something the knowledge base holds.

    Attributes:
        kind (str): product, condition, group, topic or other (a name that is no cell or gene therapy).
        id (str): the id of what is named.
        start (int): index of the first token.
        end (int): index after the last token.
        score (float): 100 for an exact name, lower for a fuzzy one.
    """

    kind: str
    id: str
    start: int
    end: int
    score: float


@dataclass
class Resolution:
    """What :meth:`Resolver.resolve` found in one message."""

    doc: Doc
    mentions: list[Mention] = field(default_factory=list)
    did_you_mean: list[str] = field(default_factory=list)
    masked: str = ""
    unsure_spans: list[tuple[int, int]] = field(default_factory=list)

    def ids(self, kind: str) -> list[str]:
        """Ids of one kind, in the order they are mentioned, without repeats."""
        return list(dict.fromkeys(m.id for m in self.mentions if m.kind == kind))


def _tokenized(nlp: Language, names: list[str]) -> list[list[str]]:
    """The tokens of each name, as the pipeline's tokenizer splits them (cached by content)."""

    def load(folder: Path) -> list[list[str]]:
        # Written by save below, so it holds the tokens of each name; a list of another length
        # is not this entry's.
        words: list[list[str]] = json.loads((folder / "tokens.json").read_text(encoding="utf-8"))
        if len(words) != len(names):
            raise ValueError(f"{len(words)} token lists for {len(names)} names")
        return words

    def save(words: list[list[str]], folder: Path) -> None:
        (folder / "tokens.json").write_text(json.dumps(words), encoding="utf-8")

    return cached(
        "names",
        cache_key(names, nlp.config["nlp"]["tokenizer"], libraries=[spacy]),
        build=lambda: [[t.text for t in nlp.tokenizer(name)] for name in names],
        save=save,
        load=load,
    )


@functools.cache
def common_words(path: Path = DATA_DIR / "common_words.txt") -> frozenset[str]:
    """Common English words, which are never fuzzy-matched onto a name (read once)."""
    try:
        return frozenset(path.read_text(encoding="utf-8").split())
    except OSError:
        return frozenset()


class Resolver:
    """Finds mentions in text; built once from the knowledge base and a spaCy pipeline.

    Args:
        kb (KnowledgeBase): the loaded knowledge.
        nlp (Language): the shared pipeline; only its tokenizer and lemmatizer are used.
    """

    #: Scores below the cut-off but within this margin make the bot ask back instead of guessing.
    WEAK_MARGIN = 8.0
    #: Two products whose scores are this close are too close to pick one.
    TIE_MARGIN = 4.0

    def __init__(self, kb: KnowledgeBase, nlp: Language) -> None:
        self.nlp = nlp
        self.common = common_words()
        self.stop = nlp.Defaults.stop_words
        # Makers' names are words of their own: "Autolus" is a company, not "autologous" misspelt.
        self.makers = frozenset(
            w.lower()
            for p in kb.products.values()
            if p.maker is not None
            for company in (p.maker.name, *(c.company for c in p.maker.history))
            for w in re.findall(r"[A-Za-z]{4,}", company)
        )
        self.names: dict[str, set[tuple[str, str]]] = defaultdict(set)
        for kind, ident, name, generated in self._all_names(kb):
            form = " ".join(normalize(name).split())
            # "ALL" (a leukemia) or "MS" must not turn every "all" or "ms" into a condition.
            if not form or form in self.stop or (generated and form in self.common):
                continue
            self.names[form].add((kind, ident))
        self.squashed: dict[str, set[tuple[str, str]]] = defaultdict(set)
        for form, targets in self.names.items():
            if len(_squash(form)) >= 6:
                self.squashed[_squash(form)] |= targets
        self.matcher = PhraseMatcher(nlp.vocab, attr="ORTH")
        keys = sorted(self.names)
        # Patterns come from the tokenizer (spaCy's W012), whose output for the same names and
        # spaCy version is kept on disk: building them is a third of the start-up otherwise.
        words = _tokenized(nlp, keys)
        self.matcher.add("NAME", [Doc(nlp.vocab, words=w) for w in words if w])
        # Fuzzy matching runs on names long enough to tell apart: one word against one-word
        # names, two words against two-word names, so "disease" never becomes "disc disease".
        self.fuzzy_words = [form for form in self.names if len(form) >= 5 and " " not in form]
        self.fuzzy_pairs = [form for form in self.names if len(form) >= 5 and form.count(" ") == 1]
        self.fuzzy_squashed = [form for form in self.squashed if " " not in form]
        # The one-word names a query of five letters or more may be the start of, up to four
        # letters short, by that start: found once here, not by a pass over every name per word.
        self._cut_short: dict[str, set[tuple[str, str]]] = defaultdict(set)
        for form, targets in self.names.items():
            if " " not in form:
                for length in range(max(_CUT_SHORT_MIN, len(form) - _CUT_SHORT_BY), len(form) + 1):
                    self._cut_short[form[:length]] |= targets
        # A group's own one-word name, long enough to tell apart ("leukemia", "lymphoma"), may be
        # misspelt ("leukmia"); its aliases and short names are everyday words and must match exactly.
        self.fuzzy_groups = frozenset(
            form
            for g in kb.groups.values()
            if " " not in (form := " ".join(normalize(g.name).split())) and len(form) >= 7
        )
        # Everyday ideas keep their words: "covered by insurance" says what is asked.
        self.unmasked = frozenset(t.id for t in kb.topics.values() if t.weak or t.keep_words)
        # A class of therapy stands where a product would ("side effects of CAR-T"), so it has a
        # placeholder of its own rather than that of a general topic ("what is a boxed warning").
        self.classes = frozenset(t.id for t in kb.topics.values() if t.members is not None)

    @staticmethod
    def _all_names(kb: KnowledgeBase) -> Iterable[tuple[str, str, str, bool]]:
        """Every (kind, id, name, generated) a message may use; generated names are derived."""
        for product in kb.products.values():
            yield "product", product.id, product.brand, False
            yield "product", product.id, product.id.replace("-", " "), True
            for name in product.aliases:
                yield "product", product.id, name, False
            if product.generic_name and product.family is None:
                generic = _PAREN.sub("", product.generic_name).strip()
                yield "product", product.id, generic, False
                yield "product", product.id, _SUFFIX.sub("", generic), True
        for kind, items in (("condition", kb.conditions), ("group", kb.groups), ("topic", kb.topics)):
            for item in items.values():
                yield kind, item.id, _PAREN.sub("", item.name), False
                for inner in _PAREN.findall(item.name):
                    yield kind, item.id, inner, True
                if "(" in item.name:
                    # The name as written, brackets and all: "... decarboxylase (AADC) deficiency".
                    yield kind, item.id, item.name, True
                if kind != "group":
                    yield kind, item.id, item.id.replace("-", " "), True
                for name in item.aliases:
                    yield kind, item.id, name, False
        for other in kb.not_covered.values():
            yield "other", other.id, other.name, False
            for name in other.aliases:
                yield "other", other.id, name, False

    def products_sharing_names(self) -> list[tuple[str, list[str]]]:
        """Names that lead to more than one product: each is a data error."""
        clashes = []
        for form, targets in self.names.items():
            products = sorted({i for k, i in targets if k == "product"})
            if len(products) > 1:
                clashes.append((form, products))
        return clashes

    def lookup(self, name: str) -> list[tuple[str, str]]:
        """Exact targets of a name, as (kind, id) pairs."""
        return sorted(self.names.get(" ".join(normalize(name).split()), set()))

    # -- resolving -------------------------------------------------------------------------------

    def resolve(self, text: str) -> Resolution:
        """Find every mention in ``text`` and build the masked text the classifier sees."""
        doc = self.nlp(normalize(text)[:2000])
        spans = [Span(doc, s, e) for _, s, e in self.matcher(doc)]
        spans += self._squashed_spans(doc)
        chosen = filter_spans(spans)
        mentions: list[Mention] = []
        unsure: list[str] = []
        unsure_spans: list[tuple[int, int]] = []
        for span in chosen:
            form = " ".join(t.text for t in span)
            targets = self.names.get(form) or self.squashed.get(_squash(form), set())
            products = sorted(i for k, i in targets if k == "product")
            if len(products) > 1:
                # A shared name (one active ingredient, two brands): ask which one is meant.
                unsure += [p for p in products if p not in unsure]
                unsure_spans.append((span.start, span.end))
                targets = {(k, i) for k, i in targets if k != "product"}
            mentions += [Mention(k, i, span.start, span.end, 100.0) for k, i in sorted(targets)]
        covered = {i for span in chosen for i in range(span.start, span.end)}
        fuzzy, asked, asked_spans = self._fuzzy(doc, covered)
        mentions += fuzzy
        unsure += [p for p in asked if p not in unsure]
        unsure_spans += asked_spans
        mentions.sort(key=lambda m: (m.start, _KIND_ORDER[m.kind]))
        return Resolution(
            doc=doc,
            mentions=mentions,
            did_you_mean=unsure,
            masked=self._mask(doc, self._maskable(mentions), unsure_spans),
            unsure_spans=unsure_spans,
        )

    def _squashed_spans(self, doc: Doc) -> list[Span]:
        """Names typed with spaces in odd places ("yes carta") or run together ("tisacel")."""
        words = [t.text if (t.is_alpha or t.like_num) else None for t in doc]
        spans = []
        for start in range(len(words)):
            joined = ""
            for end in range(start + 1, min(start + 4, len(words) + 1)):
                word = words[end - 1]
                if word is None:
                    break
                joined += word
                if end == start + 1 and (joined in self.names or joined in self.common):
                    continue
                if len(joined) >= 6 and joined in self.squashed:
                    spans.append(Span(doc, start, end))
        return spans

    def _candidate(self, doc: Doc, index: int, covered: set[int]) -> bool:
        token = doc[index]
        text = token.text
        return (
            index not in covered
            and token.is_alpha
            and len(text) >= 5
            and text not in self.common
            and text not in self.stop
            and text not in self.makers
            and token.lemma_.lower() not in self.common
        )

    @staticmethod
    def _cutoff(length: int) -> float:
        if length <= 6:
            return 83.0
        if length <= 8:
            return 80.0
        return 78.0

    def _fuzzy(self, doc: Doc, covered: set[int]) -> tuple[list[Mention], list[str], list[tuple[int, int]]]:
        found: list[Mention] = []
        unsure: list[str] = []
        spans: list[tuple[int, int]] = []
        index = 0
        while index < len(doc):
            if not self._candidate(doc, index, covered):
                index += 1
                continue
            best = self._best(doc[index].text)
            # A misspelt word may be the first of two ("zolgen sma"): try the pair too.
            if index + 1 < len(doc) and self._candidate(doc, index + 1, covered):
                pair = self._best(doc[index].text + " " + doc[index + 1].text, pair=True)
                if pair and (not best or pair[0][1] > best[0][1] + 2):
                    best, width = pair, 2
                else:
                    width = 1
            else:
                width = 1
            if best:
                accepted, asked = self._decide(best, len(doc[index].text))
                found += [Mention(k, i, index, index + width, s) for (k, i), s in accepted]
                unsure += [i for i in asked if i not in unsure]
                if asked:
                    spans.append((index, index + width))
                if accepted or asked:
                    index += width
                    continue
            index += 1
        return found, unsure, spans

    def _best(self, query: str, pair: bool = False) -> list[tuple[tuple[str, str], float]]:
        """Best score per target for ``query``, highest first."""
        low = self._cutoff(len(query)) - self.WEAK_MARGIN
        scores: dict[tuple[str, str], float] = {}
        choices = self.fuzzy_pairs if pair else self.fuzzy_words
        results = process.extract(query, choices, scorer=fuzz.ratio, limit=8, score_cutoff=low)
        if not pair:
            squashed = _squash(query)
            results += process.extract(
                squashed, self.fuzzy_squashed, scorer=fuzz.ratio, limit=8, score_cutoff=low
            )
            # A one-word name cut short by a few letters ("zolgens") is a strong hint when only
            # one product's name starts so.
            starts = self._cut_short.get(squashed, set()) if len(squashed) >= _CUT_SHORT_MIN else set()
            if len({t for t in starts if t[0] == "product"}) == 1:
                for target in starts:
                    scores[target] = max(scores.get(target, 0.0), 86.0)
        for form, score, _ in results:
            for target in self.names.get(form, set()) | self.squashed.get(form, set()):
                # Group names are everyday words ("dystrophy", "tumors"): exact matches only.
                if target[0] != "group" or form in self.fuzzy_groups:
                    scores[target] = max(scores.get(target, 0.0), float(score))
        # Ties are broken by kind and id, never by set order, so every run answers alike.
        return sorted(scores.items(), key=lambda item: (-item[1], _KIND_ORDER[item[0][0]], item[0][1]))

    def _decide(
        self, ranked: list[tuple[tuple[str, str], float]], length: int
    ) -> tuple[list[tuple[tuple[str, str], float]], list[str]]:
        """Accept a clear winner; return products to ask about when unsure."""
        cutoff = self._cutoff(length)
        top_target, top = ranked[0]
        rivals = [(t, s) for t, s in ranked[1:] if s >= top - self.TIE_MARGIN and t[0] == "product"]
        if top >= cutoff:
            if top_target[0] == "product" and rivals:
                return [], [top_target[1]] + [t[1] for t, _ in rivals[:2]]
            return [(top_target, top)], []
        # A weak match is worth asking about only when it is close and the word is not short.
        if (
            top_target[0] == "product"
            and length >= 6
            and top >= cutoff - self.WEAK_MARGIN * (0.7 if length < 8 else 1)
        ):
            return [], [top_target[1]] + [t[1] for t, _ in rivals[:2]]
        return [], []

    def _maskable(self, mentions: list[Mention]) -> list[Mention]:
        """The mentions the classifier sees as placeholders, classes of therapy as their own kind."""
        return [
            Mention("class", m.id, m.start, m.end, m.score)
            if m.kind == "topic" and m.id in self.classes
            else m
            for m in mentions
            if m.id not in self.unmasked
        ]

    @staticmethod
    def _mask(doc: Doc, mentions: list[Mention], unsure: Sequence[tuple[int, int]] = ()) -> str:
        by_start: dict[int, tuple[str, int]] = {}
        for mention in mentions:
            by_start.setdefault(mention.start, (mention.kind, mention.end))
        for start, end in unsure:
            by_start.setdefault(start, ("product", end))
        words: list[str] = []
        index = 0
        while index < len(doc):
            found = by_start.get(index)
            if found is not None:
                words.append(PLACEHOLDERS[found[0]])
                index = max(found[1], index + 1)
                continue
            token = doc[index]
            if not (token.is_punct or token.is_space):
                words.append((token.lemma_ or token.text).lower())
            index += 1
        return " ".join(words)
