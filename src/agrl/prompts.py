"""Prompts as chat messages (TRL's conversational format).

The prompt carries the query and the product's fields; optionally a rulebook summary and, during
adaptive replay only, a guidance hint. Evaluation and serving never pass a hint.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from agrl.rules import Rulebook
from agrl.schema import PRODUCT_FIELDS

SYSTEM = (
    "You judge the relevance of a product to a shopping query. Analyse the query slots, the product "
    "slots, check each slot, name the deciding rule, then answer with a grade 1-4."
)


def _one_line(value: object) -> str:
    """A field value on one line: a line break inside a title must not forge a prompt line."""
    return " ".join(str(value).split())


def product_prompt_text(product: Mapping, bullets: bool = False, max_chars: int = 600) -> str:
    """The product as the judge's prompt shows it: one `field: value` line per field, in prompt order.

    Not `agrl.peers`' one-line title/brand/colour text for the embedding peers: that one is a
    different view of the product, for a different reader.
    """
    lines = []
    for key in PRODUCT_FIELDS:
        value = product.get(key)
        if value is not None and value != "":
            lines.append(f"{key}: {_one_line(value)}")
    attributes = product.get("attributes") or {}
    if attributes:
        lines.append(
            "attributes: "
            + " ; ".join(f"{_one_line(k)}: {_one_line(v)}" for k, v in sorted(attributes.items()))
        )
    if bullets and product.get("bullets"):
        lines.append("bullets: " + " ; ".join(_one_line(b) for b in product["bullets"]))
    # Real catalogues carry long descriptions; the judge reads a bounded prefix.
    return "\n".join(line[:max_chars] for line in lines)


# The old name, kept while callers outside this module move over (tests/test_schema.py).
product_text = product_prompt_text


def user_text(query: str, product: Mapping, bullets: bool = False) -> str:
    return f"query: {_one_line(query)}\n{product_prompt_text(product, bullets)}"


def build_messages(
    record: Mapping,
    rulebook: Rulebook | None = None,
    system: bool = True,
    bullets: bool = False,
) -> list[dict[str, str]]:
    """Chat messages for one record; `rulebook` adds its summary to the system message."""
    messages: list[dict[str, str]] = []
    if system:
        content = SYSTEM if rulebook is None else f"{SYSTEM}\n{rulebook.summary()}"
        messages.append({"role": "system", "content": content})
    messages.append({"role": "user", "content": user_text(record["query"], record["product"], bullets)})
    return messages


def with_hint(messages: Sequence[Mapping[str, str]], hint: str) -> list[dict[str, str]]:
    """The same messages with a guidance hint appended to the user turn (adaptive replay only)."""
    out = [dict(m) for m in messages]
    out[-1]["content"] = f"{out[-1]['content']}\nhint: {_one_line(hint)}"
    return out
