"""The shared vocabulary is defined once and every consumer follows it."""

import pytest

from agrl.data.io import DataError, validate_record
from agrl.prompts import product_text
from agrl.schema import PRODUCT_FIELDS, TEXT_PRODUCT_FIELDS, normalize_value


def test_the_server_accepts_every_product_field():
    from agrl.serve import Product

    assert set(PRODUCT_FIELDS) <= set(Product.model_fields)


def test_prompts_list_every_product_field_in_order():
    product = {f: (1.5 if f == "price" else f"v-{f}") for f in PRODUCT_FIELDS}
    assert [line.split(":")[0] for line in product_text(product).splitlines()] == list(PRODUCT_FIELDS)


@pytest.mark.parametrize("field", TEXT_PRODUCT_FIELDS)
def test_io_checks_every_text_field(field):
    row = {"id": "1", "query": "q", "label": 4, "product": {"title": "t", field: 3}}
    with pytest.raises(DataError, match=f"product.{field}"):
        validate_record(row, "f.jsonl", 7)


def test_normalize_value():
    assert normalize_value("  Nike |  AIR\n") == "nike / air"
