"""The checks every message passes before classification: emergencies, then personal advice.

The rules themselves are data (``intents/data/safety.yaml``); this module only
applies them. An emergency needs a sign of trouble told as happening now:
"my son has a high fever" is one, "can Kymriah cause a fever?" is not.
"""

from __future__ import annotations

import re

from rapidfuzz import fuzz, process

from intents.catalog import SafetyRules
from intents.emergency import EmergencyModel, Vitals, load_model, load_sign_groups, load_tense

__all__ = ["SafetyScreen", "tokens_of"]

# Digits and letters apart, so that "38.9c" reads as a number and its unit.
_WORD = re.compile(r"[a-z]+|\d+|°|[.?!,;]")
_WINDOW = 6
_SHORT_REPORT = 30


def tokens_of(normalized: str) -> list[str]:
    """Words and sentence marks of an already normalized text."""
    return _WORD.findall(normalized)


def _any(patterns: list[str]) -> re.Pattern[str]:
    return re.compile("|".join(f"(?:{p})" for p in patterns))


class SafetyScreen:
    """Applies the safety rules to normalized text.

    Args:
        rules (SafetyRules): the validated contents of ``safety.yaml``.
        common_words (frozenset[str]): words never treated as misspelt signs.
    """

    def __init__(
        self,
        rules: SafetyRules,
        common_words: frozenset[str] = frozenset(),
        known: frozenset[str] = frozenset(),
        model: EmergencyModel | None = None,
    ) -> None:
        emergency = rules.emergency
        self.self_harm = _any(emergency.self_harm)
        self.overdose = _any(emergency.overdose) if emergency.overdose else None
        self.always = _any(emergency.always)
        signs = [*emergency.signs, *(sign for group in load_sign_groups() for sign in group.signs)]
        self.signs = re.compile(r"\b(?:" + "|".join(signs) + r")\b")
        self.vitals = Vitals()
        self.tense = load_tense()
        # The second opinion: a model trained on emergencies and calm questions.
        self.model = model if model is not None else load_model()
        self.fuzzy_signs = emergency.fuzzy_signs
        self.subjects = frozenset(emergency.subjects)
        self.now_verbs = frozenset(emergency.now_verbs)
        self.not_now = _any(emergency.not_now)
        self.now_phrases = _any(emergency.now_phrases) if emergency.now_phrases else None
        self.personal = _any(rules.personal_advice)
        self.personal_in_domain = (
            _any(rules.personal_advice_in_domain) if rules.personal_advice_in_domain else None
        )
        self.question_start = re.compile(
            r"^(what|whats|how|hows|can|could|is|isnt|are|does|do|did|will|would|should|why|when|which|who|where)\b"
        )
        self.common = common_words
        self.known = known

    def _sign_positions(self, tokens: list[str]) -> list[int]:
        joined = " ".join(tokens)
        positions = [joined[: m.start()].count(" ") for m in self.signs.finditer(joined)]
        for index, token in enumerate(tokens):
            unknown = len(token) >= 5 and token not in self.common and token not in self.known
            if unknown and process.extractOne(token, self.fuzzy_signs, scorer=fuzz.ratio, score_cutoff=85):
                positions.append(index)
        positions += self.vitals.positions(tokens)
        return sorted(set(positions))

    def _told_as_now(self, tokens: list[str], signs: list[int]) -> bool:
        """A subject, then a present verb, then the sign, each within a few words."""
        for index, token in enumerate(tokens):
            if token not in self.subjects:
                continue
            for verb_at in range(index + 1, min(index + 1 + _WINDOW, len(tokens))):
                if tokens[verb_at] in ".?!;":
                    break
                if tokens[verb_at] in self.now_verbs and any(
                    verb_at < s <= verb_at + _WINDOW + 2 and "." not in tokens[verb_at:s] for s in signs
                ):
                    return True
        return False

    def is_self_harm(self, normalized: str) -> bool:
        """Whether the message speaks of suicide or self-harm."""
        return bool(self.self_harm.search(normalized))

    def is_overdose(self, normalized: str) -> bool:
        """Whether the message tells of too much of a medicine or a poison taken."""
        return bool(self.overdose is not None and self.overdose.search(normalized))

    def reason(self, normalized: str) -> str | None:
        """Why the message is an emergency ("self_harm", "overdose", "symptoms", "model"), or None.

        The rules decide first. When they find nothing, the model may still call it urgent,
        unless the message is plainly a general question (a question about a possibility, or one
        with no person in it): recall first, since a false alarm costs one sentence.
        """
        if self.self_harm.search(normalized):
            return "self_harm"
        if self.is_overdose(normalized) and not self._general_question(normalized):
            return "overdose"
        if self._rules_say_emergency(normalized):
            return "symptoms"
        if (
            self.model.is_urgent(normalized)
            and not self._general_question(normalized)
            and not self._history(normalized)
        ):
            return "model"
        return None

    def _history(self, normalized: str) -> bool:
        """Every clause with a sign in it tells of the past ("he had a fever last year")."""
        with_signs = [c for c in re.split(r"[,.;!?]", normalized) if self._sign_positions(tokens_of(c))]
        return bool(with_signs) and all(self.tense.is_history(c) for c in with_signs)

    def _general_question(self, normalized: str) -> bool:
        """A question in form, about a possibility or about no one in particular."""
        # A question may come after a story ("my brother has hemophilia b ..., how long does that
        # last"), so every clause is checked for a question start.
        clauses = re.split(r"[,.;!?]| and | but | so ", normalized)
        question = normalized.rstrip().endswith("?") or any(
            self.question_start.match(clause.strip()) for clause in clauses
        )
        if not question:
            return False
        tokens = tokens_of(normalized)
        signs = self._sign_positions(tokens)
        if not signs:
            # A question with no sign of trouble in it is a general question.
            return True
        if self._told_as_now(tokens, signs):
            return False
        return bool(self.not_now.search(normalized)) or not any(t in self.subjects for t in tokens)

    def is_emergency(self, normalized: str) -> bool:
        """Whether the message may describe urgent trouble happening now."""
        return self.reason(normalized) is not None

    def _rules_say_emergency(self, normalized: str) -> bool:
        if self.always.search(normalized):
            return True
        tokens = tokens_of(normalized)
        signs = self._sign_positions(tokens)
        if not signs or self._history(normalized):
            return False
        if self._told_as_now(tokens, signs):
            return True
        if self.not_now.search(normalized):
            return False
        if self.now_phrases is not None and self.now_phrases.search(normalized):
            return True
        # A report about someone ("chest pain after my infusion") or a bare statement that is not
        # a question ("yellow eyes and dark urine after hemgenix") is treated as happening now.
        if len(tokens) > _SHORT_REPORT:
            # In a long story a sign may be history ("last year the fever came back").
            return False
        if any(token in self.subjects for token in tokens):
            return True
        return not (self.question_start.match(normalized) or normalized.rstrip().endswith("?"))

    def is_personal_advice(self, normalized: str, in_domain: bool = True) -> bool:
        """Whether the message asks for a decision or a dose for a particular person.

        Some phrasings ("should I take ...") are personal advice only about this domain;
        ``in_domain`` tells whether the message is.
        """
        if self.personal.search(normalized):
            return True
        return bool(
            in_domain and self.personal_in_domain is not None and self.personal_in_domain.search(normalized)
        )
