"""The language pipeline: one blank English spaCy pipeline with a trimmed lemma table, and
the check for messages written in another language.

Shared by the assistant and ``cgt-bot check``; no model is downloaded.
"""

from __future__ import annotations

import functools
import gzip
import json
import re
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import cast

import spacy
from spacy.lang.en.stop_words import STOP_WORDS
from spacy.language import Language
from spacy.lookups import Lookups
from spacy.pipeline import Lemmatizer
from spacy.tokenizer import Tokenizer
from spacy.util import compile_infix_regex, compile_prefix_regex, compile_suffix_regex

from intents.catalog import Catalog
from knowledge.cache import cache_key, cached
from knowledge.loader import KnowledgeBase
from knowledge.resolver import common_words, normalize

__all__ = ["build_nlp", "known_words", "language_of"]


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
            tenth of the full one, read in a tenth of the time. Built once from the shipped
            English table (``LEMMA_TABLE``) and cached by the words it keeps.
    """
    nlp = spacy.blank("en", config={"nlp": {"tokenizer": {"@tokenizers": "cgt_bot.english_tokenizer.v1"}}})
    # add_pipe is typed as returning any pipe; the "lemmatizer" factory makes a Lemmatizer.
    lemmatizer = cast(Lemmatizer, nlp.add_pipe("lemmatizer", config={"mode": "lookup"}))
    # The table is the shipped English one, cut by the words kept, in spaCy's format.
    key = cache_key(sorted(keep or ()), bool(keep), _table_bytes(), libraries=[spacy])
    # Recorded with the pipeline, so that what is trained on its lemmas is keyed by the table.
    nlp.meta["lemma_table"] = key

    def build() -> Lemmatizer:
        lemmatizer.initialize(lookups=_kept_lemmas(keep))
        return lemmatizer

    cached(
        "lemmatizer",
        key,
        build=build,
        save=lambda built, folder: built.to_disk(folder / "lemmatizer"),
        load=lambda folder: lemmatizer.from_disk(folder / "lemmatizer"),
    )
    return nlp


#: spaCy's English lemma lookup table (spacy-lookups-data 1.0.5, MIT, see the LICENSE beside
#: it): 200 KB shipped here in place of that 99 MB package of every language's tables.
LEMMA_TABLE = Path(__file__).resolve().parent / "data" / "en_lemma_lookup.json.gz"


@functools.cache
def _table_bytes() -> bytes:
    return LEMMA_TABLE.read_bytes()


def _kept_lemmas(keep: frozenset[str] | None) -> Lookups:
    """The English lemma table, cut down to the entries ``keep`` needs (all of it without)."""
    # spaCy's tables hold hashed keys; the words come from the JSON file itself.
    entries = json.loads(gzip.decompress(_table_bytes()).decode("utf-8"))
    kept = {form: lemma for form, lemma in entries.items() if keep is None or form in keep or lemma in keep}
    lookups = Lookups()
    lookups.add_table("lemma_lookup", kept)
    return lookups


def known_words(kb: KnowledgeBase, catalog: Catalog) -> frozenset[str]:
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


_WORDS = re.compile(r"[^\W\d_]+")


def language_of(
    normalized: str, stop_words: frozenset[str], languages: Mapping[str, frozenset[str]]
) -> str | None:
    """The language of a message that is clearly not English, else None.

    Args:
        normalized (str): the normalized message.
        stop_words (frozenset[str]): English function words.
        languages (Mapping[str, frozenset[str]]): words that mark each other language (scope.yaml).
    """
    # An ASCII text has only ASCII letters, so the share below is 1 and need not be counted.
    letters = [] if normalized.isascii() else [ch for ch in normalized if ch.isalpha()]
    if letters and sum(ch.isascii() for ch in letters) / len(letters) < 0.5:
        return "other"
    words = _WORDS.findall(normalized)
    if len(words) < 2:
        return None
    # Counted through map(): the same counts, without a generator frame per language.
    english = sum(map(stop_words.__contains__, words))
    for lang, vocab in languages.items():
        hits = sum(map(vocab.__contains__, words))
        if hits >= 2 and hits > english and hits >= len(words) / 3:
            return lang
    return None
