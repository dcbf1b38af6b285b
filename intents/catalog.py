"""The intent catalog: which intents exist, their examples, their rules and their templates.

Everything here is data read from ``intents/data``; this module only validates
and indexes it. A pharmacist changes what the bot says by editing those files.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, TypeVar, get_args

from pydantic import Field, ValidationInfo, field_validator

from intents.reasons import Reason
from knowledge.datafile import DataModel, Problem, read_items, read_model
from knowledge.errors import DataError
from knowledge.schema import Aspect, CellSource, Kind

__all__ = ["DATA_DIR", "Catalog", "IntentSpec", "SafetyRules", "ScopeRules", "load_catalog"]

DATA_DIR = Path(__file__).parent / "data"

Needs = Literal["product", "topic", "condition", "domain", "nothing"]
M = TypeVar("M", bound=DataModel)


def _compile_all(patterns: list[str]) -> list[str]:
    for pattern in patterns:
        try:
            re.compile(pattern)
        except re.error as error:
            raise ValueError(f"bad pattern {pattern!r}: {error}") from None
    return patterns


class IntentSpec(DataModel):
    """One intent: what it means, what a message needs for it, how to follow up."""

    name: str = Field(pattern=r"^[a-z_]+$")
    description: str
    needs: Needs = "nothing"
    general: str | None = Field(default=None, description="Intent to use when no product is known.")
    safety: bool = False
    small_talk: bool = Field(default=False, description="Talk about the conversation, not the domain.")
    cues: list[str] = Field(default=[], description="Whole short messages that are this intent (regex).")
    min_confidence: float | None = Field(default=None, ge=0, le=1, description="Overrides scope.yaml's.")
    suggestions: list[str] = []
    aspect: Aspect | None = Field(
        default=None, description="The class fact (topic aspect) that answers this about a whole class."
    )
    question: str | None = Field(
        default=None, description="This question about one product `p`, offered under class answers."
    )
    for_condition: str | None = Field(
        default=None,
        description="Intent to use when a condition is named and no product ('cell therapy for burns').",
    )
    terms: bool = Field(
        default=False,
        description="Answers a term that a product field answers (a topic's product_fact: boxed "
        "warning, REMS) when it is asked of a product, whatever product question was heard.",
    )

    _check = field_validator("cues")(lambda cls, v: _compile_all(v))


class Texts(DataModel):
    """Texts the assistant says outside any answer template (``texts.yaml``)."""

    error: str = Field(min_length=1)
    what_is: str = Field(pattern=r"\{brand\}")
    kind_words: dict[Kind, str]
    source_words: dict[CellSource, str]
    months: list[str] = Field(min_length=12, max_length=12)
    other_conditions: str
    # A list's heading and what it is of: "FDA-approved {what} products for {where}".
    list_heading: str = Field(pattern=r"\{what\}")
    list_heading_for: str = Field(pattern=r"\{where\}")
    list_everything: str = Field(min_length=1)

    @field_validator("kind_words", "source_words")
    @classmethod
    def _every_value_named(cls, value: dict[str, str], info: ValidationInfo) -> dict[str, str]:
        wanted = set(get_args(Kind if info.field_name == "kind_words" else CellSource))
        missing = sorted(wanted - set(value))
        if missing:
            raise ValueError(f"no words for {', '.join(missing)}")
        return value


class PolicyRule(DataModel):
    """One rule of the decision policy (``policy.yaml``): when its conditions hold, its action."""

    name: str = Field(pattern=r"^[a-z_]+$")
    why: str = ""
    when: list[str] = Field(min_length=1)
    intent: str | None = None
    reason: Reason | None = None
    do: str | None = None
    go_on: bool = False


class Policy(DataModel):
    """The decision policy: its thresholds and its ordered rules."""

    thresholds: dict[str, float] = {}
    rules: list[PolicyRule] = Field(min_length=1)

    @field_validator("rules")
    @classmethod
    def _unique_names(cls, value: list[PolicyRule]) -> list[PolicyRule]:
        names = [rule.name for rule in value]
        doubled = sorted({n for n in names if names.count(n) > 1})
        if doubled:
            raise ValueError(f"rule names must be unique: {', '.join(doubled)}")
        return value


class Examples(DataModel):
    """A file of example questions for one intent."""

    intent: str
    examples: list[str] = Field(min_length=20)


class EmergencyRules(DataModel):
    """Phrases that mark a message as an emergency: always, or when told as happening now."""

    self_harm: list[str]
    overdose: list[str] = []
    always: list[str]
    signs: list[str]
    fuzzy_signs: list[str] = []
    subjects: list[str]
    now_verbs: list[str]
    not_now: list[str]
    sign_questions: list[str] = Field(
        default=[], description="Questions about which signs or readings matter; also counted in not_now."
    )
    now_phrases: list[str] = []

    _check = field_validator("self_harm", "overdose", "always", "now_phrases", "not_now", "sign_questions")(
        _compile_all
    )


class SafetyRules(DataModel):
    """The rules checked before classification (``safety.yaml``)."""

    emergency: EmergencyRules
    personal_advice: list[str]
    personal_advice_in_domain: list[str] = []

    _check = field_validator("personal_advice", "personal_advice_in_domain")(_compile_all)


class ScopeRules(DataModel):
    """What counts as on-topic without a named entity, and languages the bot recognises."""

    domain_words: list[str]
    follow_up_words: list[str]
    treatment_words: list[str] = []
    use_words: list[str] = []
    therapy_topics: list[str] = []
    follow_up_max_words: int = 6
    long_message_words: int = Field(default=40, description="Longer messages are read from their question.")
    ordinals: dict[str, int] = Field(default={}, description="Words that pick an item of a list (last = -1).")
    counts: dict[str, int] = Field(
        default={}, description="Numbers after 'first' or 'last' that pick several ('the first two')."
    )
    list_words: list[str] = Field(default=[], description="Words that refer to every item just listed.")
    other_words: list[str] = Field(
        default=[], description="Words that pick the listed items not just talked about."
    )
    name_fillers: list[str] = Field(
        default=[], description="Words that leave a follow-up a bare name ('and for Aucatzyl?')."
    )
    recency_words: dict[str, Literal["newest", "oldest"]] = Field(
        default={}, description="Words that pick the newest or the oldest listed product."
    )
    comparative_words: list[str] = Field(
        default=[], description="Words that make 'which one ...?' over several products a comparison."
    )
    negations: list[str] = Field(
        default=[], description="Words just before a condition that exclude it ('not blood cancer')."
    )
    when_words: list[str] = Field(default=[], description="Words that ask for a date ('when', 'what year').")
    question_words: list[str] = Field(
        default=["what", "how", "is"], description="Words a question opens with, question mark or not."
    )
    joining_words: list[str] = Field(
        default=["and"], description="Words that join a second question to the first ('... and how long?')."
    )
    age_words: list[str] = Field(
        default=[], description="Words of age: asked of a product's approval, they ask who can get it."
    )
    min_confidence: float = Field(ge=0, le=1)
    shorthand: dict[str, str] = {}
    max_unknown_share: float = Field(default=0.34, gt=0, le=1)
    languages: dict[str, list[str]] = {}


@dataclass
class Catalog:
    """Every intent with its examples, the safety, scope and policy rules, the assistant's own
    texts, and the template folder."""

    intents: dict[str, IntentSpec]
    examples: dict[str, list[str]]
    safety: SafetyRules
    scope: ScopeRules
    responses_dir: Path
    policy: Policy
    texts: Texts
    files: dict[str, str] = field(default_factory=dict)
    _shorthand: re.Pattern[str] | None = field(default=None, repr=False)

    def spec(self, name: str) -> IntentSpec:
        """The spec of one intent (KeyError if unknown)."""
        return self.intents[name]

    def expand(self, normalized: str) -> str:
        """Spell out texting shorthand ("wat r u" -> "what are you") in a normalized text."""
        if not self.scope.shorthand:
            return normalized
        if self._shorthand is None:
            words = sorted(self.scope.shorthand, key=len, reverse=True)
            self._shorthand = re.compile(
                r"(?<![\w.'])(" + "|".join(map(re.escape, words)) + r")(?![\w'])(?!\.\w)"
            )
        return self._shorthand.sub(lambda m: self.scope.shorthand[m.group(1)], normalized)


def collect_catalog(root: Path = DATA_DIR) -> tuple[Catalog | None, list[Problem]]:
    """Load the catalog under ``root``; return it (None if unusable) and every problem found."""
    problems: list[Problem] = []

    def parse(name: str, model: type[M]) -> M | None:
        item, errors = read_model(root / name, root, model)
        problems.extend(errors)
        return item

    specs = read_items(root / "intents.yaml", root, IntentSpec, key="name")
    problems += specs.problems
    intents = dict(specs.valid)
    # An intent that did not validate is reported once, in intents.yaml; every check that names
    # it elsewhere takes it as known.
    known = set(intents) | specs.broken
    safety = parse("safety.yaml", SafetyRules)
    policy = parse("policy.yaml", Policy)
    texts = parse("texts.yaml", Texts)
    scope = parse("scope.yaml", ScopeRules)
    examples: dict[str, list[str]] = {}
    files: dict[str, str] = {}
    unread: set[str] = set()  # example files already reported broken, named like their intents
    for path in sorted((root / "examples").glob("*.yaml")):
        name = path.relative_to(root).as_posix()
        item = parse(name, Examples)
        if item is None:
            unread.add(path.stem)
            continue
        if item.intent not in known:
            problems.append(Problem(name, f"intent: '{item.intent}' is not in intents.yaml"))
            continue
        examples[item.intent] = list(item.examples)
        files[item.intent] = name
    responses = root / "responses"
    problems += _intent_problems(intents, set(examples) | unread, responses, known)
    problems += _policy_problems(policy, known)
    problems += _doubled_examples(examples, files)
    if safety is None or scope is None or policy is None or texts is None or not intents:
        return None, problems
    catalog = Catalog(intents, examples, safety, scope, responses, policy, texts, files)
    return catalog, problems


def _intent_problems(
    intents: dict[str, IntentSpec], with_examples: set[str], responses: Path, known: set[str]
) -> list[Problem]:
    """Each intent has a template and examples, and names only known intents.

    ``with_examples`` also holds intents whose examples file is broken (reported already).
    """
    problems = []
    for spec in intents.values():
        if not (responses / f"{spec.name}.j2").exists():
            problems.append(Problem("responses", f"{spec.name}.j2: no answer template"))
        for key in ("general", "for_condition"):
            target = getattr(spec, key)
            if target and target not in known:
                problems.append(Problem("intents.yaml", f"{spec.name}.{key}: unknown intent"))
        if spec.name not in with_examples:
            problems.append(Problem("examples", f"{spec.name}.yaml: no examples"))
    return problems


def _policy_problems(policy: Policy | None, known: set[str]) -> list[Problem]:
    """The policy's rules name only known intents (its condition and step names are bound later)."""
    problems = []
    for rule in policy.rules if policy is not None else []:
        if rule.intent and rule.intent not in known:
            problems.append(Problem("policy.yaml", f"rules.{rule.name}.intent: unknown intent"))
        for condition in rule.when:
            kind, _, target = condition.removeprefix("not ").partition(":")
            if kind == "is" and target not in known:
                problems.append(Problem("policy.yaml", f"rules.{rule.name}.when: unknown intent {target}"))
    return problems


def _doubled_examples(examples: dict[str, list[str]], files: dict[str, str]) -> list[Problem]:
    """An example under two intents teaches the classifier both: a warning."""
    problems = []
    seen: dict[str, str] = {}
    for intent, texts in examples.items():
        for text in texts:
            key = " ".join(text.lower().split())
            if key in seen and seen[key] != intent:
                problems.append(
                    Problem(files[intent], f"example '{text}' is also an example of {seen[key]}", "warning")
                )
            seen.setdefault(key, intent)
    return problems


def load_catalog(root: Path = DATA_DIR) -> Catalog:
    """Load and validate the catalog; raise DataError naming every broken file and field."""
    catalog, problems = collect_catalog(root)
    errors = [str(p) for p in problems if p.severity == "error"]
    if errors or catalog is None:
        raise DataError(errors or ["intents.yaml: (top): the catalog could not be loaded"])
    return catalog
