"""The 200-chat load figure of the Telegram bot, offline: answers per second, and order per chat.

200 chats each send a question and a follow-up at once, against the fake Bot API on 127.0.0.1:
first to one polling process (in this process), then to two webhook worker processes sharing a
redis-server, behind a round-robin dispatcher that posts as Telegram does. Both stay within
Telegram's 30 messages a second, which bounds the figure.

    PYTHONPATH=. python benchmarks/telegram_load.py [--chats 200]
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("NO_PROXY", "127.0.0.1,localhost")

from bot import Assistant
from bot.telegram import build_application
from tests.auxil.fake_bot_api import BotThread, FakeBotAPI
from tests.bot.telegram.webhook_workers import Dispatcher, Worker, start_redis, stop_process

BRANDS = ["Zolgensma", "Kymriah", "Luxturna", "Yescarta", "Casgevy"]
QUESTIONS = ("what is {brand}?", "how much does it cost?")


def expected(assistant: Assistant) -> dict[str, list[str]]:
    answers = {}
    for brand in BRANDS:
        session = f"bench-{brand}"
        answers[brand] = [assistant.reply(q.format(brand=brand), session).text for q in QUESTIONS]
        assistant.forget(session)
    return answers


def queue(api: FakeBotAPI, chats: list[int]) -> None:
    for turn in range(2):
        for i, chat in enumerate(chats):
            api.send(chat, QUESTIONS[turn].format(brand=BRANDS[i % 5]))


def report(
    name: str, api: FakeBotAPI, chats: list[int], elapsed: float, answers: dict[str, list[str]]
) -> None:
    import html
    import re

    in_order = 0
    for i, chat in enumerate(chats):
        got = [html.unescape(re.sub(r"</?(b|i)>", "", m.text)) for m in api.messages(chat)]
        got = [re.sub(r"(?m)^• ", "- ", text) for text in got]
        in_order += got == answers[BRANDS[i % 5]]
    total = sum(len(api.messages(chat)) for chat in chats)
    print(
        f"{name}: {len(chats)} chats, {total} answers in {elapsed:.2f} s = {total / elapsed:.1f} answers/s; "
        f"{in_order}/{len(chats)} chats got exactly their answers, once, in order"
    )


def polling(assistant: Assistant, count: int, answers: dict[str, list[str]]) -> None:
    with FakeBotAPI() as api:
        application = build_application(assistant, api.token, api.url)
        with BotThread(application):
            chats = list(range(10_001, 10_001 + count))
            started = time.monotonic()
            queue(api, chats)
            for chat in chats:
                api.wait_messages(chat, 2, timeout=120)
            report("polling, one process", api, chats, time.monotonic() - started, answers)


def webhooks(count: int, answers: dict[str, list[str]]) -> None:
    server = shutil.which("redis-server") or "/usr/bin/redis-server"
    workdir = Path(tempfile.mkdtemp())
    redis, url = start_redis(workdir, server)
    try:
        with FakeBotAPI() as api:
            workers = [Worker(api, f"{url}/0", workdir / f"w{i}.log").start() for i in range(2)]
            try:
                for worker in workers:
                    worker.wait_ready()
                chats = list(range(20_001, 20_001 + count))
                queue(api, chats)
                updates = api.take_updates()
                with Dispatcher(workers) as dispatcher:
                    started = time.monotonic()
                    dispatcher.wait(dispatcher.deliver(updates), timeout=300)
                    elapsed = time.monotonic() - started
                report("webhooks, two workers + Redis", api, chats, elapsed, answers)
            finally:
                for worker in workers:
                    worker.stop()
    finally:
        stop_process(redis)
        shutil.rmtree(workdir, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--chats", type=int, default=200)
    args = parser.parse_args()
    assistant = Assistant()
    answers = expected(assistant)
    polling(assistant, args.chats, answers)
    webhooks(args.chats, answers)


if __name__ == "__main__":
    main()
