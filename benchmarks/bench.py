"""Benchmark: reply latency (p50, p99), replies per second, cold start, peak memory.

Run:  python benchmarks/bench.py            (uses tests/data/dev.jsonl)
      python benchmarks/bench.py --rounds 5 --json
Figures are printed, never asserted: timing belongs here, not in the test suite.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

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
    args = parser.parse_args()

    sys.path.insert(0, str(ROOT))
    started = time.perf_counter()
    from bot import Assistant

    assistant = Assistant()
    build_seconds = time.perf_counter() - started
    questions = _questions(args.data)

    latencies, cpu_latencies = [], []
    total_started = time.perf_counter()
    for round_number in range(args.rounds):
        for text, session in questions:
            key = f"bench-{round_number}-{session}" if session else None
            t0, c0 = time.perf_counter(), time.process_time()
            assistant.reply(text, session=key)
            latencies.append((time.perf_counter() - t0) * 1000)
            cpu_latencies.append((time.process_time() - c0) * 1000)
    total = time.perf_counter() - total_started
    latencies.sort()
    cpu_latencies.sort()
    cold, cold_cpu = _cold_start(args.cold_runs)

    def p99(values: list[float]) -> float:
        return values[max(0, int(len(values) * 0.99) - 1)]

    figures = {
        "questions": len(questions) * args.rounds,
        "p50_ms": round(statistics.median(latencies), 3),
        "p99_ms": round(p99(latencies), 3),
        "max_ms": round(latencies[-1], 3),
        "cpu_p50_ms": round(statistics.median(cpu_latencies), 3),
        "cpu_p99_ms": round(p99(cpu_latencies), 3),
        "replies_per_second": round(len(latencies) / total, 1),
        "assistant_build_s": round(build_seconds, 2),
        "cold_start_ask_s": round(statistics.median(cold), 2),
        "cold_start_ask_cpu_s": round(statistics.median(cold_cpu), 2),
        "peak_rss_mb": round(_peak_rss_mb(), 1),  # the whole process: Python, spaCy, the classifier
    }
    if args.json:
        print(json.dumps(figures))
    else:
        for name, value in figures.items():
            print(f"{name:<22} {value}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
