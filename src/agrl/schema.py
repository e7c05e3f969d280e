"""The shared vocabulary of records and reasoning, defined once: every other module imports it.

Slots (what a query can ask for, in reasoning order), check values, grades, the ESCI label map, the
marker of an absent value, value normalisation, and the record schema itself: :class:`Product` and
:class:`Record` are the pydantic models that ``agrl.data.io`` validates users' files with and that
``agrl serve`` validates request bodies with (its request product adds only size bounds).
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Annotated, Any, SupportsIndex, SupportsInt

from pydantic import AfterValidator, BaseModel, ConfigDict, PlainValidator
from pydantic_core import PydanticCustomError

SLOTS: tuple[str, ...] = ("type", "for", "brand", "model", "gender", "size", "color", "price", "negation")
CHECK_VALUES: tuple[str, ...] = ("match", "equivalent", "mismatch", "unknown")
GRADES: tuple[int, ...] = (1, 2, 3, 4)
ABSENT = "-"  # a slot value one side does not state

# ESCI labels -> grades (Exact, Substitute, Complement, Irrelevant); `agrl.data.esci` explains why
# C is 2. Read-only: it is the default of every `label_map` argument.
DEFAULT_LABEL_MAP: Mapping[str, int] = MappingProxyType({"E": 4, "S": 3, "C": 2, "I": 1})
GRADE_NAMES: dict[int, str] = {grade: name for name, grade in DEFAULT_LABEL_MAP.items()}


def normalize_value(value: object) -> str:
    """Canonical slot value: lower case, single spaces, no `|` (the reasoning line's value separator)."""
    return " ".join(str(value).lower().replace("|", "/").split())


# --- the record schema ----------------------------------------------------------------------------


def shown(value: object, limit: int = 60) -> str:
    """`repr(value)` cut to `limit` characters: error messages quote the offending value, not a megabyte."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def not_blank(value: str) -> str:
    """`value` unless it is empty or only whitespace (then a validation error)."""
    if not value.strip():
        raise PydanticCustomError("blank", "expected a non-empty string, got {got}", {"got": shown(value)})
    return value


def _record_id(value: object) -> str:
    # Any scalar is an id (CSV and pandas hand over numbers); what it must not be is null or blank.
    if value is None or not str(value).strip():
        raise PydanticCustomError("record_id", "expected a non-empty id, got {got}", {"got": shown(value)})
    return str(value)


def _grade(value: object) -> int:
    """1-4 as an int, a whole float or a numeric string ("3"); bools and 2.5 are not grades."""
    grade: int | None = None
    if isinstance(value, (str, bytes, bytearray, SupportsInt, SupportsIndex)):  # what int() takes
        try:
            grade = int(value)
        except (TypeError, ValueError, OverflowError):
            pass
    if (
        grade is None
        or grade not in GRADES
        or isinstance(value, bool)
        or (isinstance(value, float) and value != grade)
    ):
        raise PydanticCustomError("grade", "expected a grade 1-4, got {got}", {"got": shown(value)})
    return grade


NonBlank = Annotated[str, AfterValidator(not_blank)]
RecordId = Annotated[str, PlainValidator(_record_id, json_schema_input_type=str | int)]
Grade = Annotated[int, PlainValidator(_grade, json_schema_input_type=int | str)]


class Product(BaseModel):
    """A record's product; the fields a prompt lists come first, in prompt order (:data:`PRODUCT_FIELDS`).

    Strict: a number is not a title and `"12"` is not a price. Keys outside the schema (an ESCI
    `description`, say) are allowed in files and ignored here.
    """

    model_config = ConfigDict(strict=True, extra="ignore")

    title: NonBlank
    category: str | None = None
    brand: str | None = None
    model: str | None = None
    color: str | None = None
    gender: str | None = None
    size: str | None = None
    price: float | None = None  # an int is a number too (strict floats take ints)
    attributes: dict | None = None
    bullets: list[str] | None = None


class Annotations(BaseModel):
    """Slot annotations: `query`, `product` and `checks` objects (any may be absent); other keys pass."""

    model_config = ConfigDict(strict=True, extra="allow")

    query: dict | None = None
    product: dict | None = None
    checks: dict | None = None


class Record(BaseModel):
    """One record of a user's file; `label` may be missing (prediction). Other keys are kept as they are."""

    model_config = ConfigDict(strict=True, extra="allow")

    id: RecordId
    query: NonBlank
    product: Product
    label: Grade | None = None
    rule: Any = None  # a deciding rule id; not checked here (a rulebook may be the user's own)
    annotations: Annotations | None = None
    reference: str | None = None


class LabelledRecord(Record):
    """A record for training and evaluation: the grade is required."""

    label: Grade


# Product fields in the order prompts list them; all are strings but `price` (a number).
PRODUCT_FIELDS: tuple[str, ...] = tuple(f for f in Product.model_fields if f not in ("attributes", "bullets"))
TEXT_PRODUCT_FIELDS: tuple[str, ...] = tuple(f for f in PRODUCT_FIELDS if f != "price")
