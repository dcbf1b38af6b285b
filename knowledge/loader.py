"""Read every knowledge file once, validate it, and hold the result.

All problems are collected before anything is raised, so one run of
``cgt-bot check`` shows every broken file and field, each as
``file: loc.path: message``.
"""

from __future__ import annotations

import datetime as dt
import functools
import json
import re
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel

from knowledge.cache import cache_key, cached
from knowledge.datafile import Items, Problem, display_name, read_items, read_model, validation_problems
from knowledge.errors import DataError
from knowledge.schema import (
    Approval,
    Comparison,
    Condition,
    ConditionGroup,
    Fact,
    NotCovered,
    Product,
    Source,
    Topic,
)

__all__ = [
    "DATA_DIR",
    "FACT_FIELDS",
    "KnowledgeBase",
    "Problem",
    "load_knowledge",
    "read_yaml",
    "validation_problems",
]

DATA_DIR = Path(__file__).parent / "data"

#: Product fields that hold a sourced plain-language fact; a family member inherits the ones it lacks.
FACT_FIELDS = (
    "overview",
    "uses",
    "administration",
    "side_effects",
    "serious_risks",
    "boxed_warning",
    "rems",
    "effectiveness",
    "mechanism",
    "cost",
    "access",
    "status_note",
)
_INHERITED = (*FACT_FIELDS, "technologies", "conditions", "generic_name")

_Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
M = TypeVar("M", bound=BaseModel)


def read_yaml(path: Path, root: Path) -> tuple[Any, list[Problem]]:
    """Parse one YAML file; a syntax error becomes a Problem naming the file and line.

    Parsing is the slow part of start-up, so the parsed data of each file is kept on disk
    under a key made of its bytes; the data is still validated on every start.
    """
    name = _display(path, root)
    try:
        raw = path.read_bytes()
        return _parsed(raw), []
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        line = f"line {mark.line + 1}: " if mark is not None else ""
        reason = getattr(error, "problem", None) or "not valid YAML"
        return None, [Problem(name, f"{line}{reason}")]
    except (OSError, UnicodeDecodeError) as error:
        return None, [Problem(name, f"cannot be read ({error.__class__.__name__})")]


def _parsed(raw: bytes) -> Any:
    return cached(
        "parsed",
        cache_key(raw, libraries=[yaml]),
        build=lambda: yaml.load(raw.decode("utf-8"), Loader=_Loader),
        save=_save_parsed,
        load=lambda folder: json.loads((folder / "data.json").read_text(encoding="utf-8")),
        # One entry per data file: room for every file of the data set and of a copy being edited.
        keep=1024,
    )


def _save_parsed(data: Any, folder: Path) -> None:
    (folder / "data.json").write_text(json.dumps(data, default=_json_default), encoding="utf-8")


def _json_default(value: object) -> str:
    if isinstance(value, dt.date):
        return value.isoformat()
    raise TypeError(type(value).__name__)


def _display(path: Path, root: Path) -> str:
    return display_name(path, root)


@dataclass
class KnowledgeBase:
    """Every validated fact cgt-bot knows, indexed by id.

    Attributes:
        products (dict[str, Product]): by id; family members already carry the family's facts.
        conditions (dict[str, Condition]): by id.
        groups (dict[str, ConditionGroup]): condition groups by id.
        topics (dict[str, Topic]): general ideas by id.
        comparisons (list[Comparison]): plain-language comparisons of two topics.
        not_covered (dict[str, NotCovered]): names that are not cell or gene therapies.
        sources (dict[str, Source]): sources shared by all files.
        files (dict[str, str]): which file each product, condition or topic id came from.
        broken (set[str]): ids of items that did not validate; their problem is already
            reported, so a reference to one is not reported again as unknown.
    """

    products: dict[str, Product] = field(default_factory=dict)
    conditions: dict[str, Condition] = field(default_factory=dict)
    groups: dict[str, ConditionGroup] = field(default_factory=dict)
    topics: dict[str, Topic] = field(default_factory=dict)
    comparisons: list[Comparison] = field(default_factory=list)
    not_covered: dict[str, NotCovered] = field(default_factory=dict)
    sources: dict[str, Source] = field(default_factory=dict)
    files: dict[str, str] = field(default_factory=dict)
    broken: set[str] = field(default_factory=set)

    def product(self, product_id: str) -> Product:
        """Return the product with this id (KeyError if unknown)."""
        return self.products[product_id]

    def members(self, family_id: str) -> list[Product]:
        """Products that belong to a family, such as the HPC cord blood licences."""
        return [p for p in self.products.values() if p.family == family_id]

    def listed_products(self) -> list[Product]:
        """Products to show in lists: every product except the members of a family."""
        return list(self._listed)

    @functools.cached_property
    def _listed(self) -> tuple[Product, ...]:
        # Sorted once: the knowledge base does not change once loaded, and lists are asked often.
        return tuple(
            sorted((p for p in self.products.values() if p.family is None), key=lambda p: p.brand.lower())
        )

    def products_for_condition(self, condition_id: str) -> list[Product]:
        """Listed products that treat a condition, by brand."""
        return [p for p in self.listed_products() if condition_id in p.conditions]

    def group_ancestors(self, group_id: str) -> list[str]:
        """The group and every broader group above it, nearest first."""
        chain: list[str] = []
        current: str | None = group_id
        while current is not None and current in self.groups and current not in chain:
            chain.append(current)
            current = self.groups[current].parent
        return chain

    def conditions_under(self, group_id: str) -> list[Condition]:
        """Every condition in a group or in any group below it, however deep."""
        return [c for c in self.conditions.values() if group_id in self.group_ancestors(c.group)]

    def named_in(self, text: str, pool: Iterable[Product]) -> list[Product]:
        """The products of ``pool`` whose names a text shows, in the order a person reads them."""
        found = sorted((at, p.id, p) for p in pool if (at := text.find(p.brand)) >= 0)
        return [p for _, _, p in found]

    def conditions_meant(self, conditions: Iterable[str], groups: Iterable[str]) -> set[str]:
        """The ids of the conditions named and of every condition under the groups named."""
        return set(conditions) | {c.id for g in groups for c in self.conditions_under(g)}

    def products_under(self, group_id: str) -> list[Product]:
        """Listed products that treat any condition under a group, by brand."""
        wanted = {c.id for c in self.conditions_under(group_id)}
        return [p for p in self.listed_products() if wanted & set(p.conditions)]

    def changes_since(self, since: str) -> list[tuple[str, Product, Approval]]:
        """Approvals, label changes and withdrawals dated on or after ``since``, newest first."""
        found = [
            (a.date, p, a)
            for p in self.products.values()
            if p.family is None
            for a in p.approvals
            if a.date >= since
        ]
        return sorted(found, key=lambda row: (row[0], row[1].brand), reverse=True)

    def class_members(self, topic_id: str) -> list[Product]:
        """Listed products of a class of therapy (CAR-T, AAV gene therapy...), by brand."""
        members = self._members.get(topic_id)
        if members is None:
            members = self._members[topic_id] = tuple(self._class_members(topic_id))
        return list(members)

    @functools.cached_property
    def _members(self) -> dict[str, tuple[Product, ...]]:
        # Asked of several topics in every reply; the knowledge base does not change once loaded.
        return {}

    def _class_members(self, topic_id: str) -> list[Product]:
        topic = self.topics.get(topic_id)
        if topic is None or topic.members is None:
            return []
        rule = topic.members
        return [
            p
            for p in self.listed_products()
            if set(rule.technologies) & set(p.technologies)
            or p.kind in rule.kinds
            or p.cell_source in rule.cell_sources
        ]

    @functools.cached_property
    def _product_words(self) -> dict[str, tuple[frozenset[str], frozenset[str], frozenset[str]]]:
        """Each product's maker, technology and condition words, worked out once."""
        return {
            pid: (
                frozenset(self._maker_words(pid)),
                frozenset(self._technology_words(pid)),
                frozenset(self._condition_words(pid)),
            )
            for pid in self.products
        }

    def descriptors(self, product_id: str) -> set[str]:
        """Lowercase words a person may use to pick a product out of a list ("the one from BMS").

        The maker's name and the companies in its history, with their initials ("Bristol Myers
        Squibb": bms), and the names and aliases of the product's technologies ("the CRISPR one").
        """
        return set(self.maker_words(product_id) | self.technology_words(product_id))

    def maker_words(self, product_id: str) -> frozenset[str]:
        """The words of the maker's name and history, with initials ("bms", "j&j")."""
        return self._product_words[product_id][0]

    def technology_words(self, product_id: str) -> frozenset[str]:
        """The words of the names and aliases of the product's technologies ("crispr", "lentiviral")."""
        return self._product_words[product_id][1]

    def condition_words(self, product_id: str) -> frozenset[str]:
        """Lowercase words of what a product treats, to pick it out ("the prostate one")."""
        return self._product_words[product_id][2]

    def _maker_words(self, product_id: str) -> set[str]:
        product = self.products[product_id]
        names: list[str] = []
        if product.maker is not None:
            names += [product.maker.name, *(c.company for c in product.maker.history)]
            names += [c.to for c in product.maker.history if c.to]
        words: set[str] = set()
        for name in names:
            parts = re.findall(r"[A-Za-z][A-Za-z&]+", name.split("(")[0])
            capitals = [w for w in parts if w[0].isupper()]
            # "bio" of "bluebird bio" or "Inc" names nothing; "CSL" or "Kite" do.
            words |= {w.lower() for w in parts if len(w) >= 4 or w.isupper()}
            if len(capitals) >= 2:
                words.add("".join(w[0] for w in capitals).lower())
            # "Johnson & Johnson" is "J&J".
            words |= {f"{a[0]}&{b[0]}".lower() for a, b in re.findall(r"\b([A-Z]\w*) & ([A-Z]\w*)", name)}
        return words

    def _technology_words(self, product_id: str) -> set[str]:
        words: set[str] = set()
        for tech in self.products[product_id].technologies:
            topic = self.topics.get(tech)
            if topic is not None:
                for name in (topic.name, *topic.aliases):
                    words |= set(re.findall(r"[a-z0-9]+", name.lower()))
        return words

    def _condition_words(self, product_id: str) -> set[str]:
        names = [
            name
            for cid in self.products[product_id].conditions
            if (condition := self.conditions.get(cid)) is not None
            for name in (condition.name, *condition.aliases)
        ]
        return {w for name in names for w in re.findall(r"[a-z]{3,}", name.lower())}

    @functools.cached_property
    def _mark_counts(self) -> Counter[str]:
        """How many listed products carry each word of maker, technology or use."""
        return Counter(
            w
            for p in self.listed_products()
            for w in self.maker_words(p.id) | self.technology_words(p.id) | self.condition_words(p.id)
        )

    def described(
        self,
        words: set[str],
        pool: list[Product],
        most: int | None = None,
        uses: bool = True,
        ordinary: frozenset[str] = frozenset(),
    ) -> list[Product]:
        """The products of ``pool`` that ``words`` describe best: by maker, technology or use.

        Only words that tell products apart count: not one every product of the pool shares, nor
        (when ``most`` is given) one that more than ``most`` products carry ("therapeutics").
        Without ``uses``, only the maker and the technology count; an ``ordinary`` word counts
        only as a maker's name ("Vertex", "Kite"), never as a technology's ("DNA", "change").
        Empty when no word counts.
        """
        marks = {
            p.id: set(self.maker_words(p.id))
            | (self.technology_words(p.id) - ordinary)
            | (self.condition_words(p.id) if uses else set())
            for p in pool
        }
        shared = set.intersection(*marks.values()) if marks else set()
        telling = {w for w in words if most is None or self._mark_counts[w] <= most} - shared
        scores = {pid: len(telling & found) for pid, found in marks.items()}
        best = max(scores.values(), default=0)
        return [p for p in pool if best and scores[p.id] == best]

    def comparison(self, first: str, second: str) -> Comparison | None:
        """The written comparison of two topics, in either order, if there is one."""
        wanted = {first, second}
        return next((c for c in self.comparisons if set(c.topics) == wanted), None)

    def source(self, key: str, owner: Product | Condition | Topic | None = None) -> Source | None:
        """Resolve a fact's source id: the owner's own sources first, then the shared ones."""
        if owner is not None and key in owner.sources:
            return owner.sources[key]
        return self.sources.get(key)

    def fact_sources(self, fact: Fact, owner: Product | Condition | Topic | None = None) -> list[Source]:
        """Every source a fact rests on, in order, skipping none."""
        return [s for key in fact.sources if (s := self.source(key, owner)) is not None]

    @property
    def last_reviewed(self) -> str:
        """The most recent review date of any product."""
        return max((p.last_reviewed for p in self.products.values()), default="")

    def references(self) -> Iterator[Problem]:
        """Cross-file checks: every id a file names exists and every fact has a known source."""
        for pid, product in self.products.items():
            yield from self._product_refs(self.files.get(pid, pid), product)
        for cid, condition in self.conditions.items():
            where = self.files.get(cid, cid)
            if self._unknown(condition.group, self.groups):
                yield Problem(where, f"group: unknown condition group '{condition.group}'")
            if condition.description:
                yield from self._fact_refs(where, "description", condition.description, condition)
        for gid, group in self.groups.items():
            if group.parent is not None and self._unknown(group.parent, self.groups):
                where = f"{self.files.get('#condition_groups', 'condition_groups.yaml')}: {gid}"
                yield Problem(where, f"parent: unknown condition group '{group.parent}'")
            elif group.parent is not None and gid in self.group_ancestors(group.parent):
                where = f"{self.files.get('#condition_groups', 'condition_groups.yaml')}: {gid}"
                yield Problem(where, "parent: groups form a loop")
        for tid, topic in self.topics.items():
            yield from self._topic_refs(self.files.get(tid, tid), topic)
        for i, comparison in enumerate(self.comparisons):
            where = f"{self.files.get('#comparisons', 'comparisons.yaml')}: {i}"
            for tid in comparison.topics:
                if self._unknown(tid, self.topics):
                    yield Problem(where, f"topics: unknown topic id '{tid}'")
            yield from self._fact_refs(where, "text", comparison.text, None)
        for nid, item in self.not_covered.items():
            if item.note:
                yield from self._fact_refs(
                    self.files.get("#not_covered", nid), f"{nid}.note", item.note, None
                )

    def _product_refs(self, where: str, product: Product) -> Iterator[Problem]:
        if product.family and self._unknown(product.family, self.products):
            yield Problem(where, f"family: unknown product id '{product.family}'")
        for tid in product.technologies:
            if self._unknown(tid, self.topics):
                yield Problem(where, f"technologies: unknown topic id '{tid}'")
        for cid in product.conditions:
            if self._unknown(cid, self.conditions):
                yield Problem(where, f"conditions: unknown condition id '{cid}'")
        for name, fact in self._sourced_entries(product):
            for key in fact.sources:
                if self._unsourced(key, product):
                    yield Problem(where, f"{name}.sources: unknown source id '{key}'")

    @staticmethod
    def _sourced_entries(product: Product) -> list[tuple[str, Any]]:
        """Every entry of a product that names sources, with the field it sits in."""
        facts: list[tuple[str, Any]] = [(n, getattr(product, n)) for n in FACT_FIELDS]
        facts += [(f"approvals.{i}", a) for i, a in enumerate(product.approvals)]
        facts.append(("maker", product.maker))
        facts.append(("ages", product.ages))
        if product.maker is not None:
            facts += [(f"maker.history.{i}", c) for i, c in enumerate(product.maker.history)]
        return [(name, fact) for name, fact in facts if fact is not None]

    def _topic_refs(self, where: str, topic: Topic) -> Iterator[Problem]:
        yield from self._fact_refs(where, "definition", topic.definition, topic)
        for aspect, fact in topic.aspects.items():
            yield from self._fact_refs(where, f"aspects.{aspect}", fact, topic)
        for rid in topic.members.technologies if topic.members else []:
            if self._unknown(rid, self.topics):
                yield Problem(where, f"members.technologies: unknown topic id '{rid}'")
        for i, fact in enumerate(topic.more):
            yield from self._fact_refs(where, f"more.{i}", fact, topic)
        for rid in topic.related:
            if self._unknown(rid, self.topics):
                yield Problem(where, f"related: unknown topic id '{rid}'")

    def _fact_refs(self, where: str, name: str, fact: Fact, owner: Any) -> Iterator[Problem]:
        for key in fact.sources:
            if self._unsourced(key, owner):
                yield Problem(where, f"{name}.sources: unknown source id '{key}'")

    def _unknown(self, key: str, table: dict[str, Any]) -> bool:
        """Whether a reference names nothing: neither a loaded item nor one already reported broken."""
        return key not in table and key not in self.broken

    def _unsourced(self, key: str, owner: Any) -> bool:
        return self.source(key, owner) is None and key not in self.broken

    def stale(self, today: dt.date | None = None, max_age_days: int = 365) -> Iterator[Problem]:
        """Warnings for products whose ``last_reviewed`` is more than a year old."""
        today = today or dt.date.today()
        for pid, product in self.products.items():
            parts = [int(x) for x in product.last_reviewed.split("-")] + [1, 1]
            reviewed = dt.date(parts[0], parts[1], parts[2])
            if (today - reviewed).days > max_age_days:
                yield Problem(
                    self.files.get(pid, pid),
                    f"last_reviewed: {product.last_reviewed} is over a year ago; please review",
                    "warning",
                )


def _inherit(product: Product, family: Product) -> Product:
    """Fill what a family member leaves out from its family, so answers need no special case."""
    update: dict[str, Any] = {}
    for name in _INHERITED:
        if getattr(product, name) in (None, [], ""):
            update[name] = getattr(family, name)
    update["sources"] = {**family.sources, **product.sources}
    return product.model_copy(update=update)


def _files(directory: Path) -> Iterable[Path]:
    return sorted(directory.glob("*.yaml")) if directory.is_dir() else []


def _one_per_file(
    root: Path, folder: str, model: type[M], kb: KnowledgeBase
) -> tuple[dict[str, M], list[Problem]]:
    """Every file of a folder that holds one item each, by id; the file name is the id."""
    found: dict[str, M] = {}
    problems: list[Problem] = []
    for path in _files(root / folder):
        name = display_name(path, root)
        item, errors = read_model(path, root, model)
        problems.extend(errors)
        if item is None:
            kb.broken.add(path.stem)
            continue
        item_id = item.id  # type: ignore[attr-defined]
        if item_id != path.stem:
            problems.append(Problem(name, f"id: '{item_id}' does not match the file name '{path.stem}'"))
        if item_id in found:
            problems.append(Problem(name, f"id: '{item_id}' is also defined in {kb.files[item_id]}"))
        found[item_id] = item
        kb.files[item_id] = name
    return found, problems


def _listing(root: Path, filename: str, model: type[M], kb: KnowledgeBase, **shape: Any) -> Items[M]:
    """A file of many items, each validated on its own (see ``read_items``)."""
    path = root / filename
    if not path.exists():
        return Items()
    kb.files[f"#{path.stem}"] = display_name(path, root)
    items = read_items(path, root, model, **shape)
    kb.broken |= items.broken
    return items


def collect(root: Path = DATA_DIR) -> tuple[KnowledgeBase, list[Problem]]:
    """Load every file under ``root``; return what loaded and every problem found."""
    kb = KnowledgeBase()
    problems: list[Problem] = []
    kb.products, errors = _one_per_file(root, "products", Product, kb)
    problems += errors
    kb.conditions, errors = _one_per_file(root, "conditions", Condition, kb)
    problems += errors
    kb.topics, errors = _one_per_file(root, "topics", Topic, kb)
    problems += errors
    listings = (
        groups := _listing(root, "condition_groups.yaml", ConditionGroup, kb, key="id"),
        comparisons := _listing(root, "comparisons.yaml", Comparison, kb),
        not_covered := _listing(root, "not_covered.yaml", NotCovered, kb, key="id"),
        sources := _listing(root, "sources.yaml", Source, kb, mapping=True),
    )
    for items in listings:
        problems += items.problems
    kb.groups = groups.valid
    kb.comparisons = list(comparisons.valid.values())
    kb.not_covered = not_covered.valid
    kb.sources = sources.valid

    for pid, product in list(kb.products.items()):
        if product.family and product.family in kb.products:
            kb.products[pid] = _inherit(product, kb.products[product.family])
    problems.extend(kb.references())
    return kb, problems


def load_knowledge(root: Path = DATA_DIR) -> KnowledgeBase:
    """Load and validate the knowledge base; raise DataError listing every problem if any."""
    kb, problems = collect(root)
    errors = [str(p) for p in problems if p.severity == "error"]
    if errors:
        raise DataError(errors)
    return kb
