"""Classify a message into an intent.

Safety rules come first and win. Then a spaCy TextCategorizer, trained from the
catalog's examples with every product, condition and topic name masked, gives a
probability per intent. Last, the scope rules keep an intent only when the
message holds what that intent needs (a product, a topic, a condition, or at
least a word of this domain); what is left is ``out_of_scope``.

The classifier is trained on first use and cached on disk under a key made of
the examples, the names it masks and the spaCy version, so a change to any of
them retrains it, and the same inputs always give the same model.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import math
import os
import random
import re
import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import spacy
from spacy.language import Language
from spacy.pipeline import TextCategorizer
from spacy.training import Example
from spacy.util import fix_random_seed, minibatch

from intents.catalog import Catalog
from intents.safety import SafetyScreen
from knowledge.cache import cache_dir
from knowledge.resolver import Resolution, Resolver, normalize

__all__ = ["IntentMatcher", "Prediction"]

log = logging.getLogger(__name__)

TEXTCAT_CONFIG = {
    "model": {
        "@architectures": "spacy.TextCatBOW.v3",
        "exclusive_classes": True,
        "ngram_size": 2,
        "no_output_layer": False,
        "length": 65536,
    }
}
EPOCHS = 14
VOCABULARY = "vocabulary.json"

SEED = 7
_VERSION = "6"


def _scaled(scores: dict[str, float], temperature: float) -> dict[str, float]:
    """Softmax probabilities re-tempered: p ** (1 / T), normalised."""
    powered = {k: max(v, 1e-12) ** (1.0 / temperature) for k, v in scores.items()}
    total = sum(powered.values())
    return {k: v / total for k, v in powered.items()}


def _best_temperature(scored: list[tuple[dict[str, float], str]]) -> float:
    """The temperature with the lowest negative log-likelihood on held-out examples."""
    candidates = [round(0.2 + 0.05 * i, 2) for i in range(57)]

    def loss(temperature: float) -> float:
        return -sum(math.log(max(_scaled(s, temperature)[gold], 1e-12)) for s, gold in scored)

    return min(candidates, key=loss) if scored else 1.0


@dataclass
class Prediction:
    """The matcher's verdict on one message.

    Attributes:
        intent (str): the chosen intent.
        confidence (float): 0 to 1.
        scores (dict[str, float]): the classifier's probability per intent (empty for rule hits).
        reason (str): which rule decided, for the eval report and debugging.
    """

    intent: str
    confidence: float
    scores: dict[str, float] = field(default_factory=dict)
    reason: str = "classifier"


class IntentMatcher:
    """Decides the intent of a message from its resolution; built once, reused.

    Args:
        catalog (Catalog): intents, examples and rules.
        resolver (Resolver): used to mask the training examples as messages are masked.
        common_words (frozenset[str]): common English words, for the safety screen.
        on_training (Callable[[], None] | None): called before a (slow) first training, so that a
            front end can tell the person why the first start takes a while.
    """

    def __init__(
        self,
        catalog: Catalog,
        resolver: Resolver,
        common_words: frozenset[str],
        on_training: Callable[[], None] | None = None,
    ) -> None:
        self.catalog = catalog
        self.on_training = on_training
        self.domain_words = frozenset(catalog.scope.domain_words)
        known = frozenset(w for name in resolver.names for w in name.split()) | self.domain_words
        # Every other intent's examples are calm text for the emergency model.
        calm = [t for name, texts in sorted(catalog.examples.items()) if name != "emergency" for t in texts]
        self.screen = SafetyScreen(
            catalog.safety,
            common_words,
            known,
            extra_urgent=catalog.examples.get("emergency", []),
            extra_calm=calm,
        )
        self.cues = [
            (re.compile(r"(?:" + "|".join(spec.cues) + r")"), spec.name)
            for spec in catalog.intents.values()
            if spec.cues
        ]
        self.labels = sorted(catalog.examples)
        self.vocabulary: frozenset[str] = frozenset()
        self.temperature = 1.0
        self._scores: dict[str, dict[str, float]] = {}
        # One spaCy pipeline serves the whole bot: the classifier is a component made from it,
        # not a second pipeline with a second tokenizer.
        self.nlp = resolver.nlp
        self.textcat = self._load_or_train(resolver)

    # -- training ----------------------------------------------------------------------------------

    def _training_key(self, resolver: Resolver) -> str:
        digest = hashlib.sha256()
        payload = {
            "examples": self.catalog.examples,
            "shorthand": self.catalog.scope.shorthand,
            "names": sorted(resolver.names),
            "unmasked": sorted(resolver.unmasked),
            "classes": sorted(resolver.classes),
            "config": TEXTCAT_CONFIG,
            "epochs": EPOCHS,
            "spacy": spacy.__version__,
            "tokenizer": resolver.nlp.config["nlp"]["tokenizer"],
            "lemmas": resolver.nlp.meta.get("lemma_table"),
            "version": _VERSION,
        }
        digest.update(json.dumps(payload, sort_keys=True).encode("utf-8"))
        return digest.hexdigest()[:20]

    def _load_or_train(self, resolver: Resolver) -> TextCategorizer:
        key = self._training_key(resolver)
        target = cache_dir() / f"textcat-{key}"
        if (target / "textcat" / "cfg").exists() and (target / VOCABULARY).exists():
            try:
                textcat = self.nlp.create_pipe("textcat", config=TEXTCAT_CONFIG)
                textcat.from_disk(target / "textcat")
                saved = json.loads((target / VOCABULARY).read_text(encoding="utf-8"))
                self.vocabulary = frozenset(saved["words"])
                self.temperature = float(saved["temperature"])
                with contextlib.suppress(OSError):  # marks it as in use, for pruning
                    os.utime(target)
                return textcat
            except Exception:  # a broken cache is rebuilt, never fatal
                log.warning("the cached classifier could not be read; training it again")
        if self.on_training is not None:
            self.on_training()
        textcat = self.train(resolver)
        self._save(textcat, target, {"words": sorted(self.vocabulary), "temperature": self.temperature})
        return textcat

    def train(self, resolver: Resolver) -> TextCategorizer:
        """Train the text categorizer on the masked catalog examples, deterministically.

        A first model trained on four fifths of the examples is scored on the fifth it did not
        see, to fit the temperature that makes its probabilities honest (``self.temperature``);
        then the model is trained on every example.
        """
        masked: list[tuple[str, str]] = []
        vocabulary: set[str] = set()
        for intent in self.labels:
            for text in self.catalog.examples[intent]:
                words = (
                    resolver.resolve(self.catalog.expand(" ".join(normalize(text).split()))).masked or "empty"
                )
                vocabulary.update(words.split())
                masked.append((words, intent))
                if self.catalog.spec(intent).aspect is not None and words.split().count("xproductx") == 1:
                    # Every question with a class answer may be asked of a whole class too.
                    masked.append((words.replace("xproductx", "xclassx"), intent))
        self.vocabulary = frozenset(vocabulary)
        held_out = masked[::5]
        nlp, fitted = self._fit(resolver, [m for i, m in enumerate(masked) if i % 5])
        self.temperature = _best_temperature(
            [(dict(fitted(nlp.make_doc(words)).cats), intent) for words, intent in held_out]
        )
        return self._fit(resolver, masked)[1]

    def _fit(self, resolver: Resolver, masked: list[tuple[str, str]]) -> tuple[Language, TextCategorizer]:
        fix_random_seed(SEED)
        # Trained with the same tokenizer that reads messages.
        nlp = spacy.blank("en", config={"nlp": {"tokenizer": resolver.nlp.config["nlp"]["tokenizer"]}})
        textcat = nlp.add_pipe("textcat", config=TEXTCAT_CONFIG)
        for label in self.labels:
            textcat.add_label(label)
        examples = [
            Example.from_dict(
                nlp.make_doc(words), {"cats": {label: float(label == intent) for label in self.labels}}
            )
            for words, intent in masked
        ]
        nlp.initialize(lambda: examples)
        shuffle = random.Random(SEED)
        for _ in range(EPOCHS):
            shuffle.shuffle(examples)
            for batch in minibatch(examples, size=32):
                nlp.update(batch, drop=0.2)
        return nlp, textcat

    def calibrated(self, scores: dict[str, float], intent: str) -> float:
        """The probability of ``intent`` after temperature scaling: what the bot reports."""
        return _scaled(scores, self.temperature).get(intent, 0.0)

    @staticmethod
    def _save(textcat: TextCategorizer, target: Path, vocabulary: dict[str, object]) -> None:
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            scratch = Path(tempfile.mkdtemp(dir=target.parent))
            textcat.to_disk(scratch / "textcat")
            (scratch / VOCABULARY).write_text(json.dumps(vocabulary), encoding="utf-8")
            if target.exists():
                shutil.rmtree(scratch, ignore_errors=True)
                return
            scratch.rename(target)
        except OSError:
            log.info("the classifier cache folder is not writable; the classifier stays in memory")
            return
        # Each edit of the catalog trains a new classifier; older ones (7 MB each) go, except
        # those used in the last day, which another checkout on this machine may still need.
        cutoff = time.time() - 24 * 3600
        for old in target.parent.glob("textcat-*"):
            with contextlib.suppress(OSError):
                if old != target and old.stat().st_mtime < cutoff:
                    shutil.rmtree(old)

    # -- classifying ------------------------------------------------------------------------------

    def scores(self, masked: str) -> dict[str, float]:
        """The classifier's probability per intent for a masked text.

        Masked texts repeat a lot ("how much does xproductx cost"), and the model is fixed
        once built, so recent results are kept.
        """
        cached = self._scores.get(masked)
        if cached is None:
            doc = self.textcat(self.nlp.make_doc(masked or "empty"))
            cached = dict(doc.cats)
            if len(self._scores) >= 4096:
                self._scores.pop(next(iter(self._scores)))
            self._scores[masked] = cached
        return dict(cached)

    def safety(self, normalized: str, in_domain: bool = True) -> Prediction | None:
        """The safety verdict, if a safety rule fires."""
        reason = self.screen.reason(normalized)
        if reason is not None:
            return Prediction("emergency", 1.0, reason=reason)
        if self.screen.is_personal_advice(normalized, in_domain):
            return Prediction("personal_advice", 0.95, reason="personal advice rule")
        return None

    def cue(self, normalized: str) -> Prediction | None:
        """A short message that a cue pattern names whole ("thx", "/start")."""
        bare = " ".join(re.findall(r"[\w/']+", normalized))
        if len(bare.split()) > 6:
            return None
        for pattern, intent in self.cues:
            if pattern.fullmatch(bare):
                return Prediction(intent, 0.95, reason="cue")
        return None

    def unknown_share(self, masked: str, stop_words: frozenset[str] | set[str]) -> float:
        """Share of a message's content words that no catalog example uses.

        A message made mostly of words the catalog never saw ("move $100 to my savings")
        is outside what the classifier knows, however confident it sounds.
        """
        content = [w for w in masked.split() if w.isalpha() and len(w) > 2 and w not in stop_words]
        if not content:
            return 0.0
        return sum(w not in self.vocabulary for w in content) / len(content)

    def has_domain_word(self, resolution: Resolution) -> bool:
        """Whether the message speaks of this domain at all, names aside."""
        return any(
            t.lemma_.lower() in self.domain_words or t.text in self.domain_words for t in resolution.doc
        )

    def classify(self, normalized: str, masked: str) -> Prediction:
        """Cue patterns, then the classifier; safety and scope are applied by the caller."""
        verdict = self.cue(normalized)
        if verdict is not None:
            return verdict
        scores = self.scores(masked)
        # The rules decide emergencies; the classifier alone never alarms anyone, and it
        # calls a question personal advice only when it is sure.
        ranked = [i for i in sorted(scores, key=scores.__getitem__, reverse=True) if i != "emergency"]
        if ranked[0] == "personal_advice" and scores["personal_advice"] < 0.6:
            ranked = ranked[1:]
        return Prediction(ranked[0], float(scores[ranked[0]]), scores)

    @staticmethod
    def best_of(prediction: Prediction, allowed: set[str]) -> Prediction | None:
        """The classifier's best intent among ``allowed``, if it gave scores."""
        if not prediction.scores:
            return None
        name = max(allowed & set(prediction.scores), key=prediction.scores.__getitem__, default=None)
        if name is None:
            return None
        return Prediction(name, float(prediction.scores[name]), prediction.scores, "best allowed")
