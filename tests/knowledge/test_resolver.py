"""Names are found with typos, spacing and signs; common words never become products."""

from __future__ import annotations

import pytest

from bot import Assistant


@pytest.mark.parametrize(
    ("text", "product"),
    [
        ("kymria side effects", "kymriah"),
        ("zolgenzma price", "zolgensma"),
        ("luxterna for blindness", "luxturna"),
        ("is yes carta a car t", "yescarta"),
        ("YESCARTA", "yescarta"),
        ("Kymriah® cost", "kymriah"),
        ("Zolgensma™", "zolgensma"),
        ("what is tisa-cel", "kymriah"),
        ("what is tisacel", "kymriah"),
        ("axi-cel vs", "yescarta"),
        ("ide cel", "abecma"),
        ("cilta-cel", "carvykti"),
        ("liso-cel", "breyanzi"),
        ("brexu-cel", "tecartus"),
        ("beti-cel", "zynteglo"),
        ("eli-cel", "skysona"),
        ("T-VEC for melanoma", "imlygic"),
        ("sipuleucel-T", "provenge"),
        ("tisagenlecleucel", "kymriah"),
        ("voretigene neparvovec-rzyl", "luxturna"),
        ("voretigene neparvovec", "luxturna"),
        ("Cagevy for sickle cell", "casgevy"),
        ("Lygenia", "lyfgenia"),
        ("exa-cel", "casgevy"),
        ("lovo-cel", "lyfgenia"),
        ("MACI knee", "maci"),
    ],
)
def test_resolver_finds_products_despite_typos(assistant: Assistant, text: str, product: str) -> None:
    assert product in assistant.resolver.resolve(text).ids("product")


@pytest.mark.parametrize(
    "text",
    [
        "my car broke down",
        "cell phone plans",
        "gene wilder movies",
        "yes please",
        "max out my card",
        "revenge movies",
        "i want to maximize my savings",
        "the macintosh computer",
        "later today",
        "elevate your mood",
    ],
)
def test_resolver_never_matches_common_words(assistant: Assistant, text: str) -> None:
    resolution = assistant.resolver.resolve(text)
    assert resolution.ids("product") == []
    assert resolution.did_you_mean == []


@pytest.mark.parametrize("text", ["keytruda", "ozempic dose", "humira side effects", "insulin price"])
def test_resolver_keeps_other_medicines_apart(assistant: Assistant, text: str) -> None:
    resolution = assistant.resolver.resolve(text)
    assert resolution.ids("product") == []
    assert resolution.ids("other")


def test_resolver_asks_back_when_a_name_is_shared(assistant: Assistant) -> None:
    resolution = assistant.resolver.resolve("what is onasemnogene abeparvovec")
    assert set(resolution.did_you_mean) == {"zolgensma", "itvisma"}
    assert resolution.ids("product") == []


def test_resolver_every_alias_resolves_to_its_product(assistant: Assistant) -> None:
    kb = assistant.knowledge
    for product in kb.products.values():
        for alias in [product.brand, *product.aliases]:
            targets = {i for k, i in assistant.resolver.lookup(alias) if k == "product"}
            assert targets == {product.id}, f"{alias!r} -> {targets}"


def test_resolver_no_alias_leads_to_two_products(assistant: Assistant) -> None:
    kb = assistant.knowledge
    explicit: dict[str, set[str]] = {}
    for product in kb.products.values():
        for alias in [product.brand, *product.aliases]:
            explicit.setdefault(" ".join(alias.lower().split()), set()).add(product.id)
    assert {a: p for a, p in explicit.items() if len(p) > 1} == {}


def test_resolver_finds_conditions_by_lay_names(assistant: Assistant) -> None:
    cases = {
        "sickle cell anemia": "sickle-cell-disease",
        "thalassaemia": "beta-thalassemia",
        "haemophilia b": "hemophilia-b",
        "dmd": "duchenne-muscular-dystrophy",
        "sma type 1": "spinal-muscular-atrophy",
        "multiple myeloma": "multiple-myeloma",
    }
    for text, condition in cases.items():
        assert condition in assistant.resolver.resolve(f"is there a treatment for {text}").ids("condition"), (
            text
        )


def test_resolver_names_cut_short_are_found_as_a_pass_over_every_name_finds_them(
    assistant: Assistant,
) -> None:
    resolver = assistant.resolver
    one_word = [form for form in resolver.names if " " not in form]
    queries = {form[:cut] for form in one_word for cut in range(1, len(form) + 1)} | {"zolgens", "xyzzyq"}
    for query in queries:
        scanned = {
            target
            for form in one_word
            if form.startswith(query) and len(form) - len(query) <= 4
            for target in resolver.names[form]
        }
        found = resolver._cut_short.get(query, set()) if len(query) >= 5 else set()
        assert found == (scanned if len(query) >= 5 else set()), query
