"""Query-disjoint splits: a function of the query text alone."""

from __future__ import annotations

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from agrl.data.split import query_split, split_by_query


@given(st.text(min_size=1, max_size=40), st.floats(0.0, 1.0))
@example("0ß", 0.5)  # upper() turns ß into SS: lower() would split them
def test_split_ignores_case_and_spacing(query, fraction):
    assert query_split(query, fraction) == query_split(
        "  " + query.upper().replace(" ", "   ") + " ", fraction
    )


@given(st.lists(st.text(alphabet="abc ", min_size=1, max_size=8), min_size=1, max_size=40))
def test_every_row_of_a_query_lands_on_one_side(queries):
    records = [{"id": i, "query": q} for i, q in enumerate(queries + queries)]
    split = split_by_query(records, 0.5)
    train, dev = (
        {" ".join(r["query"].casefold().split()) for r in rows} for rows in (split["train"], split["dev"])
    )
    assert not train & dev
    assert sum(len(v) for v in split.values()) == len(records)


def test_dev_share_follows_the_fraction_and_the_salt_reshuffles():
    queries = [f"query number {i}" for i in range(4000)]
    share = sum(query_split(q, 0.3) == "dev" for q in queries) / len(queries)
    assert 0.27 < share < 0.33
    assert {query_split(q, 0.0) for q in queries} == {"train"}
    assert {query_split(q, 1.0) for q in queries} == {"dev"}
    moved = sum(query_split(q, 0.3) != query_split(q, 0.3, salt="other") for q in queries)
    assert moved > 0.2 * len(queries)


def test_bad_fraction_is_an_error():
    with pytest.raises(ValueError, match="dev_fraction"):
        query_split("shoes", 1.5)


def test_esci_sample_splits_by_query(esci_sample):
    from agrl.data.esci import load_esci

    split = split_by_query(load_esci(esci_sample, annotate=False), 0.4)
    train, dev = ({r["query"] for r in split[k]} for k in ("train", "dev"))
    assert train and dev and not train & dev
    assert len(train) + len(dev) == 30


@given(st.lists(st.text(min_size=1, max_size=8), min_size=3, max_size=40), st.integers(2, 3))
def test_query_folds_are_query_disjoint_balanced_and_cover_every_row(queries, k):
    from agrl.data.split import _normal, query_folds

    distinct = {_normal(q) for q in queries}
    if len(distinct) < k:
        with pytest.raises(ValueError, match="cannot fill"):
            query_folds([{"query": q} for q in queries], k)
        return
    rows = [{"query": q, "i": i} for i, q in enumerate(queries)]
    folds = query_folds(rows, k)
    assert sorted(r["i"] for f in folds for r in f) == list(range(len(rows)))
    owners = [{_normal(r["query"]) for r in f} for f in folds]
    assert all(not (owners[a] & owners[b]) for a in range(k) for b in range(a + 1, k))
    sizes = [len(o) for o in owners]
    assert max(sizes) - min(sizes) <= 1
    assert query_folds(list(reversed(rows)), k)[0] == list(
        reversed(folds[0])
    )  # order of the file does not matter
