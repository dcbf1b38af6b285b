"""End to end: the real bot and python-telegram-bot client against the fake Bot API server.

Every test runs real conversations over HTTP on 127.0.0.1: updates go in through getUpdates, and
the test reads what the bot sent back.
"""

from __future__ import annotations

import html
import itertools
import json
import logging
import re
import stat
import time
from collections.abc import Callable
from typing import Any

import pytest

from bot import Assistant
from bot.errors import DataError
from bot.reply import Reply
from bot.telegram import COMMANDS, load_texts
from bot.telegram.format import utf16_len
from tests.auxil.fake_bot_api import BOT_USER, TOKEN, USER_NAME, BotThread, Call, FakeBotAPI

TEXTS = load_texts()
MENTION = "@" + BOT_USER["username"]


def plain(message: Call | str) -> str:
    """A sent message as the plain text it was rendered from."""
    text = message.text if isinstance(message, Call) else message
    text = html.unescape(re.sub(r"</?(b|i)>", "", text))
    return re.sub(r"(?m)^• ", "- ", text)


def answer_text(assistant: Assistant, *questions: str) -> list[str]:
    """What the assistant answers to ``questions`` asked in turn in one fresh conversation."""
    session = f"expected-{time.monotonic_ns()}"
    texts = [assistant.reply(question, session).text for question in questions]
    assistant.forget(session)
    return texts


class WrappedAssistant:
    """The real assistant with one answer changed: a test double for a single behaviour."""

    def __init__(self, assistant: Assistant, special: Callable[[str], Reply | None]) -> None:
        self._assistant = assistant
        self._special = special
        self.knowledge = assistant.knowledge

    def reply(self, text: str, session: str | None = None) -> Reply:
        return self._special(text) or self._assistant.reply(text, session)

    def reset(self, session: str) -> None:
        self._assistant.reset(session)

    def forget(self, session: str) -> None:
        self._assistant.forget(session)


# -- start, commands, help ----------------------------------------------------------------------


@pytest.mark.usefixtures("telegram_bot")
def test_telegram_start_sets_menu_and_offers_examples(
    fake_api: FakeBotAPI, new_chat: Callable[[], int]
) -> None:
    chat = new_chat()
    fake_api.send(chat, "/start")
    (welcome,) = fake_api.wait_messages(chat, 1)

    assert "not medical advice" in plain(welcome)
    assert welcome.params["parse_mode"] == "HTML"
    assert welcome.buttons == [(q, f"s:{i}") for i, q in enumerate(TEXTS.start_examples)]
    (menu,) = fake_api.calls("setMyCommands")
    assert [c["command"] for c in menu.params["commands"]] == list(COMMANDS)
    methods = [call.method for call in fake_api.calls()]
    assert methods[:4] == ["getMe", "setMyCommands", "deleteWebhook", "getUpdates"]

    query_id = fake_api.press(chat, "s:0", message_id=welcome.params.get("message_id"))
    answer = fake_api.wait_messages(chat, 2)[1]
    fake_api.wait_call("answerCallbackQuery", callback_query_id=query_id)
    assert "gene therapy" in plain(answer).lower()


@pytest.mark.usefixtures("telegram_bot")
@pytest.mark.parametrize(("payload", "brand"), [("zolgensma", "Zolgensma"), ("Luxturna", "Luxturna")])
def test_telegram_start_payload_opens_on_product(
    fake_api: FakeBotAPI, new_chat: Callable[[], int], assistant: Assistant, payload: str, brand: str
) -> None:
    (expected,) = answer_text(assistant, f"What is {brand}?")
    chat = new_chat()
    fake_api.send(chat, f"/start {payload}")
    welcome, product = fake_api.wait_messages(chat, 2)

    assert "not medical advice" in plain(welcome) and welcome.buttons == []
    assert plain(product) == expected
    assert f"<b>{brand}</b>" in product.text


@pytest.mark.usefixtures("telegram_bot")
def test_telegram_start_unknown_payload_is_a_plain_start(
    fake_api: FakeBotAPI, new_chat: Callable[[], int]
) -> None:
    chat = new_chat()
    fake_api.send(chat, "/start no-such-product")
    (welcome,) = fake_api.wait_messages(chat, 1)
    assert welcome.buttons[0][1] == "s:0"


@pytest.mark.usefixtures("telegram_bot")
def test_telegram_help_about_privacy_and_unknown_command(
    fake_api: FakeBotAPI, new_chat: Callable[[], int], assistant: Assistant
) -> None:
    chat = new_chat()
    for command in ("/help", "/about", "/privacy", "/nosuchcommand"):
        fake_api.send(chat, command)
    help_, about, privacy, unknown = fake_api.wait_messages(chat, 4)

    assert MENTION in plain(help_) and "/products" in plain(help_)
    families = sum(1 for product in assistant.knowledge.products.values() if product.family is None)
    assert f"about {families} cell and gene therapies" in plain(about)
    assert "last checked" in plain(about)
    assert "30 minutes" in plain(privacy) and "/forget" in plain(privacy)
    assert "saving" not in plain(privacy)
    assert plain(unknown) == plain(TEXTS.unknown_command)


# -- questions, follow-ups, buttons ---------------------------------------------------------------


@pytest.mark.usefixtures("telegram_bot")
def test_telegram_question_and_follow_up_use_chat_context(
    fake_api: FakeBotAPI, new_chat: Callable[[], int], assistant: Assistant
) -> None:
    questions = ("what is zolgensma?", "how much does it cost?")
    expected = answer_text(assistant, *questions)
    chat = new_chat()
    for question in questions:
        fake_api.send(chat, question)
    overview, cost = fake_api.wait_messages(chat, 2)

    assert [plain(overview), plain(cost)] == expected
    assert "<b>Zolgensma</b>" in overview.text
    assert "$" in plain(cost) and "Zolgensma" in plain(cost)
    *questions, (sources_label, sources_data) = overview.buttons
    assert [label for label, _ in questions] == assistant.reply("what is zolgensma?").suggestions
    assert all(re.fullmatch(r"q:[0-9A-Za-z_-]{12}", data) for _, data in questions)
    assert sources_label == TEXTS.sources.button and re.fullmatch(r"r:[0-9A-Za-z_-]{12}", sources_data)


@pytest.mark.usefixtures("telegram_bot")
def test_telegram_suggestion_button_answers_it(fake_api: FakeBotAPI, new_chat: Callable[[], int]) -> None:
    chat = new_chat()
    fake_api.send(chat, "what is kymriah?")
    (overview,) = fake_api.wait_messages(chat, 1)
    data = overview.buttons[0][1]

    query_id = fake_api.press(chat, data)
    answer = fake_api.wait_messages(chat, 2)[1]
    assert fake_api.wait_call("answerCallbackQuery", callback_query_id=query_id)
    assert "Kymriah" in plain(answer)
    assert answer.text != overview.text


@pytest.mark.usefixtures("telegram_bot")
def test_telegram_did_you_mean_buttons_and_their_press(
    fake_api: FakeBotAPI, new_chat: Callable[[], int], assistant: Assistant
) -> None:
    question = "what is onasemnogene abeparvovec?"
    reply = assistant.reply(question)
    assert reply.did_you_mean, "the assistant no longer asks back here: pick another shared name"
    brands = [assistant.knowledge.products[pid].brand for pid in reply.did_you_mean]
    chat = new_chat()
    fake_api.send(chat, question)
    (asked,) = fake_api.wait_messages(chat, 1)

    assert [label for label, _ in asked.buttons] == brands  # one button per product, no duplicates
    label, data = asked.buttons[-1]
    query_id = fake_api.press(chat, data)
    answer = fake_api.wait_messages(chat, 2)[1]
    fake_api.wait_call("answerCallbackQuery", callback_query_id=query_id)
    assert f"<b>{label}</b>" in answer.text
    assert "not sure" not in plain(answer)


@pytest.mark.usefixtures("telegram_bot")
@pytest.mark.parametrize("data", ["q:zz9", "r:zz9", "s:99", "p:no-such-product", "k:9x", "nonsense", ""])
def test_telegram_old_or_unknown_button_asks_again(
    fake_api: FakeBotAPI, new_chat: Callable[[], int], data: str
) -> None:
    chat = new_chat()
    query_id = fake_api.press(chat, data)
    fake_api.wait_call("answerCallbackQuery", callback_query_id=query_id)
    if data.startswith("k:"):  # an unknown kind shows the list of kinds again
        (edit,) = fake_api.wait_call("editMessageText", chat_id=chat)
        assert plain(edit) == TEXTS.products.choose_kind
        return
    (reply,) = fake_api.wait_messages(chat, 1)
    assert plain(reply) == plain(TEXTS.please_ask_again)


@pytest.mark.usefixtures("telegram_bot")
def test_telegram_products_browser(
    fake_api: FakeBotAPI, new_chat: Callable[[], int], assistant: Assistant
) -> None:
    products = assistant.knowledge.products
    chat = new_chat()
    fake_api.send(chat, "/products")
    (menu,) = fake_api.wait_messages(chat, 1)
    kinds = [label for label, _ in menu.buttons]
    assert kinds == [TEXTS.products.kinds[kind] for kind in TEXTS.products.kinds]

    cell = kinds.index(TEXTS.products.kinds["cell therapy"])
    fake_api.press(chat, f"k:{cell}", message_id=menu.params.get("message_id"))
    (edit,) = fake_api.wait_call("editMessageText", chat_id=chat)
    shown = {data.removeprefix("p:") for _, data in edit.buttons if data.startswith("p:")}
    listed = {p.id for p in products.values() if p.kind == "cell therapy" and p.family is None}
    assert shown == listed
    assert not shown & {p.id for p in products.values() if p.family}  # families, not their members
    assert edit.buttons[-1] == (TEXTS.products.back, "m")

    fake_api.press(chat, "p:zolgensma")
    answer = fake_api.wait_messages(chat, 2)[1]
    assert plain(answer) == answer_text(assistant, "What is Zolgensma?")[0]

    fake_api.press(chat, "m")
    back = fake_api.wait_call("editMessageText", 2, chat_id=chat)[1]
    assert back.buttons == menu.buttons


# -- safety, non-text, edits, groups ----------------------------------------------------------------


@pytest.mark.usefixtures("telegram_bot")
def test_telegram_emergency_comes_alone_without_buttons(
    fake_api: FakeBotAPI, new_chat: Callable[[], int], assistant: Assistant
) -> None:
    question = "I have a high fever after my CAR-T infusion"
    (expected,) = answer_text(assistant, question)
    chat = new_chat()
    fake_api.send(chat, question)
    fake_api.send(chat, "thanks")
    urgent, after = fake_api.wait_messages(chat, 2)

    assert plain(urgent) == expected and "911" in expected
    assert "reply_markup" not in urgent.params
    assert plain(after) != expected  # the urgent answer was one message, alone


@pytest.mark.usefixtures("telegram_bot")
def test_telegram_emergency_in_a_group_comes_alone_without_buttons(
    fake_api: FakeBotAPI, new_chat: Callable[[], int], assistant: Assistant
) -> None:
    question = "my dad got yescarta last week and he is burning up and confused, temp 39.4"
    (expected,) = answer_text(assistant, question)
    group = -new_chat()
    asked = fake_api.send(group, f"{MENTION} {question}", chat_type="group")
    fake_api.send(group, f"{MENTION} thanks", chat_type="group")
    urgent, after = fake_api.wait_messages(group, 2)

    assert plain(urgent) == expected and expected.startswith("This may be an emergency.")
    assert "reply_markup" not in urgent.params
    assert urgent.params["reply_parameters"]["message_id"] == asked
    assert plain(after) != expected


@pytest.mark.usefixtures("telegram_bot")
def test_telegram_non_text_asks_for_typed_question(
    fake_api: FakeBotAPI, new_chat: Callable[[], int], assistant: Assistant
) -> None:
    chat = new_chat()
    fake_api.sticker(chat)
    fake_api.voice(chat)
    fake_api.photo(chat)
    fake_api.send(chat, document={"file_id": "doc-1", "file_unique_id": "d1"})
    fake_api.photo(chat, caption="how is luxturna given?")
    *asks, captioned = fake_api.wait_messages(chat, 5)

    assert [plain(message) for message in asks] == [plain(TEXTS.please_type)] * 4
    assert plain(captioned) == answer_text(assistant, "how is luxturna given?")[0]


@pytest.mark.usefixtures("telegram_bot")
def test_telegram_edited_message_answers_the_new_text(
    fake_api: FakeBotAPI, new_chat: Callable[[], int], assistant: Assistant
) -> None:
    chat = new_chat()
    message_id = fake_api.send(chat, "what is zolgensma?")
    fake_api.wait_messages(chat, 1)
    fake_api.send(chat, "what is luxturna?", edited_id=message_id)
    edited = fake_api.wait_messages(chat, 2)[1]

    assert plain(edited) == answer_text(assistant, "what is luxturna?")[0]
    assert edited.params["reply_parameters"]["message_id"] == message_id


@pytest.mark.usefixtures("telegram_bot")
def test_telegram_group_answers_only_commands_mentions_and_replies(
    fake_api: FakeBotAPI, new_chat: Callable[[], int], assistant: Assistant
) -> None:
    group = -new_chat()
    fake_api.send(group, "what is kymriah?", chat_type="group")
    fake_api.sticker(group, chat_type="group")
    fake_api.send(group, "/start@other_bot", chat_type="group")
    mentioned = fake_api.send(group, f"{MENTION} what is kymriah?", chat_type="group")
    fake_api.send(group, "what is luxturna?", chat_type="supergroup")
    replied = fake_api.send(group, "how much does it cost?", chat_type="group", reply_to_bot=True)
    fake_api.send(group, "/help", chat_type="group")
    fake_api.send(group, MENTION, chat_type="group")
    answers = fake_api.wait_messages(group, 4)
    fake_api.send(group, f"thanks {MENTION}", chat_type="group")
    fake_api.wait_messages(group, 5)  # everything before it is done: per-chat order

    overview, cost, help_, bare_mention, _ = fake_api.messages(group)
    assert [plain(overview), plain(cost)] == answer_text(
        assistant, "what is kymriah?", "how much does it cost?"
    )
    assert overview.params["reply_parameters"]["message_id"] == mentioned
    assert cost.params["reply_parameters"]["message_id"] == replied
    assert MENTION in plain(help_)
    assert plain(bare_mention).startswith("Yes?")
    assert len(answers) == 4


# -- inline mode ------------------------------------------------------------------------------------


@pytest.mark.usefixtures("telegram_bot")
def test_telegram_inline_query_offers_short_answers_with_disclaimer(fake_api: FakeBotAPI) -> None:
    query_id = fake_api.inline("zolgensma")
    (answer,) = fake_api.wait_call("answerInlineQuery", inline_query_id=query_id)
    results = answer.params["results"]

    assert results and answer.params["is_personal"] is False
    for result in results:
        content = result["input_message_content"]
        assert content["parse_mode"] == "HTML"
        assert "Zolgensma" in content["message_text"]
        assert "not medical advice. Talk to your doctor.</i>" in content["message_text"]
        assert MENTION in content["message_text"] and USER_NAME not in content["message_text"]
        assert utf16_len(plain(content["message_text"])) <= 1400
        assert len(result["id"].encode()) <= 64


@pytest.mark.usefixtures("telegram_bot")
def test_telegram_inline_query_names_products_and_empty_query_opens_bot(fake_api: FakeBotAPI) -> None:
    named = fake_api.inline("kymriah vs yescarta")
    empty = fake_api.inline("   ")
    (compare,) = fake_api.wait_call("answerInlineQuery", inline_query_id=named)
    (nothing,) = fake_api.wait_call("answerInlineQuery", inline_query_id=empty)

    titles = [result["title"] for result in compare.params["results"]]
    assert titles[0] == "kymriah vs yescarta"
    assert {"What is Kymriah?", "What is Yescarta?"} <= set(titles)
    assert nothing.params["results"] == []
    assert nothing.params["button"]["start_parameter"] == "inline"


# -- long answers, typing, many chats -------------------------------------------------------------


def test_telegram_long_answer_is_split_in_order(
    fake_api: FakeBotAPI,
    start_bot: Callable[..., BotThread],
    new_chat: Callable[[], int],
    assistant: Assistant,
) -> None:
    brands = ["Kymriah", "Yescarta", "Tecartus", "Breyanzi", "Abecma", "Carvykti", "Aucatzyl"]
    parts = [assistant.reply(f"What are the side effects of {brand}?").text for brand in brands]
    long_text = "\n\n".join(parts)
    assert 4096 < len(long_text) < 8000

    def special(text: str) -> Reply | None:
        if text != "tell me everything about car-t":
            return None
        return Reply(intent="product_side_effects", confidence=1.0, text=long_text, suggestions=["Thanks"])

    start_bot(WrappedAssistant(assistant, special))
    chat = new_chat()
    fake_api.send(chat, "tell me everything about car-t")
    fake_api.send(chat, "hi")
    first, second, _ = fake_api.wait_messages(chat, 3)

    assert all(utf16_len(plain(message)) < 4096 for message in (first, second))
    assert plain(first) + "\n\n" + plain(second) == long_text  # split at a paragraph, in order
    assert "reply_markup" not in first.params and [label for label, _ in second.buttons] == ["Thanks"]


def test_telegram_typing_shown_while_a_slow_answer_is_worked_out(
    fake_api: FakeBotAPI,
    start_bot: Callable[..., BotThread],
    new_chat: Callable[[], int],
    assistant: Assistant,
) -> None:
    def slow(text: str) -> Reply | None:
        time.sleep(0.8)
        return None

    start_bot(WrappedAssistant(assistant, slow))
    chat = new_chat()
    fake_api.send(chat, "what is kymriah?")
    fake_api.wait_messages(chat, 1)

    methods = [call.method for call in fake_api.calls(chat_id=chat)]
    assert methods == ["sendChatAction", "sendMessage"]
    assert fake_api.calls("sendChatAction", chat)[0].params["action"] == "typing"


@pytest.mark.usefixtures("telegram_bot")
def test_telegram_fast_answers_skip_typing(fake_api: FakeBotAPI, new_chat: Callable[[], int]) -> None:
    chat = new_chat()
    fake_api.send(chat, "hi")
    fake_api.wait_messages(chat, 1)
    assert fake_api.calls("sendChatAction", chat) == []


@pytest.mark.usefixtures("telegram_bot")
def test_telegram_fifty_chats_at_once_each_in_order(
    fake_api: FakeBotAPI,
    new_chat: Callable[[], int],
    assistant: Assistant,
    record_property: Callable[[str, Any], None],
    capsys: pytest.CaptureFixture[str],
) -> None:
    brands = ["Zolgensma", "Kymriah", "Luxturna", "Yescarta", "Casgevy"]
    chats = [new_chat() for _ in range(50)]
    questions = {
        chat: (f"what is {brands[i % 5]}?", "how much does it cost?") for i, chat in enumerate(chats)
    }
    expected = {
        brand: answer_text(assistant, f"what is {brand}?", "how much does it cost?") for brand in brands
    }

    started = time.monotonic()
    for turn in range(2):
        for chat in chats:
            fake_api.send(chat, questions[chat][turn])
    for chat in chats:
        fake_api.wait_messages(chat, 2, timeout=30)
    elapsed = time.monotonic() - started

    for i, chat in enumerate(chats):
        assert [plain(message) for message in fake_api.messages(chat)] == expected[brands[i % 5]]
    first_half = fake_api.calls("sendMessage", ok=True)[-100:][:50]
    assert len({call.chat_id for call in first_half}) >= 25  # chats ran side by side
    rate = len(chats) / elapsed
    record_property("chats_per_second", round(rate, 1))
    with capsys.disabled():
        print(
            f"\n50 chats, 100 answers in {elapsed:.2f} s: {rate:.1f} chats/s, {100 / elapsed:.1f} answers/s"
        )


# -- per-chat state: reset, forget, expiry, flood, persistence ------------------------------------


@pytest.mark.usefixtures("telegram_bot")
def test_telegram_reset_and_forget(
    fake_api: FakeBotAPI, new_chat: Callable[[], int], assistant: Assistant
) -> None:
    (without_context,) = answer_text(assistant, "how much does it cost?")
    chat = new_chat()
    fake_api.send(chat, "what is zolgensma?")
    fake_api.send(chat, "/reset")
    fake_api.send(chat, "how much does it cost?")
    _, reset, follow_up = fake_api.wait_messages(chat, 3)
    assert plain(reset) == plain(TEXTS.reset_done)
    assert plain(follow_up) == without_context

    fake_api.send(chat, "what is kymriah?")
    fake_api.send(chat, "/forget")
    kymriah, forgot = fake_api.wait_messages(chat, 5)[3:]
    assert plain(forgot) == plain(TEXTS.forget_done)
    fake_api.press(chat, kymriah.buttons[0][1])
    fake_api.send(chat, "how much does it cost?")
    old_button, after = fake_api.wait_messages(chat, 7)[5:]
    assert plain(old_button) == plain(TEXTS.please_ask_again)
    assert plain(after) == without_context


def test_telegram_context_expires(
    fake_api: FakeBotAPI,
    start_bot: Callable[..., BotThread],
    new_chat: Callable[[], int],
    assistant: Assistant,
) -> None:
    (without_context,) = answer_text(assistant, "how much does it cost?")
    start_bot(expiry=0.5, sweep_interval=0.1)
    chat = new_chat()
    fake_api.send(chat, "what is zolgensma?")
    (overview,) = fake_api.wait_messages(chat, 1)
    time.sleep(1.0)
    fake_api.press(chat, overview.buttons[0][1])
    fake_api.send(chat, "how much does it cost?")
    old_button, follow_up = fake_api.wait_messages(chat, 3)[1:]

    assert plain(old_button) == plain(TEXTS.please_ask_again)
    assert plain(follow_up) == without_context


@pytest.mark.usefixtures("telegram_bot")
def test_telegram_flood_gets_one_slow_down(fake_api: FakeBotAPI, new_chat: Callable[[], int]) -> None:
    chat, other = new_chat(), new_chat()
    for _ in range(23):
        fake_api.send(chat, "hi")
    fake_api.send(other, "hi")
    fake_api.wait_messages(other, 1)
    messages = fake_api.wait_messages(chat, 21)
    time.sleep(0.2)

    assert len(fake_api.messages(chat)) == 21
    assert plain(messages[-1]) == plain(TEXTS.slow_down)


def test_telegram_nothing_written_to_disk_without_persistence(
    fake_api: FakeBotAPI,
    start_bot: Callable[..., BotThread],
    new_chat: Callable[[], int],
    tmp_path: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.chdir(tmp_path)
    bot = start_bot()
    chat = new_chat()
    fake_api.send(chat, "what is zolgensma?")
    fake_api.wait_messages(chat, 1)
    bot.stop()
    assert list(tmp_path.iterdir()) == []


def test_telegram_persistence_keeps_buttons_across_restarts(
    fake_api: FakeBotAPI, start_bot: Callable[..., BotThread], new_chat: Callable[[], int], tmp_path: Any
) -> None:
    path = tmp_path / "chats.json"
    chat = new_chat()
    first = start_bot(persistence_path=path)
    fake_api.send(chat, "/privacy")
    fake_api.send(chat, "what is zolgensma?")
    privacy, overview = fake_api.wait_messages(chat, 2)
    first.stop()

    assert "saving" in plain(privacy)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    saved = json.loads(path.read_text())
    assert str(chat) in saved["chats"]
    assert USER_NAME not in path.read_text() and "what is zolgensma" not in path.read_text().lower()

    start_bot(persistence_path=path)
    fake_api.press(chat, overview.buttons[0][1])
    pressed = fake_api.wait_messages(chat, 3)[2]
    assert plain(pressed) != plain(TEXTS.please_ask_again) and "Zolgensma" in plain(pressed)
    assert overview.buttons[-1][0] == TEXTS.sources.button
    fake_api.press(chat, overview.buttons[-1][1])  # the sources behind the button were saved too
    sources = fake_api.wait_messages(chat, 4)[3]
    assert plain(sources).startswith(plain(TEXTS.sources.heading)) and '<a href="https://' in sources.text

    fake_api.send(chat, "/forget")
    fake_api.wait_messages(chat, 5)
    assert str(chat) not in json.loads(path.read_text())["chats"]


# -- failures: 429, network errors, one failing chat, 409 -----------------------------------------


@pytest.mark.filterwarnings("ignore::telegram.warnings.PTBDeprecationWarning")  # raised inside PTB
@pytest.mark.usefixtures("telegram_bot")
def test_telegram_429_is_retried_after_the_wait(fake_api: FakeBotAPI, new_chat: Callable[[], int]) -> None:
    chat = new_chat()
    fake_api.fail("sendMessage", 429, chat_id=chat, retry_after=1)
    fake_api.send(chat, "what is kymriah?")
    fake_api.wait_messages(chat, 1)

    limited, delivered = fake_api.calls("sendMessage", chat)
    assert (limited.status, delivered.status) == (429, 200)
    assert delivered.at - limited.at >= 1.0
    assert delivered.text == limited.text


@pytest.mark.usefixtures("telegram_bot")
def test_telegram_network_error_is_retried(fake_api: FakeBotAPI, new_chat: Callable[[], int]) -> None:
    chat = new_chat()
    fake_api.fail("sendMessage", 502, chat_id=chat, times=2)
    fake_api.send(chat, "what is kymriah?")
    fake_api.wait_messages(chat, 1)
    assert [call.status for call in fake_api.calls("sendMessage", chat)] == [502, 502, 200]


@pytest.mark.usefixtures("telegram_bot")
def test_telegram_one_failing_chat_never_stops_the_others(
    fake_api: FakeBotAPI, new_chat: Callable[[], int]
) -> None:
    blocked, broken, fine = new_chat(), new_chat(), new_chat()
    fake_api.fail("sendMessage", 403, chat_id=blocked)
    fake_api.fail("sendMessage", 400, chat_id=broken)
    for chat in (blocked, broken, fine):
        fake_api.send(chat, "what is kymriah?")
    fake_api.wait_messages(fine, 1)
    apology = fake_api.wait_messages(broken, 1)[0]
    assert plain(apology) == plain(TEXTS.error)

    fake_api.send(blocked, "what is luxturna?")
    assert "Luxturna" in plain(fake_api.wait_messages(blocked, 1)[0])


def test_telegram_old_buttons_never_ask_a_newer_question(
    fake_api: FakeBotAPI,
    new_chat: Callable[[], int],
    start_bot: Callable[..., BotThread],
    telegram_bot: BotThread,
) -> None:
    """Issue #10, 1: after /forget or a restart, an old button gets "please ask again"."""
    chat = new_chat()
    fake_api.send(chat, "what is zolgensma?")
    (zolgensma,) = fake_api.wait_messages(chat, 1)
    fake_api.send(chat, "/forget")
    fake_api.send(chat, "what is kymriah?")
    kymriah = fake_api.wait_messages(chat, 3)[2]
    assert not {d for _, d in zolgensma.buttons} & {d for _, d in kymriah.buttons}  # never reused
    fake_api.press(chat, zolgensma.buttons[0][1])
    assert plain(fake_api.wait_messages(chat, 4)[3]) == plain(TEXTS.please_ask_again)

    telegram_bot.stop()  # a restart without --persist: one poller at a time, so one order
    start_bot()
    other = new_chat()
    fake_api.send(other, "what is kymriah?")
    fake_api.wait_messages(other, 1)
    fake_api.press(chat, kymriah.buttons[0][1])
    fake_api.press(chat, zolgensma.buttons[0][1])
    pressed = fake_api.wait_messages(chat, 6)[4:]
    assert all("Zolgensma" not in plain(m) for m in pressed[1:])
    assert plain(pressed[1]) == plain(TEXTS.please_ask_again)


@pytest.mark.usefixtures("telegram_bot")
def test_telegram_outage_loses_nothing_keeps_order_and_logs_twice(
    fake_api: FakeBotAPI, new_chat: Callable[[], int], assistant: Assistant, telegram_logs: Any
) -> None:
    """Issue #10, 2 and 4: a 5-second outage delays answers, drops none, logs two lines."""
    brands = ["Zolgensma", "Kymriah", "Luxturna"]
    expected = {b: answer_text(assistant, f"what is {b}?", "how much does it cost?") for b in brands}
    chats = [new_chat() for _ in range(30)]
    fake_api.outage(5.0)
    for turn in range(2):
        for i, chat in enumerate(chats):
            fake_api.send(chat, f"what is {brands[i % 3]}?" if turn == 0 else "how much does it cost?")
    for i, chat in enumerate(chats):
        got = fake_api.wait_messages(chat, 2, timeout=30)
        assert [plain(m) for m in got] == expected[brands[i % 3]]
    assert len(fake_api.calls("sendMessage", ok=False)) >= 30
    lines = [r for r in telegram_logs.records if r.levelno >= logging.WARNING]
    assert len(lines) == 2, [r.getMessage() for r in lines]
    assert "cannot take messages" in lines[0].getMessage()
    assert "again after" in lines[1].getMessage() and ", 0 given up" in lines[1].getMessage()
    assert not any(r.exc_info for r in telegram_logs.records)
    assert str(chats[0]) not in telegram_logs.text() and "Zolgensma" not in telegram_logs.text()


@pytest.mark.filterwarnings("ignore::telegram.warnings.PTBDeprecationWarning")
@pytest.mark.usefixtures("telegram_bot")
def test_telegram_four_429s_still_deliver(fake_api: FakeBotAPI, new_chat: Callable[[], int]) -> None:
    """Issue #10, 2: four 429s with retry_after=1 wait four times, then the answer goes out."""
    chat = new_chat()
    fake_api.fail("sendMessage", 429, chat_id=chat, retry_after=1, times=4)
    fake_api.send(chat, "what is kymriah?")
    (answer,) = fake_api.wait_messages(chat, 1, timeout=15)
    calls = fake_api.calls("sendMessage", chat)
    assert [c.status for c in calls] == [429] * 4 + [200]
    assert all(b.at - a.at >= 1.0 for a, b in itertools.pairwise(calls))
    assert "Kymriah" in plain(answer)


@pytest.mark.usefixtures("telegram_bot")
def test_telegram_slow_acknowledgement_is_not_sent_twice(
    fake_api: FakeBotAPI, new_chat: Callable[[], int]
) -> None:
    """Issue #10, 3: a send acknowledged after 5.5 s (past PTB's 5 s default) arrives once."""
    chat = new_chat()
    fake_api.slow("sendMessage", 5.5, chat_id=chat)
    fake_api.send(chat, "what is kymriah?")
    fake_api.wait_messages(chat, 1)
    time.sleep(6.0)
    assert len(fake_api.calls("sendMessage", chat)) == 1


@pytest.mark.usefixtures("telegram_bot")
def test_telegram_urgent_reply_first_and_alone_in_private_and_group(
    fake_api: FakeBotAPI, new_chat: Callable[[], int], assistant: Assistant
) -> None:
    """Issue #8: an urgent reply goes first and alone, without buttons, in private and groups."""
    question = "my dad has a fever of 104 right now after his kymriah infusion"
    assert assistant.reply(question).urgent
    (expected,) = answer_text(assistant, question)
    chat, group = new_chat(), -new_chat()
    fake_api.send(chat, question)
    fake_api.send(group, f"{MENTION} {question}", chat_type="group")
    for where in (chat, group):
        (urgent,) = fake_api.wait_messages(where, 1)
        assert plain(urgent) == expected
        assert "reply_markup" not in urgent.params
    time.sleep(0.3)
    assert len(fake_api.messages(chat)) == 1 and len(fake_api.messages(group)) == 1


# -- privacy of logs ------------------------------------------------------------------------------


@pytest.mark.filterwarnings("ignore::telegram.warnings.PTBDeprecationWarning")  # raised inside PTB
def test_telegram_logs_hold_no_token_text_names_or_ids(
    fake_api: FakeBotAPI, start_bot: Callable[..., BotThread], assistant: Assistant, telegram_logs: Any
) -> None:
    def failing(text: str) -> Reply | None:
        if "explode" in text:
            raise RuntimeError(f"could not answer {text!r}")
        return None

    start_bot(WrappedAssistant(assistant, failing))
    chat, group, failing_chat = 5550001234, -5550009876, 5550004321
    user_texts = [
        "what is zolgensma?",
        "how much does it cost?",
        "what is onasemnogene abeparvovec?",
        "please explode now",
        "I have a high fever after my CAR-T infusion",
        "what is luxturna?",
        f"{MENTION} what is kymriah?",
        "unaddressed group chatter",
        "inline zolgensma question",
    ]
    fake_api.fail("sendMessage", 429, chat_id=chat, retry_after=1)
    fake_api.fail("sendMessage", 502, chat_id=failing_chat)
    fake_api.send(chat, user_texts[0])
    fake_api.send(chat, user_texts[1])
    fake_api.send(failing_chat, user_texts[2])
    fake_api.send(failing_chat, user_texts[3])
    message_id = fake_api.send(chat, user_texts[4])
    fake_api.send(chat, user_texts[5], edited_id=message_id)
    fake_api.sticker(chat)
    fake_api.send(group, user_texts[6], chat_type="group")
    fake_api.send(group, user_texts[7], chat_type="group")
    fake_api.inline(user_texts[8])
    fake_api.wait_messages(chat, 4)
    asked = fake_api.wait_messages(failing_chat, 2)[0]
    fake_api.press(failing_chat, asked.buttons[0][1])
    fake_api.wait_messages(failing_chat, 3)
    fake_api.wait_messages(group, 1)
    fake_api.wait_call("answerInlineQuery")

    # The 429 of one chat and the 502 of another race: either may open the spell of failures, and
    # its closing line is written only once the bot has read the first success after it.
    fake_api.wait_for(lambda: "Telegram takes messages again" in telegram_logs.text(), what="the end line")
    logged = telegram_logs.text()
    assert re.search(r"Telegram cannot take messages now \((RetryAfter|NetworkError)\)", logged)
    assert "Error while handling an update: RuntimeError" in logged
    assert TOKEN not in logged and TOKEN.split(":")[1] not in logged  # ...and holds nothing private
    sent = [plain(call) for call in fake_api.calls("sendMessage")]
    for text in [*user_texts, *sent]:
        for line in text.splitlines():
            if len(line) >= 12:
                assert line not in logged, line
    for private in (str(chat), str(group), str(failing_chat), USER_NAME):
        assert private not in logged


# -- the texts file ---------------------------------------------------------------------------------


def test_telegram_texts_are_plain_language() -> None:
    textstat = pytest.importorskip("textstat")
    for name in ("start", "help", "about", "privacy", "please_type", "please_ask_again", "error"):
        text = re.sub(r"\{\w+\}", "it", re.sub(r"<[^>]+>", "", getattr(TEXTS, name)))
        assert textstat.flesch_kincaid_grade(text) <= 8, name
    assert "not medical advice" in TEXTS.start


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (("help: |-", "help: |-\n  Hi {name}."), "help: Value error, unknown placeholder {name}"),
        (("reset_done: Done.", "reset_done: <b>Done."), "reset_done: Value error, <b> is never closed"),
        (("reset_done: Done.", "reset_done: Fish & chips."), "reset_done: Value error, write '&'"),
        (("  start: What", "  begin: What"), "commands: Value error, commands must be exactly"),
        (("    gene therapy: Gene", "    gene therapies: Gene"), "products.kinds: Value error, unknown kind"),
        (("slow_down:", "slow_dawn:"), "slow_dawn: Extra inputs are not permitted"),
    ],
)
def test_telegram_texts_problems_name_file_and_field(
    tmp_path: Any, change: tuple[str, str], message: str
) -> None:
    source = load_texts.__defaults__[0].read_text(encoding="utf-8")
    assert change[0] in source
    broken = tmp_path / "telegram.yaml"
    broken.write_text(source.replace(change[0], change[1], 1), encoding="utf-8")
    with pytest.raises(DataError) as caught:
        load_texts(broken)
    assert any(
        problem.startswith("telegram.yaml: ") and message in problem for problem in caught.value.problems
    )
