"""Benchmark: reply latency (p50, p99), replies per second, cold start, peak memory.

Also, in the same run: the reply's median latency over that of a blank spaCy pass
(``spacy.blank("en")`` on the same texts), and where a reply's time goes, stage by stage.

Run:  python benchmarks/bench.py            (uses tests/data/dev.jsonl)
      python benchmarks/bench.py --rounds 5 --json
Figures are printed, never asserted: timing belongs here, not in the test suite.
"""

from __future__ import annotations

import argparse
import functools
import json
import statistics
import subprocess
import sys
import time
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]


def _questions(path: Path) -> list[tuple[str, str | None]]:
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    return [(row["text"], row.get("session")) for row in rows]


def _cold_start(runs: int) -> tuple[list[float], list[float]]:
    """Wall and CPU time of fresh ``cgt-bot ask`` processes (classifier already cached).

    CPU time (user + system) is reported beside wall time because a shared virtual machine
    lends its cores to others: wall time then varies by a third from run to run.
    """
    import resource

    walls, cpus = [], []
    for _ in range(runs):
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        started = time.perf_counter()
        subprocess.run(
            [sys.executable, "-m", "bot", "ask", "how much is zolgensma?"],
            check=True,
            capture_output=True,
            cwd=ROOT,
        )
        walls.append(time.perf_counter() - started)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpus.append((after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime))
    return walls, cpus


#: The stages of a question's path through ``Assistant.reply``, as (module, owner, attribute):
#: each is timed by wrapping what the code already calls, so nothing in the bot changes.
#: A stage is charged its own time only; what it calls that is another stage is charged there.
_STAGES: dict[str, list[tuple[str, str | None, str]]] = {
    "normalise": [
        ("knowledge.resolver", None, "normalize"),
        ("bot.assistant", None, "normalize"),  # the same function, imported by name
        ("intents.catalog", "Catalog", "expand"),
    ],
    "language check": [("bot.assistant", None, "language_of")],
    "spaCy pipeline": [("spacy.language", "Language", "__call__")],
    "names: exact and masking": [("knowledge.resolver", "Resolver", "resolve")],
    "names: fuzzy": [("knowledge.resolver", "Resolver", "_fuzzy")],
    "safety screen": [
        ("intents.matcher", "IntentMatcher", "safety"),
        ("intents.safety", "SafetyScreen", "asks_about_signs"),
        ("intents.safety", "SafetyScreen", "is_personal_advice"),
    ],
    "classification": [
        ("intents.matcher", "IntentMatcher", "classify"),
        ("intents.matcher", "IntentMatcher", "best_of"),
        ("intents.matcher", "IntentMatcher", "calibrated"),
    ],
    # _understand's own time is the glue between the stages above (NFKC, the turn's fields).
    "policy: context and scope": [
        ("bot.assistant", "Assistant", "_understand"),
        ("bot.assistant", "Assistant", "_questions"),
        ("bot.follow_up", "Conversation", "masked_with_context"),
        ("bot.follow_up", "Conversation", "apply"),
        ("bot.policy", "Decider", "decide"),
        ("intents.matcher", "IntentMatcher", "has_domain_word"),
        ("intents.matcher", "IntentMatcher", "unknown_share"),
    ],
    "render: template": [("bot.render", "Renderer", "render_traced")],
    "render: sources": [("bot.render", "Renderer", "sources_used")],
    "render: suggestions and list": [
        ("bot.compose", "Composer", "_suggestions"),
        ("bot.compose", "Composer", "_listed"),
    ],
    "render: reply assembly": [("bot.compose", "Composer", "compose")],
    "session": [
        ("bot.session", "SessionStore", "get"),
        ("bot.session", "SessionStore", "update"),
        ("bot.follow_up", "Conversation", "remember"),
    ],
    "other": [("bot.assistant", "Assistant", "reply")],
}


class _StageTimer:
    """Own time per stage (perf_counter_ns), through wrappers that are removed afterwards."""

    def __init__(self) -> None:
        self.own: dict[str, int] = defaultdict(int)
        self.calls: dict[str, int] = defaultdict(int)
        self._children: list[int] = []  # time spent in timed callees, one entry per open call
        self._undo: list[tuple[Any, str, Any]] = []

    def _wrap(self, stage: str, func: Callable[..., Any]) -> Callable[..., Any]:
        own, calls, children = self.own, self.calls, self._children
        clock = time.perf_counter_ns

        @functools.wraps(func)
        def timed(*args: Any, **kwargs: Any) -> Any:
            children.append(0)
            started = clock()
            try:
                return func(*args, **kwargs)
            finally:
                elapsed = clock() - started
                own[stage] += elapsed - children.pop()
                calls[stage] += 1
                if children:
                    children[-1] += elapsed

        return timed

    def install(self) -> None:
        import importlib

        for stage, targets in _STAGES.items():
            for module_name, owner_name, attribute in targets:
                module = importlib.import_module(module_name)
                owner = getattr(module, owner_name) if owner_name else module
                original = vars(owner)[attribute]
                if isinstance(original, staticmethod):
                    wrapped: Any = staticmethod(self._wrap(stage, original.__func__))
                else:
                    wrapped = self._wrap(stage, original)
                setattr(owner, attribute, wrapped)
                self._undo.append((owner, attribute, original))

    def remove(self) -> None:
        while self._undo:
            owner, attribute, original = self._undo.pop()
            setattr(owner, attribute, original)

    def take(self) -> dict[str, int]:
        """The own time per stage since the last take, in nanoseconds."""
        taken = dict(self.own)
        self.own.clear()
        return taken


def _stage_breakdown(questions: list[tuple[str, str | None]], rounds: int) -> dict[str, Any]:
    """One more pass with a fresh assistant (caches as cold as in the timed pass), stage-timed."""
    from bot import Assistant

    assistant = Assistant()
    timer = _StageTimer()
    per_reply: list[dict[str, int]] = []
    timer.install()
    try:
        for round_number in range(rounds):
            for text, session in questions:
                key = f"stages-{round_number}-{session}" if session else None
                assistant.reply(text, session=key)
                per_reply.append(timer.take())
    finally:
        timer.remove()
    totals = [sum(r.values()) for r in per_reply]
    grand = sum(totals) or 1
    stages = {}
    for stage in _STAGES:
        values = sorted(r.get(stage, 0) for r in per_reply)
        stages[stage] = {
            "share_pct": round(100 * sum(values) / grand, 1),
            "mean_us": round(statistics.fmean(values) / 1000, 1),
            "p50_us": round(statistics.median(values) / 1000, 1),
            "p99_us": round(_p99(values) / 1000, 1),
            "calls_per_reply": round(timer.calls[stage] / len(per_reply), 2),
        }
    return {"instrumented_mean_ms": round(statistics.fmean(totals) / 1e6, 3), "stages": stages}


def _p99(values: list[Any]) -> Any:
    return values[max(0, int(len(values) * 0.99) - 1)]


def _peak_rss_mb() -> float:
    try:
        import resource

        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    except ImportError:  # pragma: no cover - not on POSIX
        return float("nan")


def main() -> int:
    """Run the benchmark and print the figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=ROOT / "tests" / "data" / "dev.jsonl")
    parser.add_argument(
        "--rounds", type=int, default=1, help="passes over the questions (later ones hit caches)"
    )
    parser.add_argument("--cold-runs", type=int, default=3, help="fresh processes for cold start")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    parser.add_argument("--no-stages", action="store_true", help="skip the per-stage pass")
    args = parser.parse_args()

    sys.path.insert(0, str(ROOT))
    started = time.perf_counter()
    from bot import Assistant

    assistant = Assistant()
    build_seconds = time.perf_counter() - started
    questions = _questions(args.data)
    import spacy

    blank = spacy.blank("en")

    latencies, cpu_latencies, blank_latencies, blank_cpu = [], [], [], []
    replying = 0.0
    for round_number in range(args.rounds):
        for text, session in questions:
            key = f"bench-{round_number}-{session}" if session else None
            t0, c0 = time.perf_counter(), time.process_time()
            assistant.reply(text, session=key)
            latencies.append((time.perf_counter() - t0) * 1000)
            cpu_latencies.append((time.process_time() - c0) * 1000)
            replying += latencies[-1] / 1000
            # Right after the reply on the same text, so that both see the same load on a
            # shared machine and the ratio stays steady when the absolute figures do not.
            t0, c0 = time.perf_counter(), time.process_time()
            blank(text)
            blank_latencies.append((time.perf_counter() - t0) * 1000)
            blank_cpu.append((time.process_time() - c0) * 1000)
    for values in (latencies, cpu_latencies, blank_latencies, blank_cpu):
        values.sort()
    peak_rss = _peak_rss_mb()  # before the stage pass builds a second assistant
    stages = None if args.no_stages else _stage_breakdown(questions, args.rounds)
    cold, cold_cpu = _cold_start(args.cold_runs)
    p99 = _p99

    figures = {
        "questions": len(questions) * args.rounds,
        "p50_ms": round(statistics.median(latencies), 3),
        # Set against stages_instrumented_mean_ms, it shows what the stage timers add.
        "mean_ms": round(statistics.fmean(latencies), 3),
        "p99_ms": round(p99(latencies), 3),
        "max_ms": round(latencies[-1], 3),
        "cpu_p50_ms": round(statistics.median(cpu_latencies), 3),
        "cpu_p99_ms": round(p99(cpu_latencies), 3),
        "replies_per_second": round(len(latencies) / replying, 1),
        "spacy_blank_p50_ms": round(statistics.median(blank_latencies), 4),
        "spacy_blank_p99_ms": round(p99(blank_latencies), 4),
        "reply_over_blank_p50": round(statistics.median(latencies) / statistics.median(blank_latencies), 1),
        "reply_over_blank_cpu_p50": round(statistics.median(cpu_latencies) / statistics.median(blank_cpu), 1),
        "assistant_build_s": round(build_seconds, 2),
        "cold_start_ask_s": round(statistics.median(cold), 2),
        "cold_start_ask_cpu_s": round(statistics.median(cold_cpu), 2),
        "peak_rss_mb": round(peak_rss, 1),  # the whole process: Python, spaCy, the classifier
    }
    if stages is not None:
        figures["stages_instrumented_mean_ms"] = stages["instrumented_mean_ms"]
    if args.json:
        print(json.dumps({**figures, "stages": stages["stages"] if stages else None}))
    else:
        for name, value in figures.items():
            print(f"{name:<28} {value}")
        if stages is not None:
            print(
                f"\n{'stage (own time)':<30}{'share':>7}{'mean_us':>10}{'p50_us':>9}{'p99_us':>9}{'calls':>7}"
            )
            for stage, row in stages["stages"].items():
                print(
                    f"{stage:<30}{row['share_pct']:>6}%{row['mean_us']:>10}{row['p50_us']:>9}"
                    f"{row['p99_us']:>9}{row['calls_per_reply']:>7}"
                )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
