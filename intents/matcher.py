"""Classify a message into an intent.

Safety rules come first and win. Then a linear classifier (``intents.classifier``:
words, word pairs and pieces of words), trained from the catalog's examples with every
product, condition and topic name masked, gives a probability per intent. Last,
the scope rules keep an intent only when the message holds what that intent needs
(a product, a topic, a condition, or at least a word of this domain); what is left
is ``out_of_scope``.

The classifier is trained on first use and cached on disk (``knowledge.cache``) under a key made
of the examples, the names it masks, the training settings and the spaCy version, with the code
that trains it and numpy's version, so a change to any of them retrains it, and the same inputs
always give the same model. The slow part of training (masking the examples, the held-out fit for
calibration) ships with the package under the key of the data alone (``intents.prebuilt``), so on
a fresh install only the final fit runs (about 0.3 s).
"""

from __future__ import annotations

import functools
import json
import logging
import re
import sys
from collections.abc import Callable
from collections.abc import Set as AbstractSet
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypedDict

import numpy as np
import spacy

from intents import classifier, prebuilt
from intents.catalog import Catalog
from intents.classifier import LinearModel
from intents.safety import SafetyScreen
from knowledge.cache import cache_key, cached, source
from knowledge.resolver import Resolution, Resolver, normalize

__all__ = ["IntentMatcher", "Prediction"]

log = logging.getLogger(__name__)


class _Training(TypedDict):
    batch: int
    steps: int
    rate: float
    l2: float
    drop: float
    seed: int
    pieces: bool


#: How the intent classifier is trained (see ``LinearModel.fit``).
#: Shuffled batches with feature dropout and a small step, as spaCy's TextCatBOW was trained,
#: on words and word pairs (pieces of words made it call too few messages out of scope):
#: about 0.4 s per fit where TextCatBOW took about 18 s, and intent accuracy on the dev and
#: probe sets within half a point of it (README, "How well it understands").
TRAINING: _Training = {
    "batch": 64,
    "steps": 10,
    "rate": 0.006,
    "l2": 0.0,
    "drop": 0.2,
    "seed": 7,
    "pieces": False,
}
#: The calibration temperature the raw probabilities are kept at (see ``train``).
RAW_TEMPERATURE = 0.5
MODEL = "model.npz"
VOCABULARY = "vocabulary.json"

_CUE_WORDS = re.compile(r"[\w/']+")


def _scaled(scores: dict[str, float], temperature: float) -> dict[str, float]:
    """Softmax probabilities re-tempered: p ** (1 / T), normalised."""
    exponent = 1.0 / temperature
    powered = {k: max(v, 1e-12) ** exponent for k, v in scores.items()}
    total = sum(powered.values())
    return {k: v / total for k, v in powered.items()}


def _best_temperature(scored: list[tuple[dict[str, float], str]]) -> float:
    """The temperature with the lowest negative log-likelihood on held-out examples."""
    if not scored:
        return 1.0
    candidates = np.array([round(0.2 + 0.05 * i, 2) for i in range(57)])
    names = sorted(scored[0][0])
    logs = np.log(np.maximum([[s[n] for n in names] for s, _ in scored], 1e-12))
    gold = logs[np.arange(len(scored)), [names.index(g) for _, g in scored]]
    # log of p_gold ** (1/T) / sum(p ** (1/T)), for every candidate T at once
    powered = logs[None, :, :] / candidates[:, None, None]
    top = powered.max(axis=2)
    norm = top + np.log(np.exp(powered - top[:, :, None]).sum(axis=2))
    loss = -(gold[None, :] / candidates[:, None] - norm).sum(axis=1)
    return float(candidates[int(np.argmin(loss))])


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
        # On a first start both models train: the safety screen's emergency model (numpy, mostly
        # outside the interpreter lock) on a second thread while the intent classifier trains here.
        with ThreadPoolExecutor(max_workers=1) as pool:
            screen = pool.submit(
                SafetyScreen,
                catalog.safety,
                common_words,
                known,
                extra_urgent=catalog.examples.get("emergency", []),
                extra_calm=calm,
            )
            self._prepare(catalog, resolver)
            self.screen = screen.result()

    def _prepare(self, catalog: Catalog, resolver: Resolver) -> None:
        self.cues = [
            (re.compile(r"(?:" + "|".join(spec.cues) + r")"), spec.name)
            for spec in catalog.intents.values()
            if spec.cues
        ]
        self.labels = sorted(catalog.examples)
        self.vocabulary: frozenset[str] = frozenset()
        self.temperature = 1.0
        # Masked texts repeat a lot ("how much does xproductx cost"), and the model is fixed once
        # built, so recent results are kept.
        self._predict: Callable[[str], dict[str, float]] = functools.lru_cache(maxsize=4096)(self._predicted)
        # One spaCy pipeline serves the whole bot: the classifier is a component made from it,
        # not a second pipeline with a second tokenizer.
        self.nlp = resolver.nlp
        self.model = self._load_or_train(resolver)

    # -- training ----------------------------------------------------------------------------------

    def _training_key(self, resolver: Resolver) -> str:
        """The key of what the classifier is trained from, under which its calibration ships."""
        payload = {
            "examples": self.catalog.examples,
            "shorthand": self.catalog.scope.shorthand,
            "names": sorted(resolver.names),
            "unmasked": sorted(resolver.unmasked),
            "classes": sorted(resolver.classes),
            "makers": sorted(resolver.makers),
            "training": TRAINING,
            "raw_temperature": RAW_TEMPERATURE,
            "tokenizer": resolver.nlp.config["nlp"]["tokenizer"],
            "lemmas": resolver.nlp.meta.get("lemma_table"),
        }
        return cache_key(payload, libraries=[spacy])

    def _load_or_train(self, resolver: Resolver) -> LinearModel:
        key = self._training_key(resolver)

        def build() -> LinearModel:
            shipped = prebuilt.read("intents", key)
            if shipped is not None and not self._fits(shipped):
                log.warning("the shipped intent calibration does not fit the catalog; training in full")
                shipped = None
            if shipped is None and self.on_training is not None:
                self.on_training()
            return self.train(resolver, shipped)

        # The cached model is keyed by the code that trains and stores it too, so that an edit of
        # the training retrains; the shipped calibration is checked against a fresh one by its test.
        code = cache_key(key, source(classifier), source(sys.modules[__name__]), libraries=[np])
        return cached("intents", code, build=build, save=self._save, load=self._load)

    def _fits(self, shipped: dict[str, Any]) -> bool:
        """Whether shipped results have the shape of this catalog (the key says they match it)."""
        masked = shipped.get("masked")
        return (
            isinstance(shipped.get("temperature"), float)
            and isinstance(masked, dict)
            and sorted(masked) == self.labels
            and all(
                isinstance(texts, list)
                and len(texts) == len(self.catalog.examples[intent])
                and all(isinstance(t, str) for t in texts)
                for intent, texts in masked.items()
            )
        )

    def calibration(self, resolver: Resolver) -> dict[str, Any]:
        """What training needs before the final fit, worked out from scratch.

        Every catalog example masked as a message would be, and the temperature that makes the
        probabilities honest: a first model trained on four fifths of the examples is scored on
        the fifth it did not see. ``intents.prebuilt`` ships this, so that a fresh install skips it.
        """
        masked = {
            intent: [
                resolver.resolve(self.catalog.expand(" ".join(normalize(text).split()))).masked or "empty"
                for text in self.catalog.examples[intent]
            ]
            for intent in self.labels
        }
        pairs, _ = self._training_set(masked)
        held_out = pairs[::5]
        fitted = self._fit([m for i, m in enumerate(pairs) if i % 5])
        temperature = _best_temperature([(fitted.predict(words), intent) for words, intent in held_out])
        return {"key": self._training_key(resolver), "temperature": temperature, "masked": masked}

    def _training_set(self, masked: dict[str, list[str]]) -> tuple[list[tuple[str, str]], frozenset[str]]:
        """The (text, intent) pairs the classifier learns from, and the words they use."""
        pairs: list[tuple[str, str]] = []
        vocabulary: set[str] = set()
        for intent in self.labels:
            for words in masked[intent]:
                vocabulary.update(words.split())
                pairs.append((words, intent))
                if self.catalog.spec(intent).aspect is not None and words.split().count("xproductx") == 1:
                    # Every question with a class answer may be asked of a whole class too.
                    pairs.append((words.replace("xproductx", "xclassx"), intent))
        return pairs, frozenset(vocabulary)

    def train(self, resolver: Resolver, calibration: dict[str, Any] | None = None) -> LinearModel:
        """Train the classifier on the masked catalog examples, deterministically.

        Args:
            resolver (Resolver): masks the examples, unless ``calibration`` has them.
            calibration (dict[str, Any] | None): the results of :meth:`calibration` for this
                catalog (as shipped); worked out here when not given.
        """
        if calibration is None:
            calibration = self.calibration(resolver)
        pairs, self.vocabulary = self._training_set(calibration["masked"])
        temperature = float(calibration["temperature"])
        model = self._fit(pairs)
        # The assistant's thresholds were set on spaCy's TextCatBOW, whose probabilities were
        # soft: its calibration temperature was RAW_TEMPERATURE. The weights are scaled so that
        # this model's own probabilities are as soft (softmax(z / T) is softmax(z) ** (1 / T),
        # normalised), and RAW_TEMPERATURE turns them into the calibrated ones.
        model.weights /= temperature / RAW_TEMPERATURE
        model.bias /= temperature / RAW_TEMPERATURE
        self.temperature = RAW_TEMPERATURE
        return model

    def _fit(self, masked: list[tuple[str, str]]) -> LinearModel:
        return LinearModel.fit([w for w, _ in masked], [i for _, i in masked], self.labels, **TRAINING)

    def calibrated(self, scores: dict[str, float], intent: str) -> float:
        """The probability of ``intent`` after temperature scaling: what the bot reports."""
        if intent not in scores:
            return 0.0
        # As _scaled(scores, T)[intent], the same sum in the same order, without the other quotients.
        exponent = 1.0 / self.temperature
        total: float = sum([max(v, 1e-12) ** exponent for v in scores.values()])
        powered: float = max(scores[intent], 1e-12) ** exponent
        return powered / total

    def _save(self, model: LinearModel, folder: Path) -> None:
        (folder / MODEL).write_bytes(model.to_bytes())
        saved = {"words": sorted(self.vocabulary), "temperature": self.temperature}
        (folder / VOCABULARY).write_text(json.dumps(saved), encoding="utf-8")

    def _load(self, folder: Path) -> LinearModel:
        model = LinearModel.from_bytes((folder / MODEL).read_bytes())
        saved = json.loads((folder / VOCABULARY).read_text(encoding="utf-8"))
        self.vocabulary = frozenset(saved["words"])
        self.temperature = float(saved["temperature"])
        return model

    # -- classifying ------------------------------------------------------------------------------

    def scores(self, masked: str) -> dict[str, float]:
        """The classifier's probability per intent for a masked text."""
        # A copy: the remembered result is shared by every later call on the same text.
        return dict(self._predict(masked))

    def _predicted(self, masked: str) -> dict[str, float]:
        return self.model.predict(masked or "empty")

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
        bare = " ".join(_CUE_WORDS.findall(normalized))
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
    def best_of(prediction: Prediction, allowed: AbstractSet[str]) -> Prediction | None:
        """The classifier's best intent among ``allowed``, if it gave scores."""
        if not prediction.scores:
            return None
        name = max(allowed & set(prediction.scores), key=prediction.scores.__getitem__, default=None)
        if name is None:
            return None
        return Prediction(name, float(prediction.scores[name]), prediction.scores, "best allowed")
