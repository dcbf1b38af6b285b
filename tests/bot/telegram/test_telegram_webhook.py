"""Webhook workers sharing Redis: real `cgt-bot telegram` processes, a real redis-server, the fake
Bot API, and a dispatcher that posts updates as Telegram does behind a round-robin balancer."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable

from bot import Assistant
from tests.auxil.fake_bot_api import TOKEN, USER_NAME, FakeBotAPI
from tests.bot.telegram.test_telegram import answer_text, plain
from tests.bot.telegram.webhook_workers import SECRET, Dispatcher, Worker, post

BRANDS = ["Zolgensma", "Kymriah", "Luxturna", "Yescarta", "Casgevy"]
FOLLOW_UPS = ("how much does it cost?", "how is it given?", "what are the side effects?")


def conversation(brand: str) -> tuple[str, ...]:
    return (f"what is {brand}?", *FOLLOW_UPS)


def test_telegram_webhook_refuses_a_wrong_secret_and_registers_its_own(
    fake_api: FakeBotAPI, workers: Callable[..., list[Worker]], new_chat: Callable[[], int]
) -> None:
    (worker,) = workers(1)
    (registered,) = fake_api.calls("setWebhook")
    assert registered.params["url"] == worker.webhook_url
    assert registered.params["secret_token"] == SECRET

    refused, answered = new_chat(), new_chat()
    fake_api.send(refused, "what is zolgensma?")
    fake_api.send(answered, "what is kymriah?")
    wrong, right = fake_api.take_updates()
    body = json.dumps(wrong).encode()
    assert post(worker.port, worker.path, body, "not-the-secret") == 403
    assert post(worker.port, worker.path, body, None) == 403
    assert post(worker.port, worker.path, b"{not json", SECRET) == 400
    assert post(worker.port, worker.path, json.dumps(right).encode(), SECRET) == 200

    assert "Kymriah" in plain(fake_api.wait_messages(answered, 1)[0])
    assert fake_api.messages(refused) == []  # never processed


def test_telegram_two_webhook_workers_fifty_chats_in_order_once_with_context(
    fake_api: FakeBotAPI,
    workers: Callable[..., list[Worker]],
    new_chat: Callable[[], int],
    assistant: Assistant,
) -> None:
    expected = {brand: answer_text(assistant, *conversation(brand)) for brand in BRANDS}
    pool = workers(2)
    chats = [new_chat() for _ in range(50)]
    for turn in range(4):
        for i, chat in enumerate(chats):
            fake_api.send(chat, conversation(BRANDS[i % 5])[turn])
    updates = fake_api.take_updates()
    with Dispatcher(pool) as dispatcher:
        dispatcher.wait(dispatcher.deliver(updates), timeout=120)

    for i, chat in enumerate(chats):
        assert [plain(m) for m in fake_api.messages(chat)] == expected[BRANDS[i % 5]], chat
    served = {index for _, index, status in dispatcher.posts if status == 200}
    assert served == {0, 1}  # both workers answered, each chat's turns alternating between them
    logs = "".join(worker.log.read_text() for worker in pool)
    assert "by webhook" in logs and TOKEN.split(":")[1] not in logs and SECRET not in logs
    assert not any(str(chat) in logs for chat in chats) and "how much" not in logs and USER_NAME not in logs


def test_telegram_webhook_duplicate_delivery_is_answered_once(
    fake_api: FakeBotAPI, workers: Callable[..., list[Worker]], new_chat: Callable[[], int]
) -> None:
    first, second = workers(2)
    chat = new_chat()
    fake_api.send(chat, "what is luxturna?")
    (update,) = fake_api.take_updates()
    body = json.dumps(update).encode()
    statuses: list[int] = []
    both = [
        threading.Thread(target=lambda w=w: statuses.append(post(w.port, w.path, body, SECRET)))
        for w in (first, second)
    ]
    for thread in both:
        thread.start()
    for thread in both:
        thread.join()
    assert statuses == [200, 200]
    assert post(first.port, first.path, body, SECRET) == 200  # a late third delivery

    fake_api.send(chat, "how much does it cost?")
    assert post(second.port, second.path, json.dumps(fake_api.take_updates()[0]).encode(), SECRET) == 200
    overview, cost = fake_api.messages(chat)
    assert "Luxturna" in plain(overview) and "Luxturna" in plain(cost)


def test_telegram_webhook_worker_killed_mid_run_loses_nothing_and_restart_keeps_context(
    fake_api: FakeBotAPI,
    workers: Callable[..., list[Worker]],
    new_chat: Callable[[], int],
    assistant: Assistant,
) -> None:
    expected = {brand: answer_text(assistant, *conversation(brand)) for brand in BRANDS}
    pool = workers(2)
    chats = [new_chat() for _ in range(30)]
    stuck = chats[0]
    fake_api.fail("sendMessage", 502, chat_id=stuck, times=10_000)  # its worker keeps retrying
    for turn in range(3):
        for i, chat in enumerate(chats):
            fake_api.send(chat, conversation(BRANDS[i % 5])[turn])
    with Dispatcher(pool) as dispatcher:
        futures = dispatcher.deliver(fake_api.take_updates())
        fake_api.wait_call("sendMessage", chat_id=stuck, timeout=30)
        doomed = dispatcher.in_flight[stuck]
        dispatcher.avoid(doomed)  # the balancer's health check: no new calls to it
        fake_api.wait_for(lambda: dispatcher.in_flight_on(doomed) == {stuck}, what="only the stuck chat")
        pool[doomed].kill()  # mid-answer, holding the chat's lock, its call unacknowledged
        fake_api.clear_faults()
        dispatcher.wait(futures, timeout=120)
    for i, chat in enumerate(chats):  # every answer, once, in order: the stuck one by the survivor
        assert [plain(m) for m in fake_api.messages(chat)] == expected[BRANDS[i % 5]][:3], chat

    (restarted,) = workers(1)  # fresh memory, the same Redis
    for i, chat in enumerate(chats):
        fake_api.send(chat, conversation(BRANDS[i % 5])[3])
    with Dispatcher([restarted]) as only_restarted:
        only_restarted.wait(only_restarted.deliver(fake_api.take_updates()), timeout=60)
    for i, chat in enumerate(chats):  # the last follow-up answered with the context kept in Redis
        assert [plain(m) for m in fake_api.messages(chat)] == expected[BRANDS[i % 5]], chat
