"""Grade probabilities and the HTTP judge, against a real uvicorn server and a real (tiny) model.

The tiny model is overfitted in a fraction of a second to write one fixed, well-formed judgement,
so the full path (generation, parsing, grade distribution, CumPT) has an answer to read.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time

import httpx
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import LogitsProcessorList, PreTrainedTokenizerFast

from agrl.batching import BatchStats, MicroBatcher
from agrl.models import load_model
from agrl.models.generate import encode_prompts, generate_ids
from agrl.models.scoring import (
    Abandoned,
    GradeLogits,
    answer_position,
    answer_prefix_ids,
    batch_grade_probabilities,
    grade_probabilities,
    grade_token_ids,
    judge,
)
from agrl.models.tiny import build_model, build_tokenizer
from agrl.prompts import user_text
from agrl.reasoning import render_reasoning
from agrl.rules import GRADES
from agrl.schema import PRODUCT_FIELDS
from agrl.serve import JudgeRequest, Product, create_app
from tests.helpers import serving

SLOTS = (
    {"type": "running shoes", "color": "red"},
    {"type": "running shoes", "color": "blue"},
    {"type": "match", "color": "mismatch"},
    "R08 color_mismatch",
    3,
)
REFERENCE = render_reasoning(*SLOTS)
QUERY = "red running shoes"
PRODUCTS = [
    {"title": "nike pegasus running shoes", "brand": "nike", "color": "blue", "price": 89.5},
    {"title": "adidas trail boots", "category": "shoes > boots", "size": "42"},
    {"title": "red running shoes for women", "gender": "women", "attributes": {"material": "mesh"}},
]
MAX_BATCH = 4


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """(folder, model, tokenizer): the tiny model trained to answer REFERENCE, saved like any HF model."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # 2 busy cores: a second intra-op thread makes tiny models ~50x slower
    records = [{"query": QUERY, "product": p} for p in PRODUCTS]
    tokenizer = build_tokenizer([user_text(r["query"], r["product"]) for r in records] + [REFERENCE])
    model = build_model(tokenizer, hidden=32, layers=1, heads=2, intermediate=64)
    prompts = encode_prompts(tokenizer, records)
    completion = tokenizer(REFERENCE, add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id]
    rows = [p + completion for p in prompts]
    width = max(map(len, rows))
    pad = tokenizer.pad_token_id
    input_ids = torch.tensor([[pad] * (width - len(r)) + r for r in rows])
    attention = torch.tensor([[0] * (width - len(r)) + [1] * len(r) for r in rows])
    labels = torch.tensor(
        [[-100] * (width - len(c)) + c for c in ([-100] * len(p) + completion for p in prompts)]
    )
    positions = (attention.cumsum(-1) - 1).clamp(min=0)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2)
    model.train()
    for _ in range(300):
        loss = model(
            input_ids=input_ids, attention_mask=attention, position_ids=positions, labels=labels
        ).loss
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        if loss.item() < 0.02:
            break
    assert loss.item() < 0.1, f"the tiny model did not fit its one answer (loss {loss.item():.3f})"
    model.eval()
    folder = tmp_path_factory.mktemp("tiny_judge")
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    yield folder, model, tokenizer
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def server(trained):
    """Base URL of a uvicorn server (own thread, free port) serving the saved model folder."""
    folder, _, _ = trained
    with serving(create_app(str(folder), max_batch=MAX_BATCH)) as url:
        yield url


@pytest.fixture(scope="module")
def client(server):
    with httpx.Client(base_url=server, timeout=30) as c:
        yield c


# --- grade tokens and probabilities -------------------------------------------------------------


def test_grade_token_ids_tiny(trained):
    _, _, tokenizer = trained
    ids = grade_token_ids(tokenizer)
    assert ids == {g: tokenizer.convert_tokens_to_ids(f"▁{g}") for g in (1, 2, 3, 4)}
    assert len(set(ids.values())) == 4
    assert answer_prefix_ids(tokenizer) == [tokenizer.convert_tokens_to_ids("<answer>")]


def test_grade_token_ids_bpe():
    """A byte-level BPE tokenizer (as SmolLM2's): the tag is several tokens, digits are single tokens."""
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    trainer = trainers.BpeTrainer(
        vocab_size=300, initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False
    )
    tok.train_from_iterator(
        [REFERENCE, "<answer> 1 </answer> <answer> 2 </answer> <answer> 4 </answer>"] * 5, trainer
    )
    tok.decoder = decoders.ByteLevel()
    hf = PreTrainedTokenizerFast(tokenizer_object=tok)
    ids = grade_token_ids(hf)
    assert len(set(ids.values())) == 4
    assert all(hf.decode([t]).strip() == str(g) for g, t in ids.items())
    prefix = answer_prefix_ids(hf)
    assert hf.decode(prefix).strip() == "<answer>"
    completion = hf(REFERENCE)["input_ids"]
    pos = answer_position(hf, completion, "think_first")
    assert completion[pos] == ids[3]


def test_grade_token_ids_error_when_grades_are_not_tokens():
    tok = Tokenizer(models.WordLevel({"<unk>": 0, "<answer>": 1}, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    with pytest.raises(ValueError, match="grade"):
        grade_token_ids(PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="<unk>"))


def test_grade_probabilities_on_hand_built_completion(trained):
    _, model, tokenizer = trained
    record = {"query": QUERY, "product": PRODUCTS[0]}
    prompt = encode_prompts(tokenizer, [record])[0]
    completion = tokenizer(REFERENCE, add_special_tokens=False)["input_ids"]
    assert "<answer> 3 </answer>" in REFERENCE
    probs = grade_probabilities(model, tokenizer, prompt, completion, "think_first")
    assert set(probs) == {1, 2, 3, 4}
    assert sum(probs.values()) == pytest.approx(1.0, abs=1e-5)
    assert max(probs, key=probs.get) == 3  # what the model was trained to write
    # The same number by hand: the next-token distribution right before "▁3", restricted to the grades.
    pos = completion.index(tokenizer.convert_tokens_to_ids("▁3"))
    assert answer_position(tokenizer, completion, "think_first") == pos
    with torch.no_grad():
        logits = model(input_ids=torch.tensor([prompt + completion[:pos]])).logits[0, -1]
    ids = grade_token_ids(tokenizer)
    manual = torch.softmax(logits[[ids[g] for g in (1, 2, 3, 4)]], -1).tolist()
    assert [probs[g] for g in (1, 2, 3, 4)] == pytest.approx(manual, abs=1e-5)
    # No answer tag: no distribution.
    no_answer = tokenizer(
        "<checks> type: running shoes | running shoes match </checks>", add_special_tokens=False
    )["input_ids"]
    assert grade_probabilities(model, tokenizer, prompt, no_answer, "think_first") is None
    # Label-first: the answer is the first section.
    label_first = tokenizer(render_reasoning(*SLOTS, fmt="label_first"), add_special_tokens=False)[
        "input_ids"
    ]
    assert answer_position(tokenizer, label_first, "label_first") == 1
    lf = grade_probabilities(model, tokenizer, prompt, label_first, "label_first")
    assert sum(lf.values()) == pytest.approx(1.0, abs=1e-5)


def test_batched_probabilities_match_single_ones(trained):
    """Left padding must not change the numbers (positions count real tokens only)."""
    _, model, tokenizer = trained
    prompts = encode_prompts(tokenizer, [{"query": QUERY, "product": p} for p in PRODUCTS])
    assert len({len(p) for p in prompts}) > 1
    completion = tokenizer(REFERENCE, add_special_tokens=False)["input_ids"]
    batched = batch_grade_probabilities(model, tokenizer, prompts, [completion] * len(prompts))
    for prompt, probs in zip(prompts, batched):
        single = grade_probabilities(model, tokenizer, prompt, completion)
        assert [probs[g] for g in (1, 2, 3, 4)] == pytest.approx([single[g] for g in (1, 2, 3, 4)], abs=1e-4)


def test_judge_in_process(trained):
    _, model, tokenizer = trained
    records = [{"query": QUERY, "product": p} for p in PRODUCTS]
    results = judge(model, tokenizer, records, max_new_tokens=64)
    assert len(results) == len(records)
    for r in results:
        assert r["label"] == 3 and r["tier"] == 3 and r["parse_error"] is None
        assert r["rule"] == {
            "id": "R08",
            "name": "color_mismatch",
        }  # the rulebook spelling, not the lower-cased text
        assert r["reasoning"]["checks"] == {"type": "match", "color": "mismatch"}
    with pytest.raises(ValueError, match="threshold"):
        judge(model, tokenizer, records, threshold=0)


def test_recorded_grade_logits_are_the_forward_pass_ones(trained):
    """What generation records at step j is what a forward pass over prompt + completion[:j] reads."""
    _, _, tokenizer = trained
    model = build_model(tokenizer, hidden=32, layers=1, heads=2, intermediate=64, seed=0).eval()
    prompts = encode_prompts(tokenizer, [{"query": QUERY, "product": p} for p in PRODUCTS])
    assert len({len(p) for p in prompts}) > 1  # left padding is exercised
    grades = list(grade_token_ids(tokenizer).values())
    recorder = GradeLogits(grades)
    completions = generate_ids(
        model, tokenizer, prompts, 12, logits_processor=LogitsProcessorList([recorder])
    )
    assert len(recorder.steps) == max(map(len, completions)) > 1
    for i, (prompt, completion) in enumerate(zip(prompts, completions)):
        for j in range(len(completion)):
            with torch.no_grad():
                logits = model(input_ids=torch.tensor([prompt + completion[:j]])).logits[0, -1, grades]
            assert recorder.steps[j][i].tolist() == pytest.approx(logits.tolist(), abs=1e-4)


def test_recorded_probabilities_leave_a_completion_cut_after_its_tag_to_a_forward_pass(trained):
    _, _, tokenizer = trained
    recorder = GradeLogits(list(grade_token_ids(tokenizer).values()))
    tag = tokenizer("<answer>", add_special_tokens=False)["input_ids"]
    words = tokenizer("red", add_special_tokens=False)["input_ids"]
    completions = [words + tag, words, tag]  # the grade after the last generated step; no tag; a step
    steps = len(words + tag)  # generation stopped right after the first completion's tag
    recorder.steps = [torch.zeros(3, 4)] * steps  # 3 rows, equal logits at every step
    probs, missing = recorder.probabilities(tokenizer, completions, "think_first")
    assert missing == [0]
    assert probs[1] is None
    assert probs[2] == pytest.approx({1: 0.25, 2: 0.25, 3: 0.25, 4: 0.25})


def test_judge_reads_the_probabilities_a_second_pass_would(trained):
    """`judge` takes grade probabilities from generation; the forward pass over prompt + completion
    (`batch_grade_probabilities`) gives the same numbers."""
    _, model, tokenizer = trained
    records = [{"query": QUERY, "product": p} for p in PRODUCTS]
    results = judge(model, tokenizer, records, max_new_tokens=64)
    prompts = encode_prompts(tokenizer, records)
    completions = [tokenizer(r["text"], add_special_tokens=False)["input_ids"] for r in results]
    again = batch_grade_probabilities(model, tokenizer, prompts, completions)
    for r, probs in zip(results, again):
        assert [r["grade_probs"][g] for g in GRADES] == pytest.approx([probs[g] for g in GRADES], abs=1e-4)


# --- the HTTP API --------------------------------------------------------------------------------


def _check_result(r: dict) -> None:
    assert set(r) == {
        "label",
        "grade_probs",
        "cumpt_score",
        "tier",
        "rule",
        "reasoning",
        "parse_error",
        "text",
    }
    assert set(r["grade_probs"]) == {"1", "2", "3", "4"}
    assert sum(r["grade_probs"].values()) == pytest.approx(1.0, abs=1e-4)
    assert 0.0 <= r["cumpt_score"] <= 1.0
    assert r["tier"] in (1, 2, 3, 4)
    assert r["label"] in (1, 2, 3, 4)


def _locs(response: httpx.Response) -> list[list]:
    return [e["loc"] for e in response.json()["detail"]]


def test_health(client, trained):
    response = client.get("/health")
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "ok" and body["model"] == str(trained[0])


def test_judge_one_product(client):
    response = client.post("/judge", json={"query": QUERY, "product": PRODUCTS[0]})
    assert response.status_code == 200, response.text
    (result,) = response.json()["results"]
    _check_result(result)
    assert result["label"] == 3 and result["rule"] == {"id": "R08", "name": "color_mismatch"}
    assert result["reasoning"]["query"] == {"type": "running shoes", "color": "red"}
    assert result["parse_error"] is None and "<answer> 3" in result["text"]


def test_judge_several_products(client):
    response = client.post("/judge", json={"query": QUERY, "products": PRODUCTS, "threshold": 0.9})
    assert response.status_code == 200, response.text
    results = response.json()["results"]
    assert len(results) == len(PRODUCTS)
    for r in results:
        _check_result(r)


def test_judge_unseen_product_gives_a_well_formed_answer(client):
    response = client.post(
        "/judge", json={"query": "blue kettle 1.5 l", "products": [{"title": "steel kettle"}]}
    )
    assert response.status_code == 200, response.text
    (r,) = response.json()["results"]
    assert isinstance(r["text"], str)
    assert (r["reasoning"] is None) == (r["parse_error"] is not None)


def test_judge_early_stop(client):
    response = client.post("/judge", json={"query": QUERY, "products": PRODUCTS[:2], "early_stop": True})
    assert response.status_code == 200, response.text
    results = response.json()["results"]
    assert len(results) == 2
    for r in results:
        _check_result(r)
        assert r["reasoning"] is None and r["rule"] is None and r["parse_error"] is None
        assert r["text"].startswith("<answer>")
        assert str(r["label"]) == max(r["grade_probs"], key=r["grade_probs"].get)  # the most likely grade


def test_concurrent_requests_are_serialised_and_all_answered(client, server):
    statuses: list[int] = []

    def post():
        with httpx.Client(base_url=server, timeout=30) as c:
            statuses.append(c.post("/judge", json={"query": QUERY, "products": PRODUCTS}).status_code)

    threads = [threading.Thread(target=post) for _ in range(3)]
    for t in threads:
        t.start()
    assert client.get("/health").status_code == 200
    for t in threads:
        t.join(timeout=60)
    assert statuses == [200, 200, 200]


# --- micro-batching, backpressure, dropped requests ---------------------------------------------


def _metric(base: str, name: str) -> float:
    """One sample of the server's Prometheus text (`name` with its labels, as exposed)."""
    for line in httpx.get(f"{base}/metrics").text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[-1])
    raise AssertionError(f"{name} not in /metrics")


def _post_all(base: str, bodies: list[dict], timeout: float = 60) -> list[httpx.Response | Exception]:
    """Post every body at once from its own thread; responses (or the client's exception) in order."""
    out: list[httpx.Response | Exception] = [RuntimeError("no answer")] * len(bodies)

    def post(i: int) -> None:
        try:
            out[i] = httpx.post(f"{base}/judge", json=bodies[i], timeout=timeout)
        except Exception as exc:  # a client that gives up (timeout) is part of the test
            out[i] = exc

    threads = [threading.Thread(target=post, args=(i,)) for i in range(len(bodies))]
    for t in threads:
        t.start()
        time.sleep(0.05)  # arrival order is request order
    for t in threads:
        t.join(timeout=timeout + 5)
    return out


def test_requests_are_judged_together_with_the_same_answers(trained):
    folder, _, _ = trained
    bodies = [{"query": QUERY, "product": p, "early_stop": True} for p in PRODUCTS]
    with serving(create_app(str(folder), max_batch=MAX_BATCH, max_wait_ms=1500)) as base:
        batched = _post_all(base, bodies)
        assert _metric(base, "agrl_batches") == 1.0  # three requests, one model batch
        assert (
            _metric(base, "agrl_batch_products_count") == 1.0
            and _metric(base, "agrl_batch_products_sum") == 3.0
        )
        assert _metric(base, 'agrl_requests_total{outcome="ok"}') == 3.0
        ready = httpx.get(f"{base}/ready").json()
        assert ready["ready"] and ready["queue_depth"] == 0 and ready["p99_s"] >= ready["p50_s"] > 0
    with serving(create_app(str(folder), max_batch=MAX_BATCH, batching=False)) as base:
        alone = _post_all(base, bodies)
        assert _metric(base, "agrl_batches") == 3.0  # batching off: one request per batch
    for a, b in zip(batched, alone):
        assert isinstance(a, httpx.Response) and isinstance(b, httpx.Response)
        assert a.status_code == b.status_code == 200
        assert [r["label"] for r in a.json()["results"]] == [r["label"] for r in b.json()["results"]]


def test_a_full_queue_answers_503_with_retry_after(trained):
    folder, _, _ = trained
    body = {"query": QUERY, "product": PRODUCTS[0], "early_stop": True}
    # the first request waits 1.5 s for company; the second queues; the queue (1) is then full
    with serving(create_app(str(folder), max_batch=MAX_BATCH, max_wait_ms=1500, max_queue=1)) as base:
        first, second, third = _post_all(base, [body] * 3)
        assert isinstance(third, httpx.Response) and third.status_code == 503
        assert int(third.headers["Retry-After"]) >= 1 and "capacity" in third.json()["detail"]
        assert isinstance(first, httpx.Response) and isinstance(second, httpx.Response)
        assert first.status_code == second.status_code == 200
        assert _metric(base, 'agrl_requests_total{outcome="shed"}') == 1.0


def test_a_running_batch_is_stopped_over_http_once_every_client_has_hung_up():
    """End to end on a real server: three clients hang up (0.5 s) while their one batch generates
    (an untrained model never emits eos, and each decoding step is slowed to 20 ms, so the batch
    would take 2 s): the batch stops, nothing is counted as judged, all three are dropped."""
    records = [{"query": QUERY, "product": p} for p in PRODUCTS]
    tokenizer = build_tokenizer([user_text(r["query"], r["product"]) for r in records] + [REFERENCE])
    model = build_model(tokenizer, hidden=32, layers=1, heads=2, intermediate=64).eval()
    model.register_forward_pre_hook(lambda module, args: time.sleep(0.02))
    app = create_app((model, tokenizer), fmt="think_first", max_new_tokens=100, max_wait_ms=300, max_batch=64)
    body = {"query": QUERY, "product": PRODUCTS[0]}
    with serving(app) as base:
        started = time.monotonic()
        answers = _post_all(base, [body] * 3, timeout=0.5)
        assert all(isinstance(a, httpx.TimeoutException) for a in answers)
        while _metric(base, "agrl_dropped_requests") < 3 and time.monotonic() - started < 10:
            time.sleep(0.05)
        assert time.monotonic() - started < 1.9, "the batch ran to its end"
        assert _metric(base, "agrl_dropped_requests") == 3.0 and _metric(base, "agrl_batches") == 0.0
        assert _metric(base, 'agrl_requests_total{outcome="disconnected"}') == 3.0
        assert _metric(base, "agrl_stopped_batches") == 1.0


def test_abandoned_and_timed_out_requests_are_never_judged(trained):
    folder, _, _ = trained
    body = {"query": QUERY, "product": PRODUCTS[0], "early_stop": True}
    with serving(create_app(str(folder), max_batch=MAX_BATCH, max_wait_ms=1500)) as base:
        (gone,) = _post_all(base, [body], timeout=0.3)  # the client hangs up while its request waits
        assert isinstance(gone, httpx.TimeoutException)
        time.sleep(1.6)
        assert _metric(base, 'agrl_requests_total{outcome="disconnected"}') == 1.0
        assert _metric(base, "agrl_dropped_requests") == 1.0 and _metric(base, "agrl_batches") == 0.0
    with serving(
        create_app(str(folder), max_batch=MAX_BATCH, max_wait_ms=1500, request_timeout_s=0.3)
    ) as base:
        (late,) = _post_all(base, [body])
        assert isinstance(late, httpx.Response) and late.status_code == 503 and "Retry-After" in late.headers
        time.sleep(1.5)
        assert _metric(base, "agrl_dropped_requests") == 1.0 and _metric(base, "agrl_batches") == 0.0
        assert _metric(base, 'agrl_requests_total{outcome="timeout"}') == 1.0


@pytest.mark.parametrize(
    ("body", "loc"),
    [
        ({"products": [{"title": "x"}]}, ["body", "query"]),
        ({"query": "", "products": [{"title": "x"}]}, ["body", "query"]),
        ({"query": "   ", "products": [{"title": "x"}]}, ["body", "query"]),
        ({"query": QUERY, "products": [{"title": ""}]}, ["body", "products", 0, "title"]),
        (
            {"query": QUERY, "products": [{"title": "ok"}, {"brand": "nike"}]},
            ["body", "products", 1, "title"],
        ),
        ({"query": QUERY, "products": [{"title": 5}]}, ["body", "products", 0, "title"]),
        ({"query": QUERY, "products": [{"title": "x", "price": "cheap"}]}, ["body", "products", 0, "price"]),
        (
            {"query": QUERY, "products": [{"title": "x", "bullets": "one"}]},
            ["body", "products", 0, "bullets"],
        ),
        ({"query": 42, "products": [{"title": "x"}]}, ["body", "query"]),
        ({"query": QUERY, "products": "x"}, ["body", "products"]),
        ({"query": QUERY, "products": []}, ["body", "products"]),
        ({"query": QUERY, "products": [{"title": "x"}] * (MAX_BATCH + 1)}, ["body", "products"]),
        ({"query": QUERY}, ["body", "products"]),
        ({"query": QUERY, "product": {"title": "x"}, "products": [{"title": "y"}]}, ["body", "product"]),
        ({"query": QUERY, "product": {"title": "x"}, "threshold": 0}, ["body", "threshold"]),
        ({"query": QUERY, "product": {"title": "x"}, "early_stop": "yes"}, ["body", "early_stop"]),
        ({"query": QUERY, "product": {"title": "x"}, "prodcuts": []}, ["body", "prodcuts"]),
        # the shared record schema's product, with the endpoint's bounds on top
        ({"query": "q" * 1001, "product": {"title": "x"}}, ["body", "query"]),
        ({"query": QUERY, "products": [{"title": "x" * 10_001}]}, ["body", "products", 0, "title"]),
        (
            {"query": QUERY, "product": {"title": "x", "bullets": ["ok", "b" * 10_001]}},
            ["body", "product", "bullets"],
        ),
        (
            {"query": QUERY, "product": {"title": "x", "attributes": {"a": {"nested": 1}}}},
            ["body", "product", "attributes"],
        ),
        ({"query": QUERY, "product": {"title": "x", "brand": 3}}, ["body", "product", "brand"]),
    ],
)
def test_bad_input_is_422_naming_the_field(client, body, loc):
    response = client.post("/judge", json=body)
    assert response.status_code == 422, response.text
    assert loc in _locs(response)


def test_request_models_are_static_and_follow_the_record_schema(client):
    # A product is a record's product: PRODUCT_FIELDS plus `attributes` and `bullets`, so the two cannot drift.
    assert tuple(Product.model_fields) == (*PRODUCT_FIELDS, "attributes", "bullets")
    schemas = client.get("/openapi.json").json()["components"]["schemas"]
    assert schemas["JudgeRequest"]["required"] == ["query"] and set(
        schemas["JudgeRequest"]["properties"]
    ) == set(JudgeRequest.model_fields)


def test_invalid_json_is_422(client):
    response = client.post("/judge", content=b'{"query": ', headers={"content-type": "application/json"})
    assert response.status_code == 422


def test_prompt_too_long_for_the_model_is_422(client):
    products = [
        {"title": "ok"},
        {
            "title": "x",
            **{
                k: " ".join(["word"] * 150) for k in ("category", "brand", "model", "color", "gender", "size")
            },
        },
    ]
    response = client.post("/judge", json={"query": QUERY, "products": products})
    assert response.status_code == 422, response.text
    assert ["body", "products", 1] in _locs(response)


def test_huge_body_is_413(client):
    huge = {"query": QUERY, "products": [{"title": "x" * 1_100_000}]}
    assert client.post("/judge", json=huge).status_code == 413

    def chunks():  # no content-length: the limit holds for a streamed body too
        yield b'{"query": "q", "products": [{"title": "'
        for _ in range(300):
            yield b"x" * 4096
        yield b'"}]}'

    response = client.post("/judge", content=chunks(), headers={"content-type": "application/json"})
    assert response.status_code == 413
    assert client.get("/health").status_code == 200  # the server is still fine


def test_create_app_rejects_bad_settings(trained):
    _, model, tokenizer = trained
    with pytest.raises(ValueError, match="format"):
        create_app((model, tokenizer), fmt="json")
    with pytest.raises(ValueError, match="max_batch"):
        create_app((model, tokenizer), max_batch=0)


def test_load_model_round_trip(trained):
    folder, _, tokenizer = trained
    _, loaded = load_model(str(folder))
    assert grade_token_ids(loaded) == grade_token_ids(tokenizer)


# --- no 500 for any body --------------------------------------------------------------------------

RAW_BODIES = [  # (raw JSON text, the field the 422 names): Python's json reads NaN, Infinity and 1e999
    ('{"query":"x","products":[{"title":"a"}],"threshold":1e999}', ["body", "threshold"]),
    ('{"query":"x","products":[{"title":"a"}],"threshold":NaN}', ["body", "threshold"]),
    ('{"query":"x","products":[{"title":"a","price":NaN}]}', ["body", "products", 0, "price"]),
    ('{"query":"x","products":[{"title":"a","price":Infinity}]}', ["body", "products", 0, "price"]),
    ('{"query":"x","products":[{"title":"a","price":-Infinity}]}', ["body", "products", 0, "price"]),
    ('{"query":"x","products":[{"title":"a","price":-5}]}', ["body", "products", 0, "price"]),
    ('{"query":"x","products":[{"title":"a","price":1e300}]}', ["body", "products", 0, "price"]),
    ('{"query":"\\udfff","products":[{"title":"a"}]}', ["body", "query"]),
    ('{"query":"x","products":[{"title":"a\\ud800b"}]}', ["body", "products", 0, "title"]),
    ('{"query":"x","product":{"title":"a","attributes":{"\\udfff":"v"}}}', ["body", "product", "attributes"]),
    ('{"query":"x","product":{"title":"a","bullets":["\\udc00"]}}', ["body", "product", "bullets"]),
]


@pytest.mark.parametrize(("raw", "loc"), RAW_BODIES)
def test_non_finite_numbers_bad_prices_and_lone_surrogates_are_422(client, raw, loc):
    response = client.post("/judge", content=raw.encode(), headers={"content-type": "application/json"})
    assert response.status_code == 422, response.text
    assert loc in _locs(response)
    response.json()  # strict JSON, whatever the input was


def test_invalid_utf8_bytes_are_not_a_server_error(client):
    response = client.post("/judge", content=b'{"query":"\xff\xfe","products":[{"title":"a"}]}',
                           headers={"content-type": "application/json"})  # fmt: skip
    assert 400 <= response.status_code < 500, response.text


JSON_SCALARS = st.one_of(
    st.none(), st.booleans(), st.integers(-(2**70), 2**70),
    st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=20),
)  # fmt: skip
JSON_VALUES = st.recursive(
    JSON_SCALARS, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)  # fmt: skip
PRODUCT_KEYS = st.sampled_from([*PRODUCT_FIELDS, "attributes", "bullets", "extra"])
PRODUCTS_ST = st.dictionaries(PRODUCT_KEYS, JSON_VALUES, max_size=5) | JSON_VALUES
BODIES = st.one_of(
    JSON_VALUES,
    st.fixed_dictionaries(
        {"query": JSON_VALUES | st.text(max_size=30)},
        optional={
            "products": st.lists(PRODUCTS_ST, max_size=MAX_BATCH + 1) | JSON_VALUES,
            "product": PRODUCTS_ST,
            "early_stop": JSON_VALUES,
            "threshold": JSON_VALUES,
        },
    ),
)


@pytest.mark.slow  # ~30 s: 1,000 bodies on a real server
@settings(max_examples=1000, deadline=None, suppress_health_check=list(HealthCheck))
@given(body=BODIES)
def test_no_generated_body_gets_a_server_error(client, body):
    """Any JSON Python can write (NaN, Infinity, lone surrogates included) is answered 200, 4xx or 503."""
    raw = json.dumps(body, allow_nan=True).encode("utf-8", "surrogatepass")
    response = client.post("/judge", content=raw, headers={"content-type": "application/json"})
    assert response.status_code < 500 or response.status_code == 503, (raw[:200], response.text[:300])
    response.json()


def test_a_batch_nobody_waits_for_stops_at_the_next_decoding_step(trained):
    _, model, tokenizer = trained
    records = [{"query": QUERY, "product": p} for p in PRODUCTS]
    prompts = encode_prompts(tokenizer, records)
    full = generate_ids(model, tokenizer, prompts, 64)
    assert min(len(ids) for ids in full) > 3  # the think-first reference is long: stopping can show
    calls = []

    def gone_after_two_steps() -> bool:
        calls.append(1)
        return len(calls) >= 2

    cut = generate_ids(model, tokenizer, prompts, 64, abandoned=gone_after_two_steps)
    assert max(len(ids) for ids in cut) <= 2
    with pytest.raises(Abandoned, match="every client left"):
        judge(model, tokenizer, records, abandoned=lambda: True)
    # nobody gone: the same answers as without the check
    assert [r["text"] for r in judge(model, tokenizer, records, abandoned=lambda: False)] == [
        r["text"] for r in judge(model, tokenizer, records)
    ]


def test_the_batcher_stops_a_running_batch_once_every_request_has_gone():
    ran = threading.Event()

    def run(records, options, abandoned):  # a long judging call that checks, as generate_ids does
        ran.set()
        deadline = time.monotonic() + 10
        while not abandoned():
            assert time.monotonic() < deadline, "the batch was never told that its requests had gone"
            time.sleep(0.01)
        raise Abandoned("every client left")

    async def scenario() -> BatchStats:
        batcher = MicroBatcher(run, max_batch=4, max_wait_s=0.0, max_queue=4)
        future = batcher.submit([{"id": 1}], (True, 0.5))
        while not ran.is_set():
            await asyncio.sleep(0.01)
        future.cancel()  # the client hangs up while its batch runs
        for _ in range(200):
            if batcher.stats.stopped:
                break
            await asyncio.sleep(0.01)
        await batcher.close()
        return batcher.stats

    stats = asyncio.run(scenario())
    assert stats.stopped == 1 and stats.dropped == 1 and stats.batches == 0


# --- near-ties judged again at full precision ---------------------------------------------------


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.one_of(st.none(), st.lists(st.floats(0, 1), min_size=4, max_size=4)), min_size=0, max_size=12
    ),
    st.floats(0, 1),
    st.floats(0, 1),
)
def test_near_ties_are_the_rows_whose_two_best_grades_are_within_the_margin(rows, a, b):
    from agrl.models.scoring import near_ties

    results = [{"grade_probs": None if p is None else dict(zip((1, 2, 3, 4), p))} for p in rows]
    small, large = sorted((a, b))
    for i in near_ties(results, small):
        top = sorted(rows[i], reverse=True)
        assert top[0] - top[1] < small
    assert set(near_ties(results, small)) <= set(near_ties(results, large))  # monotone in the margin
    assert near_ties(results, 0.0) == []
    assert not {i for i, p in enumerate(rows) if p is None} & set(near_ties(results, 1.5))


def test_rechecked_judging_takes_the_exact_judges_results_on_near_ties(trained):
    import copy

    from agrl.models.scoring import judge_rechecked

    _, model, tokenizer = trained
    fast = copy.deepcopy(model).to(torch.bfloat16)
    records = [{"query": QUERY, "product": p} for p in PRODUCTS]
    exact = judge(model, tokenizer, records, early_stop=True)
    quick = judge(fast, tokenizer, records, early_stop=True)
    every, redo_all = judge_rechecked(fast, model, tokenizer, records, margin=1.01, early_stop=True)
    assert redo_all == list(range(len(records))) and every == exact
    none, redo_none = judge_rechecked(fast, model, tokenizer, records, margin=0.0, early_stop=True)
    assert redo_none == [] and none == quick


def test_the_wait_for_company_counts_from_when_the_worker_is_free():
    """Under load, requests that queued while a batch ran have waited longer than `max_wait_s`
    already; the clients answered by that batch come back a moment after it ends. Taking only what
    is queued at that instant splits the clients into two half-size batches for good, so the wait
    for company starts when the worker is free, not when the oldest request arrived."""
    sizes: list[int] = []
    finished = threading.Event()

    def run(records, options, abandoned):
        sizes.append(len(records))
        time.sleep(0.4)
        finished.set()
        return [{} for _ in records]

    async def scenario() -> None:
        batcher = MicroBatcher(run, max_batch=8, max_wait_s=0.25, max_queue=8)
        first = [batcher.submit([{"id": i}] * 4, None) for i in range(2)]  # full: runs at once
        await asyncio.sleep(0.02)
        queued = batcher.submit([{"id": 2}] * 4, None)  # waits while the first batch runs
        while not finished.is_set():
            await asyncio.sleep(0.005)
        await asyncio.sleep(0.05)  # a client answered by the first batch comes back
        returning = batcher.submit([{"id": 3}] * 4, None)
        await asyncio.gather(*first, queued, returning)
        await batcher.close()

    asyncio.run(scenario())
    assert sizes == [8, 8]


def test_a_lone_client_does_not_wait_for_company_that_never_comes():
    """The worker waits for as many new requests as its last batch answered (those clients coming
    back), so a lone client's next request, its own return, runs at once instead of waiting
    `max_wait_s` for nobody every time."""
    sizes: list[int] = []

    def run(records, options, abandoned):
        sizes.append(len(records))
        return [{} for _ in records]

    async def scenario() -> float:
        batcher = MicroBatcher(run, max_batch=64, max_wait_s=0.5, max_queue=8)
        await batcher.submit([{"id": 0}], None)  # the first waits: nothing is known yet
        started = time.monotonic()
        for i in range(1, 4):  # one client: each request after the answer to the one before
            await batcher.submit([{"id": i}], None)
        elapsed = time.monotonic() - started
        await batcher.close()
        return elapsed

    elapsed = asyncio.run(scenario())
    assert sizes == [1, 1, 1, 1]
    assert elapsed < 0.5  # waiting for company each time would take 3 x 0.5 s


def test_the_clients_a_batch_answered_join_the_next_one():
    """Three clients answered by one batch come back one by one, 30 ms apart: the next batch waits
    for all three (within `max_wait_s`), not only for the first."""
    sizes: list[int] = []

    def run(records, options, abandoned):
        sizes.append(len(records))
        return [{} for _ in records]

    async def client(batcher: MicroBatcher, i: int, delay: float) -> None:
        await batcher.submit([{"id": i}], None)
        await asyncio.sleep(delay)  # the client reads its answer, then sends the next request
        await batcher.submit([{"id": i}], None)

    async def scenario() -> None:
        batcher = MicroBatcher(run, max_batch=64, max_wait_s=0.3, max_queue=8)
        await asyncio.gather(*(client(batcher, i, 0.03 * (i + 1)) for i in range(3)))
        await batcher.close()

    asyncio.run(scenario())
    assert sizes[-1] == 3 and sum(sizes) == 6


def test_the_company_awaited_is_counted_per_request_options():
    """A lone client with its own options (another threshold) between full batches of three others:
    its batch waits for its own returns, not for the three that the other options' batch answered."""

    def run(records, options, abandoned):
        return [{} for _ in records]

    async def scenario() -> list[float]:
        batcher = MicroBatcher(run, max_batch=3, max_wait_s=0.4, max_queue=8)
        await batcher.submit([{"id": "b"}], "B")  # B's first request waits: nothing known of B yet
        times = []
        for _ in range(2):
            await asyncio.gather(*(batcher.submit([{"id": i}], "A") for i in range(3)))  # a full batch
            started = time.monotonic()
            await batcher.submit([{"id": "b"}], "B")
            times.append(time.monotonic() - started)
        await batcher.close()
        return times

    assert max(asyncio.run(scenario())) < 0.2  # waiting for A's three would take 0.4 s each time


def test_requests_cancelled_while_their_batch_ran_are_not_awaited():
    """Two of three requests are cancelled while their batch runs: the next batch waits for the one
    client that was answered, not for three."""
    release = threading.Event()

    def run(records, options, abandoned):
        release.wait(2.0)
        return [{} for _ in records]

    async def scenario() -> float:
        batcher = MicroBatcher(run, max_batch=3, max_wait_s=0.4, max_queue=8)
        futures = [batcher.submit([{"id": i}], None) for i in range(3)]  # full: runs at once
        await asyncio.sleep(0.05)
        futures[1].cancel()
        futures[2].cancel()
        release.set()
        await futures[0]
        started = time.monotonic()
        await batcher.submit([{"id": 0}], None)  # the answered client comes back
        elapsed = time.monotonic() - started
        await batcher.close()
        return elapsed

    assert asyncio.run(scenario()) < 0.2
