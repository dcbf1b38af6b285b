"""Issue #9 in Telegram: a "Sources" button under every answer with sources, and /whatsnew.

Each test runs with the chat state in memory and in a real redis-server, as workers keep it.
"""

from __future__ import annotations

import html
import re
from collections.abc import Callable

import pytest

from bot import Assistant
from bot.telegram.texts import human_date
from tests.auxil.fake_bot_api import Call, FakeBotAPI
from tests.bot.telegram.test_telegram import TEXTS, answer_text, plain

SOURCES_KEY = re.compile(r"r:[0-9A-Za-z_-]{12}")


def sources_button(message: Call) -> str | None:
    """The callback data of the message's "Sources" button, if it has one."""
    found = [data for label, data in message.buttons if label == TEXTS.sources.button]
    assert len(found) <= 1, "one Sources button at most"
    return found[0] if found else None


def links(message: Call) -> list[str]:
    return [html.unescape(url) for url in re.findall(r'<a href="([^"]+)">', message.text)]


@pytest.mark.usefixtures("sources_bot")
def test_telegram_sources_button_shows_the_answers_sources_as_links(
    fake_api: FakeBotAPI, new_chat: Callable[[], int], assistant: Assistant
) -> None:
    reply = assistant.reply("what is zolgensma?")
    assert reply.sources and reply.reviewed, "a product answer states sourced facts"
    chat = new_chat()
    fake_api.send(chat, "what is zolgensma?")
    (overview,) = fake_api.wait_messages(chat, 1)
    data = sources_button(overview)
    assert data is not None and SOURCES_KEY.fullmatch(data)
    assert overview.buttons[-1] == (TEXTS.sources.button, data)  # under the suggestions

    query_id = fake_api.press(chat, data)
    fake_api.wait_call("answerCallbackQuery", callback_query_id=query_id)
    shown = fake_api.wait_messages(chat, 2)[1]
    assert links(shown) == [source.url for source in reply.sources if source.url]
    text = plain(shown)
    for source in reply.sources:
        assert source.title in text and human_date(source.date) in text
    assert "reuters.com" in text  # the site beside each linked title
    assert plain(TEXTS.sources.reviewed.format(date=human_date(reply.reviewed))) in text
    assert shown.params["parse_mode"] == "HTML"
    assert shown.params["link_preview_options"]["is_disabled"] is True
    assert shown.buttons == []

    fake_api.press(chat, data)  # a second press shows the same list again
    assert links(fake_api.wait_messages(chat, 3)[2]) == links(shown)


@pytest.mark.usefixtures("sources_bot")
def test_telegram_no_sources_button_for_an_answer_without_facts(
    fake_api: FakeBotAPI, new_chat: Callable[[], int], assistant: Assistant
) -> None:
    assert assistant.reply("hello").sources == [], "a greeting states no facts: pick another question"
    chat = new_chat()
    fake_api.send(chat, "hello")
    (greeting,) = fake_api.wait_messages(chat, 1)
    assert greeting.buttons, "suggestions are still offered"
    assert sources_button(greeting) is None
    assert not any(data.startswith("r:") for _, data in greeting.buttons)


@pytest.mark.usefixtures("sources_bot")
def test_telegram_sources_button_after_forget_or_unknown_asks_again(
    fake_api: FakeBotAPI, new_chat: Callable[[], int]
) -> None:
    chat = new_chat()
    fake_api.send(chat, "what is kymriah?")
    (overview,) = fake_api.wait_messages(chat, 1)
    fake_api.send(chat, "/forget")
    fake_api.send(chat, "what is kymriah?")
    again = fake_api.wait_messages(chat, 3)[2]
    old, new = sources_button(overview), sources_button(again)
    assert old and new and old != new  # a key is never handed out twice

    fake_api.press(chat, old)
    assert plain(fake_api.wait_messages(chat, 4)[3]) == plain(TEXTS.please_ask_again)
    fake_api.press(chat, "r:zzzzzzzzzzzz")
    assert plain(fake_api.wait_messages(chat, 5)[4]) == plain(TEXTS.please_ask_again)
    fake_api.press(chat, new)
    assert links(fake_api.wait_messages(chat, 6)[5])


@pytest.mark.usefixtures("sources_bot")
def test_telegram_whatsnew_is_the_whats_new_answer(
    fake_api: FakeBotAPI, new_chat: Callable[[], int], assistant: Assistant
) -> None:
    reply = assistant.reply(TEXTS.whats_new_question)
    assert reply.intent == "whats_new"
    (expected,) = answer_text(assistant, TEXTS.whats_new_question)
    chat = new_chat()
    fake_api.send(chat, "/whatsnew")
    (news,) = fake_api.wait_messages(chat, 1)
    assert plain(news) == expected
    data = sources_button(news)
    assert data is not None
    fake_api.press(chat, data)
    assert links(fake_api.wait_messages(chat, 2)[1]) == [s.url for s in reply.sources if s.url]

    (menu,) = fake_api.calls("setMyCommands")
    assert "whatsnew" in [command["command"] for command in menu.params["commands"]]
    fake_api.send(chat, "/help")
    assert "/whatsnew" in plain(fake_api.wait_messages(chat, 3)[2])


def test_telegram_long_source_list_is_split_below_the_limit(assistant: Assistant) -> None:
    from bot.telegram import TelegramFrontEnd
    from bot.telegram.format import MESSAGE_LIMIT, utf16_len
    from bot.telegram.state import ChatStore
    from bot.telegram.texts import plain_text

    front_end = TelegramFrontEnd(assistant, TEXTS, ChatStore(60.0))
    sources = [
        {
            "title": f"Label <{i}> & notes " + "x" * 150,
            "url": f'https://www.fda.gov/l?id={i}&q="a"',
            "date": "2026",
        }
        for i in range(60)
    ] + [
        {"title": "A printed label", "url": None, "date": "2025-02"},
        {"title": "Odd", "url": "ftp://x", "date": "x"},
    ]
    chunks = front_end._sources_html(sources, "2026-11-28")
    assert len(chunks) > 1
    assert all(utf16_len(plain_text(chunk)) <= MESSAGE_LIMIT for chunk in chunks)
    hrefs = [html.unescape(url) for chunk in chunks for url in re.findall(r'<a href="([^"]+)">', chunk)]
    assert hrefs == [source["url"] for source in sources[:60]]  # ftp:// is no link
    text = html.unescape("\n".join(chunks))
    assert "Label <0> & notes" in text and "(fda.gov, 2026)" in text
    assert "A printed label (February 2025)" in text and "Odd (x)" in text
    assert chunks[-1].endswith(plain(TEXTS.sources.reviewed.format(date="November 28, 2026")))
