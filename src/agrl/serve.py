"""`agrl serve`: an HTTP relevance judge (FastAPI).

Endpoints
---------
``GET /health`` (liveness) -> ``{"status": "ok", "model": str, "format": str, "max_batch": int}``

``GET /ready`` (readiness) -> 200 while the queue has room, 503 when it is full; the body gives
``queue_depth``, ``max_queue`` and p50/p95/p99 latency of recent requests.

``GET /metrics`` -> Prometheus text: ``agrl_queue_depth``, ``agrl_requests_total{outcome}`` (ok,
shed, timeout, disconnected), ``agrl_batches``, ``agrl_dropped_requests``, ``agrl_stopped_batches``, histograms
``agrl_batch_products`` and ``agrl_request_seconds``.

``POST /judge`` with a JSON body::

    {
      "query": "red running shoes",               # required, non-empty
      "products": [{"title": "...", ...}],        # 1..max_batch products (or one "product": {...})
      "early_stop": false,                        # label-first early stop: grade only, no reasoning
      "threshold": 0.5                            # CumPT threshold in (0, 1]
    }

A product is a record's product (:class:`agrl.schema.Product`): a required non-empty ``title`` and
optional ``category``, ``brand``, ``model``, ``color``, ``gender``, ``size`` (strings), ``price``
(number), ``attributes`` (object of scalars) and ``bullets`` (list of strings), every string at most
``MAX_FIELD_CHARS`` long; other keys are ignored. The answer, one result per product in order::

    {"results": [{"label": 3, "grade_probs": {"1": p1, "2": p2, "3": p3, "4": p4},
                  "cumpt_score": 0.66, "tier": 3, "rule": {"id": "R08", "name": "color_mismatch"},
                  "reasoning": {"query": {...}, "product": {...}, "checks": {...}},
                  "parse_error": null, "text": "<checks> ..."}]}

``grade_probs``, ``cumpt_score`` and ``tier`` are null when the completion states no answer; ``rule``
and ``reasoning`` are null unless the completion parses (always null with ``early_stop``), and
``parse_error`` then says why. See :mod:`agrl.models.scoring` for how early stopping works.

Errors: bad input -> 422 whose ``detail`` names the field (non-finite numbers, prices outside
[0, 1e9] and strings with lone surrogates included: the rejected input is echoed only when strict
JSON can carry it) (``loc``, e.g. ``["body", "products", 0,
"title"]``); more than ``max_batch`` products -> 422 on ``products``; a prompt too long for the model
-> 422 on that product; a body over ``max_body_bytes`` -> 413; a full queue, or a request not judged
within ``request_timeout_s`` -> 503 with ``Retry-After``. Requests are judged in micro-batches
across requests (:mod:`agrl.batching`) in a worker thread, one batch at a time, so the event loop
keeps answering (``/health`` included) while a batch runs; a request whose client hung up is
dropped before it is judged.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationInfo,
    field_validator,
)
from pydantic_core import PydanticCustomError

from agrl.batching import MicroBatcher, QueueFull
from agrl.reasoning import FORMATS
from agrl.schema import Product, not_blank, shown
from agrl.serve_metrics import ServerMetrics

MAX_QUERY_CHARS = 1000
MAX_FIELD_CHARS = 10_000
MAX_PRICE = 1e9


def valid_unicode(value: str) -> str:
    """`value` unless it holds a lone surrogate (JSON's "\\udfff"): no tokenizer or encoder takes one."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise PydanticCustomError(
            "invalid_unicode", "invalid unicode: a lone surrogate at character {at}", {"at": exc.start}
        ) from None
    return value


# The length bound first: after a validator, pydantic would word it for sequences ("items").
Query = Annotated[
    str,
    StringConstraints(max_length=MAX_QUERY_CHARS),
    AfterValidator(valid_unicode),
    AfterValidator(not_blank),
]


def _strings(value: object) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, list):
        yield from (v for v in value if isinstance(v, str))
    elif isinstance(value, dict):
        yield from (v for v in value.values() if isinstance(v, str))


class RequestProduct(Product):
    """The record schema's :class:`~agrl.schema.Product` with the bounds a public endpoint needs.

    The fields are the shared ones (a record's product and a request's cannot drift apart); this
    only caps every string at `MAX_FIELD_CHARS` and keeps `attributes` flat (string, number or
    boolean values), so one request cannot make a prompt of nested objects or megabyte titles.
    """

    price: float | None = Field(None, ge=0, le=MAX_PRICE, allow_inf_nan=False)

    @field_validator("*")
    @classmethod
    def _bounded(cls, value: object, info: ValidationInfo) -> object:
        if info.field_name == "attributes" and isinstance(value, dict):  # validated: a dict or None
            for key, item in value.items():
                if not isinstance(item, (str, int, float)):  # bool is an int
                    raise PydanticCustomError(
                        "attribute_value",
                        "attribute {key}: expected a string, number or boolean, got {got}",
                        {"key": shown(key), "got": shown(item)},
                    )
        texts = [*_strings(value), *(value if isinstance(value, dict) else ())]  # attribute keys too
        for text in texts:
            if isinstance(text, str):
                valid_unicode(text)
        if any(len(text) > MAX_FIELD_CHARS for text in _strings(value)):
            raise PydanticCustomError(
                "string_too_long", "strings may have at most {limit} characters", {"limit": MAX_FIELD_CHARS}
            )
        return value


class Rule(BaseModel):
    id: str
    name: str


class Result(BaseModel):
    label: int | None
    grade_probs: dict[str, float] | None
    cumpt_score: float | None
    tier: int | None
    rule: Rule | None
    reasoning: dict[str, dict[str, str]] | None
    parse_error: str | None
    text: str


class JudgeResponse(BaseModel):
    results: list[Result]


class JudgeRequest(BaseModel):
    """The /judge body. The batch limit is a per-app setting: the endpoint checks it (422 on `products`)."""

    model_config = ConfigDict(strict=True, extra="forbid")

    query: Query = Field(description="the search query")
    products: list[RequestProduct] | None = Field(
        None, min_length=1, description="1 to max_batch products (GET /health)"
    )
    product: RequestProduct | None = Field(None, description="one product (instead of `products`)")
    early_stop: bool = Field(False, description="label-first early stop: the grade only, no reasoning")
    threshold: float = Field(0.5, gt=0, le=1, allow_inf_nan=False, description="CumPT threshold")


def _json_safe(value: Any) -> Any:
    """`value` when strict JSON can carry it (finite numbers, valid unicode), else its short repr."""
    try:
        json.dumps(value, allow_nan=False, ensure_ascii=False).encode("utf-8")  # as Starlette renders
    except (TypeError, ValueError, UnicodeEncodeError):
        return shown(value)
    return value


async def validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
    """422 naming the field, for any body: FastAPI's own handler echoes the rejected input, and an
    input of NaN, Infinity or a lone surrogate then fails to encode (a 500)."""
    detail = []
    for error in exc.errors():
        item = {k: _json_safe(v) for k, v in error.items() if k in ("type", "loc", "msg", "input")}
        if isinstance(error.get("ctx"), dict):
            item["ctx"] = {k: _json_safe(v) for k, v in error["ctx"].items()}
        detail.append(item)
    return JSONResponse({"detail": detail}, status_code=422)


def _field_error(
    loc: tuple, msg: str, value: Any = None, kind: str = "value_error"
) -> RequestValidationError:
    return RequestValidationError([{"type": kind, "loc": ("body", *loc), "msg": msg, "input": value}])


class BodyLimit:
    """ASGI middleware: 413 for a request body over `max_bytes` (declared or streamed)."""

    def __init__(self, app, max_bytes: int):
        self.app, self.max_bytes = app, max_bytes

    async def _reject(self, send) -> None:
        body = json.dumps({"detail": f"request body larger than {self.max_bytes} bytes"}).encode()
        await send(
            {
                "type": "http.response.start",
                "status": 413,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None:
            try:
                if int(declared) > self.max_bytes:
                    return await self._reject(send)
            except ValueError:
                pass  # the server rejects a malformed length itself
        # Read the body up front (bounded), so a chunked upload cannot exceed the limit either.
        chunks, size, more = [], 0, True
        while more:
            message = await receive()
            if message["type"] == "http.disconnect":
                return None
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_bytes:
                return await self._reject(send)
            chunks.append(chunk)
            more = message.get("more_body", False)
        body, replayed = b"".join(chunks), False

        async def replay():
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        return await self.app(scope, replay, send)


def _model_name(model, given: str | None) -> str:
    if given is not None:
        return given
    return str(
        getattr(model, "name_or_path", None) or getattr(model.config, "_name_or_path", "") or "in-memory"
    )


def create_app(
    model_path_or_pair,
    max_batch: int = 64,
    system_prompt: bool | None = None,
    max_body_bytes: int = 1_000_000,
    fmt: str | None = None,
    max_new_tokens: int = 128,
    device: str | None = None,
    max_wait_ms: float = 10.0,
    max_queue: int = 256,
    request_timeout_s: float = 60.0,
    batching: bool = True,
    dtype: str = "fp32",
) -> FastAPI:
    """The FastAPI app serving a judge: a model folder/id (or `smollm2`), or a `(model, tokenizer)` pair.

    A model folder's `agrl.json` sets the prompt (format, system prompt, rulebook); `fmt` and
    `system_prompt` may restate it but not contradict it. A model loaded from a path goes to
    `device` (default: CUDA when available, else CPU); a given model stays where it is unless
    `device` is set.

    Requests are judged in micro-batches across requests (`agrl.batching`): up to `max_batch`
    products, waiting at most `max_wait_ms` for company (counted from when the worker is free); at
    most `max_queue` requests wait (then 503 with Retry-After); a request not answered within `request_timeout_s`, or whose client has
    gone, is dropped before it is judged. `batching=False` judges one request at a time.
    """
    from agrl.contract import PromptContract, load_contract
    from agrl.models.generate import encode_prompts
    from agrl.models.scoring import PromptTooLong, check_prompt_lengths, grade_token_ids, judge

    if fmt is not None and fmt not in FORMATS:
        raise ValueError(f"unknown format {fmt!r}; expected one of {sorted(FORMATS)}")
    if max_batch < 1:
        raise ValueError(f"max_batch must be at least 1, got {max_batch}")
    if isinstance(model_path_or_pair, (str, Path)):
        contract = load_contract(model_path_or_pair)
        contract.check(str(model_path_or_pair), reasoning_format=fmt, system_prompt=system_prompt)
    else:  # an in-memory model: the caller's settings are the contract
        contract = PromptContract(reasoning_format=fmt or "think_first", system_prompt=bool(system_prompt))
    fmt, system_prompt, rulebook = contract.reasoning_format, contract.system_prompt, contract.rulebook
    prompt_rulebook = contract.prompt_rulebook()
    if isinstance(model_path_or_pair, (str, Path)):
        from agrl.models import load_model, torch_dtype

        model, tokenizer = load_model(str(model_path_or_pair), torch_dtype(dtype))
        name = str(model_path_or_pair)
        if device is None:
            import torch

            device = "cuda" if torch.cuda.is_available() else "cpu"
    else:
        model, tokenizer = model_path_or_pair
        name = None
        if tokenizer.pad_token is None:
            tokenizer.pad_token = tokenizer.eos_token
    name = _model_name(model, name)
    if device is not None:
        # transformers wraps PreTrainedModel.to with functools.wraps(nn.Module.to), which types it as a
        # plain function whose first parameter is the module: the bound call is mis-checked.
        model.to(device)  # type: ignore[arg-type]
    grade_token_ids(tokenizer)  # fail at start-up, not on the first request, if grades are not tokens
    model.eval()

    def run(records: list[dict], options, abandoned) -> list[dict]:
        early_stop, threshold = options
        return judge(model, tokenizer, records, fmt=fmt, early_stop=early_stop, max_new_tokens=max_new_tokens,
                     system_prompt=system_prompt, threshold=threshold, batch_size=max_batch, rulebook=rulebook,
                     prompt_rulebook=prompt_rulebook, abandoned=abandoned)  # fmt: skip

    metrics = ServerMetrics(max_batch)
    batcher = MicroBatcher(
        run, max_batch, max_wait_ms / 1000, max_queue, batching, metrics.batch_products.observe
    )
    metrics.watch(batcher)
    app = FastAPI(title="agrl judge", description=__doc__.split("\n\n")[0])
    app.add_middleware(BodyLimit, max_bytes=max_body_bytes)
    app.add_exception_handler(RequestValidationError, validation_error)  # type: ignore[arg-type]

    @app.get("/health")
    async def health() -> dict:
        """Liveness: the process answers."""
        return {"status": "ok", "model": name, "format": fmt, "max_batch": max_batch}

    @app.get("/ready")
    async def ready() -> JSONResponse:
        """Readiness: 200 while the queue has room, else 503 (a load balancer sends traffic elsewhere)."""
        body = {"ready": batcher.depth < max_queue, "queue_depth": batcher.depth, "max_queue": max_queue,
                "batching": batching, **metrics.latency_percentiles()}  # fmt: skip
        return JSONResponse(body, status_code=200 if body["ready"] else 503)

    @app.get("/metrics")
    async def prometheus_metrics() -> Response:
        """Prometheus text format: queue depth, batch sizes, request latency, outcomes."""
        return Response(metrics.render(), media_type=CONTENT_TYPE_LATEST)

    @app.post("/judge", response_model=JudgeResponse)
    async def judge_endpoint(body: JudgeRequest, request: Request) -> Response | JudgeResponse:
        started = time.monotonic()
        if body.products is not None and len(body.products) > max_batch:  # as pydantic's max_length words it
            raise _field_error(("products",),
                               f"List should have at most {max_batch} items after validation, not {len(body.products)}",
                               kind="too_long")  # fmt: skip
        if body.products is not None and body.product is not None:
            raise _field_error(("product",), "give either `product` or `products`, not both")
        if body.products is not None:
            products = body.products
        elif body.product is not None:
            products = [body.product]
        else:
            raise _field_error(("products",), "Field required (or give one `product`)", kind="missing")
        single = body.products is None
        records = [{"query": body.query, "product": p.model_dump(exclude_none=True)} for p in products]
        try:  # before queueing: a prompt too long for the model is the request's fault, not the batch's
            prompts = encode_prompts(tokenizer, records, system_prompt, prompt_rulebook)
            check_prompt_lengths(model, tokenizer, prompts, body.early_stop, max_new_tokens)
        except PromptTooLong as exc:
            loc = ("product",) if single else ("products", exc.index)
            raise _field_error(
                loc, f"prompt of {exc.tokens} tokens is too long for the model ({exc.limit} positions)"
            ) from None
        try:
            future = batcher.submit(records, (body.early_stop, body.threshold))
        except QueueFull as exc:
            return metrics.refuse("shed", "the judge is at capacity", exc.retry_after)
        deadline = started + request_timeout_s
        while not future.done():  # poll: a client that hangs up frees its place before it is judged
            await asyncio.wait([future], timeout=min(0.05, max(0.0, deadline - time.monotonic())))
            if future.done():
                break
            if await request.is_disconnected():
                future.cancel()
                metrics.count("disconnected")
                return Response(status_code=499)
            if time.monotonic() >= deadline:
                future.cancel()
                return metrics.refuse(
                    "timeout", f"not judged within {request_timeout_s:g} s", batcher.retry_after()
                )
        results = future.result()
        for r in results:
            if r["grade_probs"] is not None:
                r["grade_probs"] = {str(g): p for g, p in r["grade_probs"].items()}
        metrics.observe(time.monotonic() - started)
        return JudgeResponse.model_validate({"results": results})  # validates the dicts as Results

    return app


@contextmanager
def serving(app: FastAPI) -> Iterator[str]:
    """Base URL of a real uvicorn server (own thread, free loopback port) running `app`: for tests,
    benchmarks and notebooks (`agrl serve` is the production entry point)."""
    import socket
    import threading

    import uvicorn

    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))  # the port is ours from here on: no race with other processes
    port = sock.getsockname()[1]
    srv = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="off"))
    thread = threading.Thread(target=srv.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not srv.started:
        if not thread.is_alive():
            raise RuntimeError("uvicorn exited during start-up")
        if time.monotonic() > deadline:
            raise RuntimeError("uvicorn did not start within 30 s")
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        srv.should_exit = True
        thread.join(timeout=10)
        sock.close()
    if thread.is_alive():
        raise RuntimeError("uvicorn did not stop")
