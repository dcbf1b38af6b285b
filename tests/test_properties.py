"""Property-based: any text a person can type gets a valid, safe reply."""

from __future__ import annotations

import re

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bot import Assistant, Reply

REMINDER = "talk to your healthcare provider"
SUBSTANTIVE = {
    "concept_definition", "concept_compare", "choosing_treatment", "cost_general", "clinical_trials",
    "list_products", "condition_treatments", "personal_advice",
}  # fmt: skip
MARKUP = re.compile(r"<[a-zA-Z/!][^>]*>|\*\*|__|\[[^\]]*\]\([^)]*\)|```")

words = st.sampled_from(
    ["kymriah", "zolgensma", "cost", "side", "effects", "my", "son", "fever", "what", "is", "gene", "therapy",
     "<b>", "**", "{{", "}}", "sickle", "cell", "how", "much", "car-t", "?", "🙂", "und", "qué", "DROP", "it"]
)  # fmt: skip
texts = st.one_of(
    st.text(max_size=300),
    st.lists(words, max_size=25).map(" ".join),
    st.text(alphabet=st.characters(codec="utf-8"), max_size=80),
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(text=texts)
def test_properties_reply_never_raises_and_is_valid(assistant: Assistant, text: str) -> None:
    reply = assistant.reply(text, session="property")
    assert isinstance(reply, Reply)
    Reply.model_validate(reply.model_dump())
    assert reply.text.strip()
    assert 0.0 <= reply.confidence <= 1.0
    if reply.intent in SUBSTANTIVE or (reply.intent.startswith("product_") and reply.products):
        assert REMINDER in reply.text
    assert not MARKUP.search(reply.text), reply.text
    assert "{{" not in reply.text and "{%" not in reply.text


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(text=st.text(max_size=200))
def test_properties_input_markup_is_never_echoed(assistant: Assistant, text: str) -> None:
    reply = assistant.reply(f"<script>{text}</script> **{text}**")
    assert "<script>" not in reply.text
