"""The loader validates every file and names file and field on any error."""

from __future__ import annotations

from pathlib import Path

import pytest

from knowledge import DataError, collect, load_knowledge


def test_loader_loads_every_packaged_file_without_problems() -> None:
    kb, problems = collect()
    assert [str(p) for p in problems if p.severity == "error"] == []
    assert len(kb.products) >= 40
    assert {"kymriah", "zolgensma", "luxturna", "casgevy", "hpc-cord-blood"} <= set(kb.products)


def test_loader_names_file_and_field_of_a_bad_value(data_copy: Path) -> None:
    path = data_copy / "products" / "kymriah.yaml"
    path.write_text(path.read_text().replace("kind: cell-based gene therapy", "kind: magic"))
    with pytest.raises(DataError) as info:
        load_knowledge(data_copy)
    assert "products/kymriah.yaml: kind:" in str(info.value)


def test_loader_rejects_misspelt_keys(data_copy: Path) -> None:
    path = data_copy / "products" / "zolgensma.yaml"
    path.write_text(path.read_text() + "pricee: 1\n")
    with pytest.raises(DataError, match=r"zolgensma.yaml: pricee: Extra inputs are not permitted"):
        load_knowledge(data_copy)


def test_loader_reports_yaml_syntax_with_line(data_copy: Path) -> None:
    (data_copy / "topics" / "cost.yaml").write_text("id: cost\nname: [unclosed\n")
    with pytest.raises(DataError, match=r"topics/cost.yaml: line \d+"):
        load_knowledge(data_copy)


def test_loader_reports_unknown_source_ids(data_copy: Path) -> None:
    path = data_copy / "products" / "luxturna.yaml"
    text = path.read_text()
    path.write_text(text.replace("sources: [", "sources: [no-such-source, ", 1))
    with pytest.raises(DataError, match="unknown source id 'no-such-source'"):
        load_knowledge(data_copy)


def test_loader_collects_every_problem_at_once(data_copy: Path) -> None:
    for name in ("kymriah", "yescarta"):
        path = data_copy / "products" / f"{name}.yaml"
        path.write_text(path.read_text().replace("cell_source: own", "cell_source: mine"))
    _kb, problems = collect(data_copy)
    where = {p.where for p in problems}
    assert any("kymriah" in w for w in where) and any("yescarta" in w for w in where)


def test_loader_family_members_inherit_the_family_facts() -> None:
    kb = load_knowledge()
    members = kb.members("hpc-cord-blood")
    assert len(members) >= 5
    family = kb.product("hpc-cord-blood")
    for member in members:
        assert member.overview == family.overview
        assert member.maker is not None and member.maker != family.maker


def test_loader_every_fact_has_a_resolvable_source() -> None:
    kb = load_knowledge()
    for product in kb.products.values():
        for name in ("overview", "uses", "administration", "side_effects", "cost", "effectiveness"):
            fact = getattr(product, name)
            if fact is not None:
                assert kb.fact_sources(fact, product), f"{product.id}.{name}"
