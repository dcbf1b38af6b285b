"""What the emergency screen adds to the phrase rules: readings typed as numbers, signs per
product class, and a "second opinion" model.

All content is data in ``intents/data/safety/``: the signs with the label section each comes
from (``emergency_signs.yaml``), the limits for temperature, blood pressure and heart rate
(``emergency_vitals.yaml``) and the model's training examples (``emergency_model.yaml``).
The model is the project's linear classifier with two labels, trained on first start with the
catalog's examples as calm text and cached (``knowledge.cache``) by a hash of everything it is
trained from, the code that trains it included, so an edited example retrains it. Its threshold
comes from a second fit on four fifths of the examples; that result ships under the hash of the
examples and settings (``intents.prebuilt``), so a fresh install fits only the final model
(about 0.4 s).
"""

from __future__ import annotations

import functools
import json
import math
import re
import sys
from array import array
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypedDict, TypeVar

import numpy as np

from intents import classifier, prebuilt
from intents.classifier import LinearModel
from knowledge.cache import cache_key, cached, source
from knowledge.datafile import DataModel, Problem, load_validated, read_model

__all__ = [
    "EmergencyModel",
    "SignGroup",
    "Tense",
    "Vitals",
    "calibration",
    "collect_emergency_data",
    "load_model",
    "load_sign_groups",
    "load_tense",
    "load_vitals",
]

DATA = Path(__file__).resolve().parent / "data" / "safety"
M = TypeVar("M", bound=DataModel)
_HOLD_OUT = 5
#: Kept below the lowest held-out emergency's score, so a near miss still counts as urgent.
_MARGIN = 0.8


class SignGroup(DataModel):
    """Signs of one kind of trouble, with the label section they come from."""

    name: str
    source: str
    signs: list[str]


class _Signs(DataModel):
    groups: list[SignGroup]


class _Temperature(DataModel):
    source: str
    fever_f: float
    fever_c: float
    plausible_f: tuple[float, float]
    plausible_c: tuple[float, float]
    context: list[str]


class _Pressure(DataModel):
    source: str
    systolic_below: int
    systolic_above: int


class _Rate(DataModel):
    source: str
    context: list[str]
    above: int
    below: int


class _VitalsFile(DataModel):
    temperature: _Temperature
    blood_pressure: _Pressure
    heart_rate: _Rate


class Tense(DataModel):
    """Phrases that place a sign in the past, and phrases that bring it back to now."""

    past: list[str]
    now: list[str]
    recovered: list[str] = []
    past_verbs: list[str] = []
    present_verbs: list[str] = []
    asking_words: list[str] = []
    future: list[str] = []
    requests: list[str] = []
    story_words: int = 40
    story_probability: float = 0.8
    figurative: list[str] = []

    def asks_for_information(self, sentence: str) -> bool:
        """Whether the sentence asks for facts in words, not with a question mark."""
        return _found(self.requests, sentence)

    def ahead(self, text: str) -> bool:
        """Whether the text speaks of plans ("is scheduled for", "next month", "plan ahead")."""
        return _found(self.future, text)

    def anchored(self, text: str) -> bool:
        """Whether the text places something in the past ("two years ago", "in 2019")."""
        return _found(self.past, text)

    def closed(self, text: str) -> bool:
        """Whether the text tells that an episode is over ("went away", "been fine since")."""
        return _found(self.recovered, text)

    def is_history(self, clause: str) -> bool:
        """Told as history: a past phrase and no word that says it is now."""
        if not _found(self.past, clause):
            return False
        if _found(self.recovered, clause):
            return True
        return not _found(self.now, clause)


# A reference to a group by number or name means something else once patterns are joined, and
# flags such as (?i) must open the whole pattern.
_UNJOINABLE = re.compile(r"\\\d|\(\?P=|\(\?\(|^\(\?[aiLmsux-]")


@functools.lru_cache(maxsize=64)
def _union(patterns: tuple[str, ...]) -> re.Pattern[str] | None:
    """One regex that finds a match wherever one of ``patterns`` does; None if they cannot be joined."""
    if not patterns or any(_UNJOINABLE.search(p) for p in patterns):
        return None
    try:
        for pattern in patterns:  # each must stand alone, so that no "a)|(b" joins into sense
            re.compile(pattern)
        return re.compile("|".join(f"(?:{p})" for p in patterns))
    except re.error:  # a broken pattern or a group name used twice: searched one by one
        return None


def _found(patterns: list[str], text: str) -> bool:
    """Whether any of ``patterns`` occurs in ``text``, with one search instead of one per pattern."""
    union = _union(tuple(patterns))
    if union is None:
        return any(re.search(p, text) for p in patterns)
    return union.search(text) is not None


def load_tense() -> Tense:
    """The past and now phrases (``emergency_tense.yaml``)."""
    return _read("emergency_tense.yaml", Tense)


class _Examples(DataModel):
    urgent: list[str]
    not_urgent: list[str]


def _read(name: str, model: type[M]) -> M:
    """One file of ``DATA``, validated; a DataError names it relative to the catalog's data root."""
    return load_validated(DATA / name, DATA.parent, model)


def load_sign_groups() -> list[SignGroup]:
    """The signs per product class (``emergency_signs.yaml``)."""
    return _read("emergency_signs.yaml", _Signs).groups


#: The files of the screen, each with its model; ``cgt-bot check`` validates them all.
_FILES: dict[str, type[DataModel]] = {
    "emergency_signs.yaml": _Signs,
    "emergency_tense.yaml": Tense,
    "emergency_vitals.yaml": _VitalsFile,
    "emergency_model.yaml": _Examples,
}


def collect_emergency_data(root: Path = DATA.parent) -> list[Problem]:
    """Every problem of the screen's files under ``root`` (the catalog's data root)."""
    problems: list[Problem] = []
    for name, model in _FILES.items():
        problems += read_model(root / DATA.name / name, root, model)[1]
    return problems


_NUMBER = re.compile(r"(?<![\d.])(\d{2,3}(?:\.\d)?)(?![\d.])")
_UNITS = frozenset({"f", "degrees", "°"})
_DIGIT = re.compile(r"\d")
_PRESSURE = re.compile(r"(?<![\d.])(\d{2,3}) ?(?:/|over| )(\d{2,3})(?![\d.])")


class Vitals:
    """Finds readings past their limits (``emergency_vitals.yaml``) in normalized text.

    Normalization turns "/" into a space, so "85/50" arrives as "85 50"; a pair of numbers is
    read as a blood pressure only when "bp", "pressure" or "over" is near it.
    """

    def __init__(self) -> None:
        data = _read("emergency_vitals.yaml", _VitalsFile)
        self.temp = data.temperature
        self.bp = data.blood_pressure
        self.rate = data.heart_rate

    def _near(self, tokens: list[str], at: int, words: list[str], span: int = 4) -> bool:
        window = tokens[max(0, at - span) : at + span + 1]
        joined = " " + " ".join(window) + " "
        return any(f" {w} " in joined for w in words)

    def positions(self, tokens: list[str]) -> list[int]:
        """Indexes of tokens that are readings past a limit."""
        # Every reading has digits (both patterns need \d), and most sentences have none.
        if not any(map(_DIGIT.search, tokens)):
            return []
        # A message that is nothing but a reading ("102.5", "104 f", "85/50") is read as one.
        alone = all(t.isdigit() or t in _UNITS or t in {".", "c"} for t in tokens)
        found = self._pressures(tokens, alone)
        for index in range(len(tokens)):
            reading = self._reading(tokens, index)
            if reading is not None and self._past_limit(tokens, index, *reading, alone=alone):
                found.append(index)
        return sorted(set(found))

    def normal_temperature(self, tokens: list[str]) -> bool:
        """Whether a temperature reading below the fever limit is given ("temp 97.9", "98.6 f")."""
        for index in range(len(tokens)):
            reading = self._reading(tokens, index)
            if reading is None:
                continue
            value, decimal, unit = reading
            if not (decimal or unit in _UNITS or self._near(tokens, index, self.temp.context)):
                continue
            if 95.0 <= value < self.temp.fever_f or 35.0 <= value < self.temp.fever_c:
                return True
        return False

    def _pressures(self, tokens: list[str], alone: bool) -> list[int]:
        found: list[int] = []
        joined = " ".join(tokens)
        for match in _PRESSURE.finditer(joined):
            at = joined[: match.start()].count(" ")
            if not alone and not self._near(tokens, at, ["bp", "pressure", "over", "monitor", "reading"], 5):
                continue
            systolic, diastolic = int(match.group(1)), int(match.group(2))
            if systolic > diastolic and not self.bp.systolic_below <= systolic <= self.bp.systolic_above:
                found.append(at)
        return found

    @staticmethod
    def _reading(tokens: list[str], index: int) -> tuple[float, bool, str] | None:
        """The number at ``index`` (value, whether it had a decimal, the unit after it), if any."""
        token = tokens[index]
        if not _NUMBER.fullmatch(token) or (index >= 2 and tokens[index - 1] == "."):
            return None
        # The word pattern splits "102.5" into "102", ".", "5": join them back.
        decimal = tokens[index + 1 : index + 2] == ["."] and tokens[index + 2 : index + 3] != []
        decimal = decimal and tokens[index + 2].isdigit()
        value = float(f"{token}.{tokens[index + 2]}") if decimal else float(token)
        after = index + 3 if decimal else index + 1
        return value, decimal, tokens[after] if after < len(tokens) else ""

    def _past_limit(
        self, tokens: list[str], index: int, value: float, decimal: bool, unit: str, alone: bool
    ) -> bool:
        context = alone or self._near(tokens, index, self.temp.context)
        low_f, high_f = self.temp.plausible_f
        low_c, high_c = self.temp.plausible_c
        fahrenheit = (context or decimal or unit in _UNITS) and low_f <= value <= high_f
        celsius = (context or decimal) and low_c <= value <= high_c and unit != "f"
        if fahrenheit or celsius:
            return True
        rate = self._near(tokens, index, self.rate.context) and not decimal
        return rate and (value > self.rate.above or (value < self.rate.below and unit == "bpm"))


def load_vitals() -> Vitals:
    """The readings checker."""
    return Vitals()


#: More than the relative error of float32 exp, sum and division in a two-label softmax.
_P_ROUNDING = 1e-5


def _sigmoid(lead: float) -> float:
    """The urgent label's softmax probability for its logit lead, in double precision."""
    if lead >= 0:
        return 1.0 / (1.0 + math.exp(-lead))
    power = math.exp(lead)
    return power / (1.0 + power)


@dataclass
class EmergencyModel:
    """A two-label classifier (urgent or not) and the threshold set for recall.

    Attributes:
        model (LinearModel): trained on every example.
        threshold (float): the urgent probability from which a message counts as urgent.
        held_out (dict[str, float]): precision and recall on the held-out fifth, from a model
            trained on the other four fifths with the same threshold.
    """

    model: LinearModel
    threshold: float
    held_out: dict[str, float]

    def __post_init__(self) -> None:
        # The urgent label's lead over the calm one, per weight row, and the size of both, for
        # `reaches`: a sum of Python floats where numpy's many small calls cost far more.
        urgent, calm = self.model.labels.index("urgent"), self.model.labels.index("calm")
        # Arrays of doubles, not lists of float objects: a fifth of the memory, so the few rows
        # a message reads are cheaper to reach; they hold the same values.
        rows: list[list[float]] = self.model.weights.tolist()
        self._lead = array("d", [row[urgent] - row[calm] for row in rows])
        self._size = array("d", [abs(row[urgent]) + abs(row[calm]) for row in rows])
        bias: list[float] = self.model.bias.tolist()
        self._bias_lead = bias[urgent] - bias[calm]
        self._bias_size = abs(bias[urgent]) + abs(bias[calm])

    def probability(self, normalized: str) -> float:
        """The probability that the message reports an emergency now."""
        return self.model.predict(normalized)["urgent"]

    def reaches(self, normalized: str, threshold: float) -> bool:
        """Whether ``probability(normalized) >= threshold``, always as that comparison decides.

        The logit lead is summed in double precision, and the float32 sums, softmax and rounding
        of ``probability`` can move it by no more than ``slack``: outside that band its side of
        the threshold is the computed probability's side, and inside it the probability decides.
        """
        rows = self.model.rows(normalized)
        lead = self._bias_lead + sum([self._lead[row] for row in rows])
        size = self._bias_size + sum([self._size[row] for row in rows])
        # Float32 sums of n terms in any order are off by at most (n - 1) * 2**-24 of the sum of
        # their sizes; the bias and the softmax add a few roundings more, counted here with room.
        slack = 4 * (len(rows) + 4) * 2.0**-24 * size + 1e-9
        low, high = _sigmoid(lead - slack), _sigmoid(lead + slack)
        if low * (1 - _P_ROUNDING) >= threshold:
            return True
        if high * (1 + _P_ROUNDING) < threshold:
            return False
        return self.probability(normalized) >= threshold

    def is_urgent(self, normalized: str) -> bool:
        """Whether the model's probability reaches the threshold."""
        return self.probability(normalized) >= self.threshold


class _Settings(TypedDict):
    model: str
    l2: float
    steps: int
    rate: float
    margin: float
    recall: float


#: Training settings; part of the cache key.
_SETTINGS: _Settings = {
    "model": "emergency-linear-v1",
    "l2": 1e-4,
    "steps": 200,
    "rate": 0.3,
    "margin": _MARGIN,
    "recall": 0.9,
}


def _fit(urgent: list[str], calm: list[str]) -> LinearModel:
    texts = [*urgent, *calm]
    targets = ["urgent"] * len(urgent) + ["calm"] * len(calm)
    return LinearModel.fit(
        texts,
        targets,
        ["calm", "urgent"],
        l2=_SETTINGS["l2"],
        steps=int(_SETTINGS["steps"]),
        rate=_SETTINGS["rate"],
    )


def _inputs(
    extra_urgent: Sequence[str], extra_calm: Sequence[str], caught: Callable[[str], bool] | None
) -> tuple[_Examples, list[str], str]:
    """The examples, the held-out emergencies the rules miss, and the key of both."""
    data = _read("emergency_model.yaml", _Examples)
    missed = [t for t in data.urgent[::_HOLD_OUT] if caught is None or not caught(t)]
    key = cache_key([_SETTINGS, data.urgent, data.not_urgent, list(extra_urgent), list(extra_calm), missed])
    return data, missed, key


def calibration(
    extra_urgent: Sequence[str] = (),
    extra_calm: Sequence[str] = (),
    caught: Callable[[str], bool] | None = None,
) -> dict[str, Any]:
    """The threshold and held-out figures, from a model trained on four fifths of the examples.

    Worked out from scratch; ``intents.prebuilt`` ships the result under its ``key``, so that a
    fresh install fits only the final model. Arguments as for :func:`load_model`.
    """
    data, missed, key = _inputs(extra_urgent, extra_calm, caught)
    held_urgent = data.urgent[::_HOLD_OUT]
    held_calm = data.not_urgent[::_HOLD_OUT]
    train_urgent = [t for i, t in enumerate(data.urgent) if i % _HOLD_OUT] + list(extra_urgent)
    train_calm = [t for i, t in enumerate(data.not_urgent) if i % _HOLD_OUT] + list(extra_calm)
    trial = _fit(train_urgent, train_calm)
    scores = [trial.predict(t)["urgent"] for t in held_urgent]
    # Every held-out emergency the rules miss, and at least nine in ten of all of them: a few
    # wordings nothing else in the examples shares must not drag the threshold to zero.
    floor = sorted(scores)[int(len(scores) * (1 - _SETTINGS["recall"]))]
    threshold = min([floor, *(trial.predict(t)["urgent"] for t in missed)]) * _MARGIN
    hits = sum(s >= threshold for s in scores)
    screen_hits = len(held_urgent) - sum(trial.predict(t)["urgent"] < threshold for t in missed)
    false = sum(trial.predict(t)["urgent"] >= threshold for t in held_calm)
    held_out = {
        "recall": hits / len(held_urgent),
        "precision": hits / (hits + false) if hits + false else 1.0,
        "urgent": float(len(held_urgent)),
        "calm": float(len(held_calm)),
        "false_alarms": float(false),
        "screen_recall": screen_hits / len(held_urgent),
        "rules_missed": float(len(missed)),
    }
    return {"key": key, "threshold": threshold, "held_out": held_out}


def _usable(shipped: dict[str, Any] | None) -> bool:
    held_out = shipped.get("held_out") if shipped is not None else None
    return (
        shipped is not None
        and isinstance(shipped.get("threshold"), float)
        and isinstance(held_out, dict)
        and all(isinstance(v, float) for v in held_out.values())
    )


def load_model(
    extra_urgent: Sequence[str] = (),
    extra_calm: Sequence[str] = (),
    caught: Callable[[str], bool] | None = None,
) -> EmergencyModel:
    """Train the model on ``emergency_model.yaml`` plus the catalog's examples.

    Args:
        extra_urgent (Sequence[str]): more emergencies (the catalog's ``emergency`` examples).
        extra_calm (Sequence[str]): more non-emergencies (side-effect questions and the like).
        caught (Callable[[str], bool] | None): whether the rules already call a message urgent.
            The model is the second opinion on what the rules miss, so its threshold is set to
            keep every held-out emergency the rules miss; with no rules, every held-out one.
    """
    data, _, key = _inputs(extra_urgent, extra_calm, caught)

    def build() -> EmergencyModel:
        shipped = prebuilt.read("emergency", key)
        found = (
            shipped
            if shipped is not None and _usable(shipped)
            else calibration(extra_urgent, extra_calm, caught)
        )
        final = _fit([*data.urgent, *extra_urgent], [*data.not_urgent, *extra_calm])
        return EmergencyModel(final, float(found["threshold"]), dict(found["held_out"]))

    # Keyed by the code that trains and stores the model too, so that an edit of it retrains; the
    # shipped threshold is checked against a fresh one by its test.
    code = cache_key(key, source(classifier), source(sys.modules[__name__]), libraries=[np])
    return cached("emergency", code, build=build, save=_save, load=_load)


def _save(model: EmergencyModel, folder: Path) -> None:
    (folder / "model.npz").write_bytes(model.model.to_bytes())
    saved = {"threshold": model.threshold, "held_out": model.held_out}
    (folder / "threshold.json").write_text(json.dumps(saved), encoding="utf-8")


def _load(folder: Path) -> EmergencyModel:
    saved = json.loads((folder / "threshold.json").read_text(encoding="utf-8"))
    model = LinearModel.from_bytes((folder / "model.npz").read_bytes())
    return EmergencyModel(model, float(saved["threshold"]), dict(saved["held_out"]))
