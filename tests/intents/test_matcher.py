"""The intent classifier's disk cache (intents.matcher): read back, and rebuilt when broken."""

from __future__ import annotations

import copy
import logging
from pathlib import Path

import numpy as np
import pytest

from bot import Assistant
from intents import matcher as matcher_module


@pytest.mark.parametrize("damaged", [matcher_module.MODEL, matcher_module.VOCABULARY])
def test_classifier_survives_a_corrupt_entry(
    assistant: Assistant, empty_cache: Path, caplog: pytest.LogCaptureFixture, damaged: str
) -> None:
    matcher = copy.copy(assistant.matcher)
    matcher._load_or_train(assistant.resolver)
    (entry,) = (empty_cache / "intents").iterdir()
    (entry / damaged).write_bytes(b"PK\x03\x04 cut short")
    with caplog.at_level(logging.WARNING, logger="knowledge.cache"):
        model = matcher._load_or_train(assistant.resolver)
    assert "intents" in caplog.text
    assert np.array_equal(model.weights, assistant.matcher.model.weights)
    assert np.array_equal(model.bias, assistant.matcher.model.bias)
    assert matcher.vocabulary == assistant.matcher.vocabulary
    assert matcher.temperature == assistant.matcher.temperature
    # Written again whole: the next start reads it.
    again = matcher._load_or_train(assistant.resolver)
    assert np.array_equal(again.weights, model.weights)


def test_classifier_scores_are_remembered_as_copies(assistant: Assistant) -> None:
    matcher = assistant.matcher
    first = matcher.scores("how much does xproductx cost")
    first["cost"] = -1.0
    assert matcher.scores("how much does xproductx cost") != first
