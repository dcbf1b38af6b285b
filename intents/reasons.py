"""Why an answer takes the shape it does: the reason codes the policy sets and the templates test."""

from __future__ import annotations

from enum import StrEnum

__all__ = ["Reason"]


class Reason(StrEnum):
    """Reason codes. ``tests/intents/test_policy.py`` checks every code a template tests is here."""

    NONE = ""
    # Out of scope, and why.
    EMPTY = "empty"
    NO_WORDS = "no_words"
    LANGUAGE = "language"
    OTHER_MEDICINE = "other_medicine"
    CONDITION_INFO = "condition_info"
    OFF_TOPIC = "off_topic"
    UNSURE = "unsure"
    UNKNOWN_TERM = "unknown_term"
    # Answered, but differently.
    UNKNOWN_CONDITION = "unknown_condition"
    CLASS = "class"
    # Asked back.
    DID_YOU_MEAN = "did_you_mean"
    WHICH_PRODUCT = "which_product"
    WHICH_LISTED = "which_listed"
    # Why a message is an emergency.
    SELF_HARM = "self_harm"
    OVERDOSE = "overdose"
    SYMPTOMS = "symptoms"
    MODEL = "model"
