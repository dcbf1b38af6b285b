"""The shape of every knowledge file, as pydantic models.

These models are the single source of truth for what a data file may hold.
The loader validates each YAML file against them and reports every problem as
``file: loc.path: message``.
"""

from __future__ import annotations

import datetime as dt
import re
from typing import Annotated, Literal

from pydantic import (
    BeforeValidator,
    Field,
    StringConstraints,
    field_validator,
    model_validator,
)

from knowledge.datafile import DataModel

__all__ = [
    "DATE",
    "SLUG",
    "Approval",
    "Aspect",
    "BoxedWarning",
    "Comparison",
    "Condition",
    "ConditionGroup",
    "DateText",
    "Fact",
    "KnowledgeModel",
    "Maker",
    "MakerChange",
    "Membership",
    "NotCovered",
    "Product",
    "Rems",
    "Source",
    "Topic",
]

SLUG = r"^[a-z0-9]+(-[a-z0-9]+)*$"
DATE = r"^\d{4}(-\d{2}(-\d{2})?)?$"


def _date_text(value: object) -> object:
    """YAML reads 2024-04-18 as a date and 2026 as a number; both are kept as text."""
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    return value


#: A date written YYYY, YYYY-MM or YYYY-MM-DD: only as precise as the source is.
DateText = Annotated[str, BeforeValidator(_date_text), StringConstraints(pattern=DATE)]

Kind = Literal["cell therapy", "gene therapy", "cell-based gene therapy"]
CellSource = Literal["own", "donor", "none"]
Status = Literal["marketed", "discontinued", "withdrawn", "licensed"]


class KnowledgeModel(DataModel):
    """Base for every knowledge model (the data-file settings of ``DataModel``); answers tell
    knowledge objects, which carry facts and sources, from other data by this class."""


class Source(KnowledgeModel):
    """Where a fact comes from: a page, a label or a document, with its date."""

    title: str = Field(min_length=3)
    url: str | None = None
    document: str | None = None
    date: DateText = Field(description="Publication or revision date, YYYY[-MM[-DD]].")

    @field_validator("url")
    @classmethod
    def _url_is_web(cls, value: str | None) -> str | None:
        if value is not None and not re.match(r"^https?://", value):
            raise ValueError("url must start with http:// or https://")
        return value


class Fact(KnowledgeModel):
    """One piece of plain-language text and the ids of the sources it rests on."""

    text: str = Field(min_length=10)
    sources: list[str] = Field(min_length=1)


class BoxedWarning(KnowledgeModel):
    """Whether the current label has a boxed warning (the FDA's strongest warning), and what it
    covers. ``present: false`` is a checked fact too, with the label it was checked on as source;
    a product whose label could not be checked leaves the whole field out.
    """

    present: bool
    text: str | None = Field(default=None, min_length=10, description="What the warning covers.")
    sources: list[str] = Field(min_length=1)

    @model_validator(mode="after")
    def _text_when_present(self) -> BoxedWarning:
        if self.present and self.text is None:
            raise ValueError("a boxed warning that is present needs 'text': what it covers")
        return self


#: A product's REMS (an FDA safety program): never had one, has one now, or had one that FDA ended.
RemsStatus = Literal["none", "active", "ended"]


class Rems(KnowledgeModel):
    """Whether a product must be given under a REMS, and until when; ``text`` adds what changed."""

    status: RemsStatus
    ended: DateText | None = Field(default=None, description="When FDA ended it (status 'ended').")
    text: str | None = Field(default=None, min_length=10)
    sources: list[str] = Field(min_length=1)

    @model_validator(mode="after")
    def _ended_only_when_ended(self) -> Rems:
        if (self.status == "ended") != (self.ended is not None):
            raise ValueError("give 'ended' (the date) exactly when status is 'ended'")
        return self


class Approval(KnowledgeModel):
    """One dated regulatory event: first approval, a new use, a label change."""

    date: DateText
    change: str = Field(min_length=5, description="Plain words, e.g. 'Approved for adults with ...'.")
    sources: list[str] = Field(min_length=1)


#: How the company behind a product changed: it took a new name, it was bought, it was merged
#: into another company, or it sold the product itself to another company.
ChangeKind = Literal["renamed", "acquired", "merged", "product_sold"]


class MakerChange(KnowledgeModel):
    """One dated change in who makes a product, told as what happened, never as a former name.

    ``company`` is the company the change happened to: the old name (renamed), the company bought
    (acquired), the company merged in (merged) or the seller of the product (product_sold). ``to``
    is the other side: the new name, the buyer, the company merged into, or the product's buyer;
    left out, it is the maker's own name.
    """

    kind: ChangeKind
    company: str = Field(min_length=2)
    to: str | None = None
    date: DateText
    sources: list[str] = Field(min_length=1)


class Ages(KnowledgeModel):
    """The ages in years the approved uses cover, all uses together: from ``youngest`` up to, not
    including, ``below``. Left out, a bound is not set by the label ("adults" is youngest 18; "up
    to 25 years old" is below 26; "younger than 2" is below 2). A product whose label sets no age
    leaves the whole field out.
    """

    youngest: float | None = Field(default=None, ge=0)
    below: float | None = Field(default=None, gt=0)
    sources: list[str] = Field(min_length=1)

    @model_validator(mode="after")
    def _a_range(self) -> Ages:
        if self.youngest is not None and self.below is not None and self.youngest >= self.below:
            raise ValueError("'youngest' must be below 'below'")
        return self

    def overlaps(self, youngest: float, below: float | None) -> bool:
        """Whether anyone aged from ``youngest`` to ``below`` (None: any older) may get it."""
        return (self.below is None or youngest < self.below) and (
            below is None or (self.youngest or 0) < below
        )


class Maker(KnowledgeModel):
    """The company that makes a product today, and the dated changes that led to it, oldest first."""

    name: str
    history: list[MakerChange] = []
    sources: list[str] = Field(min_length=1)

    @field_validator("history")
    @classmethod
    def _oldest_first(cls, value: list[MakerChange]) -> list[MakerChange]:
        if [c.date for c in value] != sorted(c.date for c in value):
            raise ValueError("history must be in date order, oldest first")
        return value


class Product(KnowledgeModel):
    """An FDA-approved cell or gene therapy product (or a family of licences)."""

    id: str = Field(pattern=SLUG)
    brand: str
    generic_name: str | None = None
    aliases: list[str] = []
    kind: Kind
    cell_source: CellSource
    technologies: list[str] = Field(default=[], description="Topic ids, e.g. car-t, aav-vector.")
    conditions: list[str] = Field(default=[], description="Condition ids this product treats.")
    ages: Ages | None = None
    family: str | None = Field(default=None, description="Id of a family product to inherit facts from.")
    status: Status = "marketed"
    first_approval: DateText | None = None
    approvals: list[Approval] = []
    maker: Maker | None = None
    overview: Fact | None = None
    uses: Fact | None = None
    administration: Fact | None = None
    side_effects: Fact | None = None
    serious_risks: Fact | None = None
    boxed_warning: BoxedWarning | None = None
    rems: Rems | None = None
    effectiveness: Fact | None = None
    mechanism: Fact | None = None
    cost: Fact | None = None
    access: Fact | None = None
    status_note: Fact | None = None
    sources: dict[str, Source] = {}
    last_reviewed: DateText


class Condition(KnowledgeModel):
    """A disease or situation people ask about; products point to it by id."""

    id: str = Field(pattern=SLUG)
    name: str
    aliases: list[str] = []
    group: str = Field(pattern=SLUG, description="A condition group id, e.g. blood-cancer.")
    description: Fact | None = None
    sources: dict[str, Source] = {}


class ConditionGroup(KnowledgeModel):
    """An umbrella term over conditions ("lymphoma", "blood cancer"), itself under a broader one.

    A question about a group answers for every condition under it, however deep:
    marginal zone lymphoma -> non-Hodgkin lymphoma -> lymphoma -> blood cancer -> cancer.
    """

    id: str = Field(pattern=SLUG)
    name: str
    aliases: list[str] = []
    parent: str | None = Field(default=None, pattern=SLUG, description="The broader group's id.")


#: The aspects of a whole class of therapy that a product question can ask about.
Aspect = Literal[
    "overview",
    "uses",
    "administration",
    "side_effects",
    "effectiveness",
    "access",
    "cost",
    "category",
    "mechanism",
    "approval",
    "maker",
]


class Membership(KnowledgeModel):
    """Which products belong to a class of therapy: any listed technology or kind makes one."""

    technologies: list[str] = Field(default=[], description="Topic ids in a product's technologies.")
    kinds: list[Kind] = []
    cell_sources: list[CellSource] = Field(default=[], description="Whose cells: own, donor.")


class Topic(KnowledgeModel):
    """A general idea people ask about: a kind of therapy, a risk, cost, trials.

    A topic that is a class of therapy (CAR-T, AAV gene therapy) has ``members``, and may have
    ``aspects``: what holds for the whole class, so that "side effects of CAR-T?" is answered
    from sourced class facts and the list of the class's products.
    """

    id: str = Field(pattern=SLUG)
    name: str
    aliases: list[str] = []
    definition: Fact
    more: list[Fact] = Field(default=[], description="Further facts shown after the definition.")
    related: list[str] = Field(default=[], description="Related topic ids.")
    weak: bool = Field(
        default=False,
        description="An everyday idea (cost, insurance) whose name alone is no sign of this domain.",
    )
    keep_words: bool = Field(
        default=False,
        description="Keep the name's words for the classifier: they say what is asked (clinical trials).",
    )
    product_fact: Literal["boxed_warning", "rems"] | None = Field(
        default=None,
        description="The product field that answers this term for one product ('does Kymriah need a REMS?').",
    )
    members: Membership | None = None
    aspects: dict[Aspect, Fact] = Field(default={}, description="Facts that hold for the whole class.")
    sources: dict[str, Source] = {}


class Comparison(KnowledgeModel):
    """How two general topics differ, in plain words."""

    topics: list[str] = Field(min_length=2, max_length=2)
    text: Fact


class NotCovered(KnowledgeModel):
    """A name people may ask about that is not an FDA-approved cell or gene therapy."""

    id: str = Field(pattern=SLUG)
    name: str
    aliases: list[str] = []
    kind: Literal["acellular product", "other medicine"]
    note: Fact | None = None
