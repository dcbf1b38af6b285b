"""The checks every message passes before classification: emergencies, then personal advice.

The rules themselves are data (``intents/data/safety.yaml``); this module only
applies them. An emergency needs a sign of trouble told as happening now:
"my son has a high fever" is one, "can Kymriah cause a fever?" is not.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Sequence
from typing import Any

from rapidfuzz import fuzz, process

from intents.catalog import SafetyRules
from intents.emergency import EmergencyModel, Vitals, calibration, load_model, load_sign_groups, load_tense

__all__ = ["SafetyScreen", "tokens_of"]

# Digits and letters apart, so that "38.9c" reads as a number and its unit.
_WORD = re.compile(r"[a-z]+|\d+|°|[.?!,;]")
_WINDOW = 6
_CLAUSE_MARKS = frozenset({",", ";"})
_CONDITIONAL = frozenset({"if", "when", "whenever", "unless", "whether"})
# Words that open a question inside a sentence ("my question is does ...").
_ASKING = frozenset({"does", "do", "did", "can", "could", "would", "will", "whether", "why", "how"})
_WH = frozenset({"what", "whats", "how", "which", "why"})
_QUESTION_OPENING = 5
# Contractions that are a subject and "is" in one word.
_CLAUSE_OPENERS = frozenset({",", ";", ".", "and", "so", "but", "now", "ok", "hi", "hey"})
_SUBJECT_IS = frozenset({"hes", "shes", "im", "theyre"})
_SENTENCE = re.compile(r"(?<=[.?!;])\s+|\n+")


def _sentences(normalized: str) -> list[str]:
    """The sentences of a normalized text, each with its closing mark."""
    return [s for s in _SENTENCE.split(normalized) if s.strip()]


def tokens_of(normalized: str) -> list[str]:
    """Words and sentence marks of an already normalized text."""
    return _WORD.findall(normalized)


def _any(patterns: list[str]) -> re.Pattern[str]:
    alternatives = [a for p in patterns for a in (_alternatives(p) or [""])]
    if all(a.startswith("\\b") and a[2:3] not in ("", "?", "*", "+", "{") for a in alternatives):
        # Every rule begins at a word: testing that once, and not in each of some twenty rules at
        # every character, is most of the search, and finds the same matches.
        return re.compile(r"\b(?:" + "|".join(f"(?:{a[2:]})" for a in alternatives) + ")")
    return re.compile("|".join(f"(?:{p})" for p in patterns))


class _WordRules:
    """Rules that each begin at a word, searched only at the words that can begin one of them.

    ``search`` finds a match where ``_any(patterns).search`` does, tried at each word with only
    the rules that can begin with its first letter, in their order (the rules are split by that
    letter once, as the sign patterns are). When a rule cannot be read, all are searched whole.
    """

    def __init__(self, patterns: list[str]) -> None:
        self.whole = _any(patterns)
        self._openings: re.Pattern[str] | None = None
        self._by_first: dict[str, re.Pattern[str]] = {}
        alternatives = [a for p in patterns for a in (_alternatives(p) or [""])]
        if not self.whole.pattern.startswith("\\b(?:") or any(_CONTEXTUAL.search(p) for p in patterns):
            return
        rests = [a[2:] for a in alternatives]
        firsts = [_first_chars(rest) for rest in rests]
        if any(first is None for first in firsts):
            return
        grouped: dict[str, list[str]] = {}
        for rest, first in zip(rests, firsts, strict=True):
            for char in first or ():
                grouped.setdefault(char, []).append(rest)
        firsts_class = "".join(re.escape(c) for c in sorted(grouped))
        self._openings = re.compile(r"\b(?=[" + firsts_class + "])")
        self._by_first = {
            c: re.compile(r"\b(?:" + "|".join(f"(?:{r})" for r in group) + ")")
            for c, group in grouped.items()
        }

    def search(self, text: str) -> re.Match[str] | None:
        """The leftmost match, as the whole alternation finds it (its groups aside), or None."""
        if self._openings is None:
            return self.whole.search(text)
        for opening in self._openings.finditer(text):
            at = opening.start()
            match = self._by_first[text[at]].match(text, at)
            if match is not None:
                return match
        return None


def _alternatives(pattern: str) -> list[str] | None:
    """The pattern split at each ``|`` outside groups and classes; None if it cannot be read."""
    if "(?#" in pattern:
        return None
    parts: list[str] = []
    depth = start = at = 0
    while at < len(pattern):
        char = pattern[at]
        if char == "\\":
            at += 2
            continue
        if char == "[":
            at += 1 + pattern.startswith("^", at + 1)
            at += pattern.startswith("]", at)
            while at < len(pattern) and pattern[at] != "]":
                at += 2 if pattern[at] == "\\" else 1
        elif char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
            if depth < 0:
                return None
        elif char == "|" and depth == 0:
            parts.append(pattern[start:at])
            start = at + 1
        at += 1
    if depth != 0 or at != len(pattern):
        return None
    parts.append(pattern[start:])
    return parts


# Constructs whose meaning depends on the patterns around them (group numbers, references):
# a pattern with one cannot be matched apart from the others.
_CONTEXTUAL = re.compile(r"\\[1-9]|\(\?P=|\(\?\(")
_ZERO_WIDTH = frozenset("^$")
_ZERO_WIDTH_ESCAPES = frozenset("bBAZ")
_CLASS_ESCAPES = frozenset("wWdDsS")
_QUANTIFIER = re.compile(r"\{(\d*)(?:,(\d*))?\}")


class _Unread(Exception):
    """A construct the first-character reading does not know."""


def _first_chars(pattern: str) -> frozenset[str] | None:
    """Every character a match of ``pattern`` can begin with; None when that is not sure.

    Letters, escaped marks, groups ``(...)`` and ``(?:...)``, alternation, classes, ``\b``
    and quantifiers are read; anything else, or a pattern that may match nothing, gives None.
    """
    try:
        found, nullable, end = _first_of_alternatives(pattern, 0)
    except _Unread:
        return None
    if found is None or nullable or end != len(pattern):
        return None
    return found


def _first_of_alternatives(pattern: str, at: int) -> tuple[frozenset[str] | None, bool, int]:
    """First characters of ``a|b|...`` from ``at`` to a closing parenthesis or the end, whether
    it may match nothing, and where it stops; None for the characters when they are not sure."""
    chars: set[str] | None = set()
    nullable = False
    while True:
        found, empty, at = _first_of_sequence(pattern, at)
        chars = None if chars is None or found is None else chars | found
        nullable = nullable or empty
        if at < len(pattern) and pattern[at] == "|":
            at += 1
            continue
        return (None if chars is None else frozenset(chars)), nullable, at


def _first_of_sequence(pattern: str, at: int) -> tuple[frozenset[str] | None, bool, int]:
    """As :func:`_first_of_alternatives`, for the items up to a ``|`` or a closing parenthesis."""
    chars: set[str] | None = set()
    nullable = True  # every item so far may match nothing, so the next one may begin the match
    while at < len(pattern) and pattern[at] not in "|)":
        found, empty, at = _first_of_item(pattern, at)
        repeat = _QUANTIFIER.match(pattern, at)
        quantified = True
        if at < len(pattern) and pattern[at] in "?*+":
            empty = empty or pattern[at] != "+"
            at += 1
        elif repeat is not None:
            empty = empty or not repeat.group(1) or int(repeat.group(1)) == 0
            at = repeat.end()
        elif pattern.startswith("{", at):
            raise _Unread(pattern)
        else:
            quantified = False
        if quantified and pattern.startswith(("?", "+"), at):
            at += 1  # lazy or possessive: it begins where the greedy one does
        if nullable:
            chars = None if chars is None or found is None else chars | found
        nullable = nullable and empty
    return (None if chars is None else frozenset(chars)), nullable, at


def _first_of_group(pattern: str, at: int) -> tuple[frozenset[str] | None, bool, int]:
    """As :func:`_first_of_item`, for a group that opens at ``at``."""
    look = next((len(o) for o in ("(?=", "(?!", "(?<=", "(?<!") if pattern.startswith(o, at)), 0)
    if pattern.startswith("(?", at) and not look and not pattern.startswith("(?:", at):
        raise _Unread(pattern)
    found, empty, at = _first_of_alternatives(
        pattern, at + (look or (3 if pattern.startswith("(?:", at) else 1))
    )
    if at >= len(pattern) or pattern[at] != ")":
        raise _Unread(pattern)
    if look:  # a lookaround matches no character of its own
        return frozenset(), True, at + 1
    return found, empty, at + 1


def _first_of_item(pattern: str, at: int) -> tuple[frozenset[str] | None, bool, int]:
    """One item's first characters (None: any), whether it may match nothing, and its end."""
    char = pattern[at]
    if char == "(":
        return _first_of_group(pattern, at)
    if char == "[":
        close = at + 1
        close += pattern.startswith("^", close)
        close += pattern.startswith("]", close)
        while close < len(pattern) and pattern[close] != "]":
            close += 2 if pattern[close] == "\\" else 1
        if close >= len(pattern):
            raise _Unread(pattern)
        return None, False, close + 1
    if char == "\\":
        if at + 1 >= len(pattern):
            raise _Unread(pattern)
        escaped = pattern[at + 1]
        if escaped in _ZERO_WIDTH_ESCAPES:
            return frozenset(), True, at + 2
        if escaped in _CLASS_ESCAPES:
            return None, False, at + 2
        if escaped.isascii() and escaped.isalnum():
            raise _Unread(pattern)  # \n, \x41, \N{...}: not read here
        return frozenset(escaped), False, at + 2
    if char in _ZERO_WIDTH:
        return frozenset(), True, at + 1
    if char == ".":
        return None, False, at + 1
    if char in "*+?{":
        raise _Unread(pattern)
    return frozenset(char), False, at + 1


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
        extra_urgent: Sequence[str] = (),
        extra_calm: Sequence[str] = (),
    ) -> None:
        emergency = rules.emergency
        self.self_harm = _WordRules(emergency.self_harm)
        self.overdose = _any(emergency.overdose) if emergency.overdose else None
        self.always = _WordRules(emergency.always)
        signs = [*emergency.signs, *(sign for group in load_sign_groups() for sign in group.signs)]
        self.signs = re.compile(r"\b(?:" + "|".join(signs) + r")\b")
        self._signs_by_first = self._dispatch(signs)
        self.vitals = Vitals()
        self.tense = load_tense()
        self.figurative = _any(self.tense.figurative) if self.tense.figurative else None
        self.fuzzy_signs = emergency.fuzzy_signs
        self.subjects = frozenset(emergency.subjects)
        self.now_verbs = frozenset(emergency.now_verbs)
        self.not_now = _any([*emergency.not_now, *emergency.sign_questions])
        self.sign_questions = _any(emergency.sign_questions) if emergency.sign_questions else None
        self.now_phrases = _any(emergency.now_phrases) if emergency.now_phrases else None
        self.personal = _WordRules(rules.personal_advice)
        self.personal_in_domain = (
            _any(rules.personal_advice_in_domain) if rules.personal_advice_in_domain else None
        )
        self.question_start = re.compile(
            r"^(what|whats|how|hows|can|could|is|isnt|are|does|do|did|will|would|should|why|when|which|who|where)\b"
        )
        self.common = common_words
        self.known = known
        # Whether a word is a misspelt sign depends on the word alone, and words repeat from
        # message to message: rapidfuzz is asked once per word, not once per message.
        self._misspelt: Callable[[str], bool] = functools.lru_cache(maxsize=8192)(self._misspelt_sign)
        self._extra = (tuple(extra_urgent), tuple(extra_calm))
        # The second opinion, last: its threshold is set on what the rules above miss.
        self.model = model if model is not None else load_model(extra_urgent, extra_calm, self._rules_catch)

    def calibration(self) -> dict[str, Any]:
        """The emergency model's threshold for these rules and examples, worked out from scratch."""
        return calibration(*self._extra, self._rules_catch)

    @staticmethod
    def _dispatch(signs: list[str]) -> tuple[re.Pattern[str], dict[str, re.Pattern[str]]] | None:
        """The sign patterns split by the character a match begins with, or None if not sure.

        Trying some 170 alternatives at every word of every sentence was most of the screen's
        time; at a word only those that can begin with its first letter can match, and kept in
        their order they match exactly what the whole alternation does there.
        """
        firsts = [_first_chars(sign) for sign in signs]
        if any(f is None or _CONTEXTUAL.search(s) for f, s in zip(firsts, signs, strict=True)):
            return None
        by_first: dict[str, list[str]] = {}
        for sign, first in zip(signs, firsts, strict=True):
            for char in first or ():
                by_first.setdefault(char, []).append(sign)
        openings = re.compile(r"\b(?=[" + "".join(re.escape(c) for c in sorted(by_first)) + "])")
        return openings, {c: re.compile(r"\b(?:" + "|".join(group) + r")\b") for c, group in by_first.items()}

    def _sign_starts(self, joined: str) -> list[int]:
        """Where the matches of ``self.signs`` in ``joined`` begin, as its ``finditer`` finds them."""
        if self._signs_by_first is None:
            return [m.start() for m in self.signs.finditer(joined)]
        openings, by_first = self._signs_by_first
        starts: list[int] = []
        end = 0  # no pattern matches nothing, so each match ends past its start
        for opening in openings.finditer(joined):
            at = opening.start()
            if at < end:
                continue
            match = by_first[joined[at]].match(joined, at)
            if match is not None:
                starts.append(at)
                end = match.end()
        return starts

    def _sign_positions(self, tokens: list[str]) -> list[int]:
        joined = " ".join(tokens)
        positions = [joined[:start].count(" ") for start in self._sign_starts(joined)]
        positions += [
            index for index, token in enumerate(tokens) if len(token) >= 5 and self._misspelt(token)
        ]
        positions += self.vitals.positions(tokens)
        return sorted(set(positions))

    def _misspelt_sign(self, token: str) -> bool:
        unknown = token not in self.common and token not in self.known
        return unknown and bool(
            process.extractOne(token, self.fuzzy_signs, scorer=fuzz.ratio, score_cutoff=85)
        )

    def _told_as_now(self, tokens: list[str], signs: list[int]) -> bool:
        """A subject, then a present verb, then the sign, each within a few words.

        A sign inside a question the person asks ("my question is does the fever mean ...") is
        not told.
        """
        for index, token in enumerate(tokens):
            if token not in self.subjects:
                continue
            for verb_at in range(index + 1, min(index + 1 + _WINDOW, len(tokens))):
                if tokens[verb_at] in ".?!;":
                    break
                if tokens[verb_at] in self.now_verbs and any(
                    verb_at < s <= verb_at + _WINDOW + 2
                    and "." not in tokens[verb_at:s]
                    and not _ASKING.intersection(tokens[verb_at + 1 : s])
                    for s in signs
                ):
                    return True
        return False

    def _has_person(self, tokens: list[str]) -> bool:
        """Someone the message is about, not only the asker musing ("i guess my question is")."""
        asking = self.tense.asking_words
        for index, token in enumerate(tokens):
            if token not in self.subjects or tokens[index + 1 : index + 2] == []:
                continue
            # "were" is "we're" only where a clause begins ("the cells were working" is not).
            if token == "were" and index and tokens[index - 1] not in _CLAUSE_OPENERS:
                continue
            if tokens[index + 1] not in asking:
                return True
        return False

    def is_self_harm(self, normalized: str) -> bool:
        """Whether the message speaks of suicide or self-harm, figures of speech aside."""
        # Figures of speech are taken out only where a rule matched: most messages match none.
        return bool(self.self_harm.search(normalized)) and bool(
            self.self_harm.search(self._literal(normalized))
        )

    def _literal(self, normalized: str) -> str:
        """The text without its figures of speech ("this paperwork is killing me")."""
        return self.figurative.sub(" ", normalized) if self.figurative is not None else normalized

    def is_overdose(self, normalized: str) -> bool:
        """Whether the message tells of too much of a medicine or a poison taken."""
        return bool(self.overdose is not None and self.overdose.search(normalized))

    def reason(self, normalized: str) -> str | None:
        """Why the message is an emergency ("self_harm", "overdose", "symptoms", "model"), or None.

        The rules decide first. When they find nothing, the model may still call it urgent,
        unless the message is plainly calm (history, a normal reading, or a question that tells of
        no one's trouble now): recall first, since a false alarm costs one sentence.
        """
        if self.is_self_harm(normalized):
            return "self_harm"
        if self.is_overdose(normalized) and any(t in self.subjects for t in tokens_of(normalized)):
            return "overdose"
        if self._rules_say_emergency(normalized):
            return "symptoms"
        if self._model_alarm(normalized) and not self._calm(normalized):
            return "model"
        return None

    def _model_alarm(self, normalized: str) -> bool:
        """The model's call; in a long story, only a clear one.

        A story's background (a diagnosis, missed school, a long drive to the clinic) pushes the
        model up with no sign of trouble now, which the rules would have found.
        """
        if len(normalized.split()) > self.tense.story_words:
            return self.model.reaches(normalized, max(self.model.threshold, self.tense.story_probability))
        return self.model.reaches(normalized, self.model.threshold)

    def _rules_catch(self, text: str) -> bool:
        return bool(self.is_self_harm(text) or self.is_overdose(text) or self._rules_say_emergency(text))

    def is_emergency(self, normalized: str) -> bool:
        """Whether the message may describe urgent trouble happening now."""
        return self.reason(normalized) is not None

    def _rules_say_emergency(self, normalized: str) -> bool:
        """Some sentence tells of a sign happening now, whatever the other sentences ask."""
        if self.always.search(normalized) is not None and any(
            not self._in_history(normalized, m.start()) for m in self.always.whole.finditer(normalized)
        ):
            return True
        sentences = _sentences(normalized)
        # Whether the story is told in the past matters only for its signs, and most have none.
        if not any(self._sign_positions(tokens_of(sentence)) for sentence in sentences):
            return False
        past = self._told_in_past(normalized)
        return any(self._sentence_now(sentence, past) for sentence in sentences)

    def _in_history(self, normalized: str, at: int) -> bool:
        """Whether the clause around a position is told as history ("i passed out twice this year"):
        urgent signs are urgent however phrased, but not as a count of past episodes."""
        start = max(normalized.rfind(mark, 0, at) for mark in (".", "?", "!", ";", ",")) + 1
        ends = [i for i in (normalized.find(mark, at) for mark in (".", "?", "!", ";", ",")) if i >= 0]
        return self.tense.is_history(normalized[start : min(ends, default=len(normalized))])

    def _told_in_past(self, normalized: str) -> bool:
        return self.tense.anchored(normalized) or self.tense.closed(normalized)

    def _sentence_now(self, sentence: str, past: bool) -> bool:
        tokens, signs = self._live_signs(sentence, past)
        if not signs:
            return False
        if self._told_as_now(tokens, signs):
            return True
        question = self._is_question(sentence)
        person = self._has_person(tokens)
        # A reading past its limit is told, not asked about, unless the question is about no one.
        if set(self.vitals.positions(tokens)) & set(signs) and (person or not question):
            return True
        asked = self.not_now.search(sentence)
        told_now = self.now_phrases is not None and self.now_phrases.search(sentence)
        if asked and told_now and person and len(tokens_of(sentence[: asked.start()])) > max(signs):
            # "tonight he tried to sign his name and it was just scribbles, is that normal or should
            # we wait?": the question comes after a report of tonight, and asks about it.
            return True
        if asked:
            return False
        if told_now:
            return True
        # A report about someone ("chest pain after my infusion") or a bare statement that is not
        # a question ("yellow eyes and dark urine after hemgenix") is taken as happening now.
        return person or not question

    def _live_signs(self, sentence: str, past: bool) -> tuple[list[str], list[int]]:
        """The sentence's tokens, and its signs that are neither conditional nor history."""
        tokens = tokens_of(sentence)
        live = []
        figurative = self._figurative_positions(tokens)
        for at in self._sign_positions(tokens):
            if at in figurative:
                continue
            start = max((i + 1 for i in range(at) if tokens[i] in _CLAUSE_MARKS), default=0)
            end = next((i for i in range(at, len(tokens)) if tokens[i] in _CLAUSE_MARKS), len(tokens))
            # "call if over 38", "wont tell us if hes confused": a sign after if/when is not a report.
            if any(t in _CONDITIONAL for t in tokens[start:at]) or "in case" in " ".join(tokens[start:at]):
                continue
            clause = " ".join(tokens[start:end])
            if self.tense.is_history(clause) or (past and self._past_told(tokens, start, at, clause)):
                continue
            live.append(at)
        return tokens, live

    def _figurative_positions(self, tokens: list[str]) -> set[int]:
        """Token positions inside a phrase that uses a sign word of the asker's understanding."""
        if self.figurative is None:
            return set()
        joined = " ".join(tokens)
        return {
            joined[:at].count(" ")
            for match in self.figurative.finditer(joined)
            for at in range(match.start(), match.end())
            if at == 0 or joined[at - 1] == " "
        }

    def _past_told(self, tokens: list[str], start: int, at: int, clause: str) -> bool:
        """A past verb just before the sign and no word in its clause that says it is now."""
        if any(re.search(p, clause) for p in self.tense.now):
            return False
        return any(t in self.tense.past_verbs for t in tokens[max(start, at - _WINDOW) : at + 1])

    def _is_question(self, sentence: str) -> bool:
        """A question in form: a question mark, a request for facts, or a question word opening a clause."""
        if "?" in sentence or self.tense.asks_for_information(sentence):
            return True
        clauses = re.split(r"[,.;!]| and | but | so ", sentence)
        if any(self.question_start.match(clause.strip()) for clause in clauses):
            return True
        # "after car t what should we watch for": a question word after a short opening.
        return any(t in _WH for t in tokens_of(sentence)[:_QUESTION_OPENING])

    def _reports_now(self, tokens: list[str]) -> bool:
        """Someone is said to be or do something now ("she looks pale", "hes sleeping more")."""
        present = self.tense.present_verbs
        return any(
            token in self.subjects and any(t in present for t in tokens[index + 1 : index + 3])
            for index, token in enumerate(tokens)
        ) or any(t in _SUBJECT_IS for t in tokens)

    def _history(self, normalized: str) -> bool:
        """The message tells of the past and no sign in it is told as now ("he had a fever in 2019")."""
        if not self._told_in_past(normalized):
            return False
        if self.tense.anchored(normalized) and self.tense.closed(normalized):
            return not any(self._sentence_now(s, True) for s in _sentences(normalized))
        signs = self._sign_positions(tokens_of(normalized))
        return bool(signs) and not any(self._live_signs(s, True)[1] for s in _sentences(normalized))

    def _calm(self, normalized: str) -> bool:
        """Plainly not a report of trouble now: history, a normal reading, or a general question."""
        tokens = tokens_of(normalized)
        if self.vitals.normal_temperature(tokens) and not self.vitals.positions(tokens):
            return True
        if self._history(normalized):
            return True
        sentences = _sentences(normalized)
        if not any(self._is_question(s) for s in sentences):
            return False
        past = self._told_in_past(normalized)
        live = [found for found in (self._live_signs(s, past) for s in sentences) if found[1]]
        if not live:
            # A question that tells of no one's trouble now, or only of plans, is a general question.
            return not self._reports_now(tokens) or self.tense.ahead(normalized)
        if any(self._told_as_now(sentence_tokens, signs) for sentence_tokens, signs in live):
            return False
        return bool(self.not_now.search(normalized)) or not self._has_person(tokens)

    def asks_about_signs(self, normalized: str) -> bool:
        """Whether the message asks which signs or readings matter ("what fever should I watch for?")."""
        return self.sign_questions is not None and bool(self.sign_questions.search(normalized))

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
