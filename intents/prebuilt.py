"""Calibration results shipped with the package, so that a fresh install answers within seconds.

Most of a first start's training time went to work whose results are small and depend only on
files of this repository: masking every catalog example through the name resolver, fitting a
model on four fifths of the examples to find the calibration temperature, and fitting the
emergency model on four fifths of its examples to set its threshold. ``data/prebuilt.json``
holds those results, each under a content key of the data they come from (every example,
name, setting and the spaCy version; the disk cache adds the training code to it); a start whose
key matches takes them from there and fits only the final models, byte for byte the models a full
training gives. Any other start (an edited catalog, another spaCy) trains from scratch as before,
so a stale file costs time, never answers.

Regenerate after editing the catalog, the knowledge names or the safety data:
``python scripts/make_prebuilt.py``; ``tests/intents/test_prebuilt.py`` fails while it is stale.
"""

from __future__ import annotations

import functools
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from intents.matcher import IntentMatcher
    from knowledge.resolver import Resolver

__all__ = ["PATH", "generate", "read", "write"]

PATH = Path(__file__).resolve().parent / "data" / "prebuilt.json"


@functools.cache
def _load(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):  # missing or broken: everything is trained, as without it
        return {}
    return data if isinstance(data, dict) else {}


def read(section: str, key: str, path: Path | None = None) -> dict[str, Any] | None:
    """The shipped results of ``section`` ("intents" or "emergency") if made from the same inputs."""
    entry = _load(path or PATH).get(section)
    if not isinstance(entry, dict) or entry.get("key") != key:
        return None
    return entry


def generate(matcher: IntentMatcher, resolver: Resolver) -> dict[str, Any]:
    """Both sections, computed from scratch (never from the shipped file or a cache)."""
    return {
        "generated_by": "python scripts/make_prebuilt.py",
        "intents": matcher.calibration(resolver),
        "emergency": matcher.screen.calibration(),
    }


def write(results: dict[str, Any], path: Path | None = None) -> None:
    """Save ``results`` as the shipped file: sorted keys and one value a line, for readable diffs."""
    (path or PATH).write_text(
        json.dumps(results, indent=1, sort_keys=True, ensure_ascii=False) + "\n", encoding="utf-8"
    )
    _load.cache_clear()
