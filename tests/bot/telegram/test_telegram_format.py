"""Rendering a plain reply as Telegram HTML, and splitting long replies."""

from __future__ import annotations

import html
import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bot.telegram.format import MESSAGE_LIMIT, brand_pattern, render_html, shorten, split_text, utf16_len

BRANDS = brand_pattern(["Kymriah", "Yescarta", "HPC, Cord Blood", "MACI"])


@pytest.mark.parametrize(
    ("plain", "expected"),
    [
        ("Kymriah is a CAR-T therapy.", "<b>Kymriah</b> is a CAR-T therapy."),
        ("Kymriah's price", "<b>Kymriah</b>'s price"),
        ("Kymriahs and maci stay plain", "Kymriahs and maci stay plain"),
        ("HPC, Cord Blood is donated.", "<b>HPC, Cord Blood</b> is donated."),
        ("Costs <$1M & more > less", "Costs &lt;$1M &amp; more &gt; less"),
        ("<b>not a tag</b>", "&lt;b&gt;not a tag&lt;/b&gt;"),
        ("Options:\n- Kymriah\n- Yescarta", "Options:\n• <b>Kymriah</b>\n• <b>Yescarta</b>"),
        ("a - b stays", "a - b stays"),
    ],
)
def test_telegram_format_render_escapes_bolds_and_lists(plain: str, expected: str) -> None:
    assert render_html(plain, BRANDS) == expected


def test_telegram_format_render_without_brands_only_escapes() -> None:
    assert render_html("Kymriah & co", None) == "Kymriah &amp; co"
    assert brand_pattern([]) is None


def test_telegram_format_short_text_is_one_chunk() -> None:
    assert split_text("One.\n\nTwo.") == ["One.\n\nTwo."]


def test_telegram_format_splits_at_paragraphs_in_order() -> None:
    paragraphs = [f"Paragraph {i}. " + "word " * 300 for i in range(12)]
    text = "\n\n".join(p.strip() for p in paragraphs)
    chunks = split_text(text)
    assert len(chunks) > 1
    assert all(utf16_len(chunk) <= MESSAGE_LIMIT for chunk in chunks)
    assert "\n\n".join(chunks) == text  # every cut fell on a paragraph boundary
    assert [int(n) for n in re.findall(r"Paragraph (\d+)", "".join(chunks))] == list(range(12))


@pytest.mark.parametrize(
    ("text", "limit", "expected"),
    [
        ("aaaa\nbbbb\ncccc", 9, ["aaaa\nbbbb", "cccc"]),
        ("One two. Three four. Five six.", 20, ["One two. Three four.", "Five six."]),
        ("alpha beta gamma", 10, ["alpha beta", "gamma"]),
        ("abcdefghij", 4, ["abcd", "efgh", "ij"]),
        ("😀😀😀", 4, ["😀😀", "😀"]),  # an emoji is two UTF-16 units
    ],
)
def test_telegram_format_splits_lines_sentences_words(text: str, limit: int, expected: list[str]) -> None:
    assert split_text(text, limit) == expected


@given(st.text(alphabet=st.sampled_from("ab .\n😀é-"), max_size=400), st.integers(min_value=2, max_value=60))
def test_telegram_format_split_keeps_every_character_within_the_limit(text: str, limit: int) -> None:
    chunks = split_text(text, limit)
    assert all(0 < utf16_len(chunk) <= limit for chunk in chunks)
    assert re.sub(r"\s", "", "".join(chunks)) == re.sub(r"\s", "", text)


def test_telegram_format_chunks_render_to_balanced_html() -> None:
    text = "\n\n".join(["Kymriah & Yescarta <compared>: " + "x " * 900] * 6)
    for chunk in split_text(text):
        rendered = render_html(chunk, BRANDS)
        assert rendered.count("<b>") == rendered.count("</b>")
        assert html.unescape(re.sub(r"</?b>", "", rendered)) == chunk


def test_telegram_format_shorten_keeps_first_and_last_paragraphs() -> None:
    text = "\n\n".join(["First part. " * 5, "Middle. " * 80, "Talk to your healthcare provider."])
    short = shorten(text, 200)
    assert short.startswith("First part.")
    assert short.endswith("Talk to your healthcare provider.")
    assert "Middle." not in short
    assert shorten("Just one paragraph.", 5) == "Just one paragraph."
