"""What is worked out about one message on its way from text to answer."""

from __future__ import annotations

from dataclasses import dataclass, field

from intents.matcher import Prediction
from knowledge.resolver import Resolution

__all__ = ["PRONOUNS", "Turn"]

#: Words that point back to something said before ("how much is it?", "that one").
PRONOUNS = frozenset({"it", "its", "this", "that", "they", "them", "one", "these", "those", "both"})


@dataclass
class Turn:
    """Everything worked out about one message before rendering.

    The stages fill it in order: the text and its names (resolution), the classifier's reading
    (prediction), what the conversation adds (from_context, choices), and the policy's decision
    (intent, reason).
    """

    text: str
    normalized: str
    resolution: Resolution | None = None
    prediction: Prediction | None = None
    intent: str = "out_of_scope"
    confidence: float = 0.0
    products: list[str] = field(default_factory=list)
    conditions: list[str] = field(default_factory=list)
    groups: list[str] = field(default_factory=list)
    topics: list[str] = field(default_factory=list)
    others: list[str] = field(default_factory=list)
    did_you_mean: list[str] = field(default_factory=list)
    reason: str = ""
    language: str | None = None
    truncated: bool = False
    from_context: bool = False
    domain_word: bool = False
    cls: str | None = None
    listed: list[str] = field(default_factory=list)
    aspect: str | None = None
    choices: list[str] = field(default_factory=list)
    rule: str = ""
    also: list[str] = field(default_factory=list)
