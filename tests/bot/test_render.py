"""The folder of compiled templates follows the disk cache's rules (bot.render)."""

from __future__ import annotations

import shutil
from pathlib import Path

from bot.render import bytecode_folder
from intents.catalog import load_catalog


def test_compiled_templates_get_a_new_folder_when_a_template_changes(
    empty_cache: Path, tmp_path: Path
) -> None:
    responses = tmp_path / "responses"
    shutil.copytree(load_catalog().responses_dir, responses)
    first = bytecode_folder(responses)
    assert first is not None and first.parent == empty_cache / "templates"
    assert bytecode_folder(responses) == first
    template = next(responses.glob("*.j2"))
    template.write_text(template.read_text(encoding="utf-8") + "\n", encoding="utf-8")
    second = bytecode_folder(responses)
    assert second is not None and second != first
    assert sorted(p.name for p in (empty_cache / "templates").iterdir()) == sorted([first.name, second.name])
