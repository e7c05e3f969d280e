"""Load on the judge server: micro-batching across requests against one request at a time.

Starts the same model twice in this process on loopback — `agrl serve` with batching on, and with
`--no-batching` (the peer) — and drives each with N concurrent clients sending R requests of P
products each (bodies from a records file, the same for both), in alternating rounds (peer, batched,
peer, batched ...) so a slow phase of the machine hits both. Then two failure drills on the batched
server: overload (more clients than `--max-queue` admits: 503 with Retry-After instead of growing
latency) and abandonment (clients that hang up after `--abandon-after` s: their requests are dropped
unjudged, or their batch stopped at its next decoding step). Prints
requests/s and p50/p95/p99 latency of each, their ratio, and writes results/bench/serve_load.json.
The clients run in a child process (threads there), so that their HTTP and JSON work does not take
the server's interpreter lock, as real clients would not. Beside the servers, the model's own
batching gain: records/s of its judging call at one request's batch and at `--max-batch` on
the same records (no HTTP), the ceiling of what micro-batching can add beyond per-request overhead.
Run it on an idle machine.

    .venv/bin/python bench/serve_load.py --model runs/demo/models/agrl_s0 --data runs/demo/runs/data/w_eval.jsonl
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import threading
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import httpx
import numpy as np
import torch

from agrl.contract import load_contract
from agrl.data.io import read_records, write_json
from agrl.experiments.provenance import provenance
from agrl.models import DTYPES, load_model, torch_dtype
from agrl.models.scoring import judge
from agrl.serve import create_app, serving


def bodies(path: Path, n: int, products: int) -> list[dict]:
    records = read_records(path)
    out = []
    for i in range(n):
        chunk = [records[(i * products + j) % len(records)] for j in range(products)]
        out.append({"query": chunk[0]["query"], "products": [r["product"] for r in chunk]})
    return out


def drive(base: str, work: list[list[dict]], timeout: float) -> dict:
    """Every client (a thread) posts its bodies one after another; latency per request, statuses."""
    latencies: list[float] = []
    statuses: list[int | str] = []
    lock = threading.Lock()

    def client(mine: list[dict]) -> None:
        with httpx.Client(base_url=base, timeout=timeout) as c:
            for body in mine:
                started = time.perf_counter()
                try:
                    status: int | str = c.post("/judge", json=body).status_code
                except httpx.TimeoutException:
                    status = "client timeout"
                with lock:
                    statuses.append(status)
                    if status == 200:
                        latencies.append(time.perf_counter() - started)

    started = time.perf_counter()
    threads = [threading.Thread(target=client, args=(mine,)) for mine in work]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    seconds = time.perf_counter() - started
    ok = np.array(latencies) if latencies else np.array([np.nan])
    return {
        "requests": len(statuses),
        "ok": int(sum(s == 200 for s in statuses)),
        "status_503": int(sum(s == 503 for s in statuses)),
        "errors_5xx_other": int(sum(isinstance(s, int) and s >= 500 and s != 503 for s in statuses)),
        "client_timeouts": int(sum(s == "client timeout" for s in statuses)),
        "seconds": seconds,
        "requests_per_s": sum(s == 200 for s in statuses) / seconds,
        **{f"p{q}_s": float(np.percentile(ok, q)) for q in (50, 95, 99)},
    }


def model_ceiling(model_path: str, records: list[dict], sizes: tuple[int, ...], early_stop: bool,
                  dtype: str = "fp32", rounds: int = 2) -> dict:  # fmt: skip
    """Records/s of the server's judging call (`agrl.models.scoring.judge`, as `create_app` runs it)
    at each batch size on the same records, without HTTP: best of `rounds`."""
    contract = load_contract(model_path)
    model, tokenizer = load_model(model_path, torch_dtype(dtype))
    kwargs = {"fmt": contract.reasoning_format, "early_stop": early_stop, "system_prompt": contract.system_prompt,
              "rulebook": contract.rulebook, "prompt_rulebook": contract.prompt_rulebook()}  # fmt: skip
    judge(model, tokenizer, records[:2], **kwargs)  # warm-up
    speeds: dict[str, float] = {}
    for size in sizes:
        best = 0.0
        for _ in range(rounds):
            started = time.perf_counter()
            judge(model, tokenizer, records, batch_size=size, **kwargs)
            best = max(best, len(records) / (time.perf_counter() - started))
        speeds[f"batch_{size}_records_per_s"] = best
    return speeds


def metric(base: str, name: str) -> float:
    line = next(x for x in httpx.get(f"{base}/metrics").text.splitlines() if x.startswith(name + " "))
    return float(line.split()[-1])


def merge(rounds: list[dict]) -> dict:
    total = sum(r["seconds"] for r in rounds)
    merged = {
        k: sum(r[k] for r in rounds)
        for k in ("requests", "ok", "status_503", "errors_5xx_other", "client_timeouts")
    }
    return merged | {"seconds": total, "requests_per_s": merged["ok"] / total,
                     **{k: float(np.median([r[k] for r in rounds])) for k in ("p50_s", "p95_s", "p99_s")}}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model", required=True)
    parser.add_argument(
        "--data", required=True, type=Path, help="records whose query and product make the bodies"
    )
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--requests", type=int, default=10, help="requests per client per round")
    parser.add_argument("--products", type=int, default=4, help="products per request")
    parser.add_argument("--rounds", type=int, default=2, help="alternating rounds per server")
    parser.add_argument("--max-batch", type=int, default=64)
    parser.add_argument("--max-wait-ms", type=float, default=20.0)
    parser.add_argument("--max-queue", type=int, default=8, help="queue bound of the overload drill")
    parser.add_argument("--abandon-after", type=float, default=0.5,
                        help="seconds after which the abandonment drill's clients hang up (well before their work is done)")  # fmt: skip
    parser.add_argument("--early-stop", action="store_true", help="label-first models: the grade only")
    parser.add_argument(
        "--dtype", choices=sorted(DTYPES), default="fp32", help="weights of every server (and the ceiling)"
    )
    parser.add_argument("--threads", type=int, default=2, help="torch threads (the machine's cores)")
    parser.add_argument("--out", type=Path, default=Path("results/bench/serve_load.json"))
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    # One child process holds every client thread: their HTTP and JSON work stays off the server's GIL.
    clients = ProcessPoolExecutor(max_workers=1, mp_context=multiprocessing.get_context("spawn"))

    def run_clients(base: str, work: list[list[dict]], timeout: float) -> dict:
        return clients.submit(drive, base, work, timeout).result()

    n = args.clients * args.requests
    pool = bodies(args.data, n, args.products)
    for b in pool:
        b["early_stop"] = args.early_stop
    work = [pool[i :: args.clients] for i in range(args.clients)]
    settings = {"max_batch": args.max_batch, "max_wait_ms": args.max_wait_ms, "request_timeout_s": 600.0,
                "dtype": args.dtype}  # fmt: skip
    peer_app = create_app(args.model, batching=False, max_queue=n + 1, **settings)
    batched_app = create_app(args.model, batching=True, max_queue=n + 1, **settings)
    rounds: dict[str, list[dict]] = {"one_at_a_time": [], "batched": []}
    with serving(peer_app) as peer, serving(batched_app) as batched:
        run_clients(batched, [pool[:1]], 600)  # warm-up: first-call costs out of the timings
        run_clients(peer, [pool[:1]], 600)
        for r in range(args.rounds):
            for name, base in (("one_at_a_time", peer), ("batched", batched)):
                rounds[name].append(run_clients(base, work, 600))
                print(f"round {r} {name}: {json.dumps(rounds[name][-1])}", flush=True)
        batch_mean = metric(batched, "agrl_batch_products_sum") / max(
            1.0, metric(batched, "agrl_batch_products_count")
        )
    result = {name: merge(rs) for name, rs in rounds.items()}
    result["batched"]["mean_batch_products"] = batch_mean
    result["throughput_ratio"] = (
        result["batched"]["requests_per_s"] / result["one_at_a_time"]["requests_per_s"]
    )

    # Overload: as many clients, a queue of max_queue: the excess is refused at once, not queued.
    overload_app = create_app(args.model, batching=True, max_queue=args.max_queue, **settings)
    with serving(overload_app) as base:
        result["overload"] = run_clients(base, work, 600) | {"max_queue": args.max_queue}
    # Abandonment: clients that give up early; their requests must not be judged in full; then one fresh request.
    abandon_app = create_app(args.model, batching=True, max_queue=n + 1, **settings)
    with serving(abandon_app) as base:
        gone = run_clients(
            base, [pool[i :: args.clients][:1] for i in range(args.clients)], args.abandon_after
        )
        time.sleep(2.0)  # the batch running when the clients left stops at its next decoding step
        judged = metric(base, "agrl_batch_products_sum") / args.products
        fresh = run_clients(base, [pool[:1]], 600)
        # requests judged in full = those in batches that ran to the end (answered or not); a stopped
        # batch adds to `stopped_batches` and its requests to `dropped`, not to the judged products
        result["abandoned"] = {"requests": gone["requests"], "client_timeouts": gone["client_timeouts"],
                               "answered": gone["ok"], "abandon_after_s": args.abandon_after,
                               "requests_judged_in_full": judged, "dropped": metric(base, "agrl_dropped_requests"),
                               "stopped_batches": metric(base, "agrl_stopped_batches"),
                               "fresh_request_s": fresh["p50_s"]}  # fmt: skip
    clients.shutdown()
    records = read_records(args.data)[: args.max_batch]
    result["model_ceiling"] = model_ceiling(
        args.model, records, (args.products, args.max_batch), args.early_stop, args.dtype
    )
    result["setup"] = vars(args) | {
        "data": str(args.data),
        "out": str(args.out),
        "torch": torch.__version__,
        "provenance": provenance(),
    }
    print(json.dumps(result, indent=2))
    print(f"batched / one at a time: {result['throughput_ratio']:.2f}x requests/s "
          f"({result['batched']['requests_per_s']:.2f} vs {result['one_at_a_time']['requests_per_s']:.2f}); "
          f"p99 {result['batched']['p99_s']:.2f} s vs {result['one_at_a_time']['p99_s']:.2f} s")  # fmt: skip
    ceiling = result["model_ceiling"]
    print(f"model alone (no HTTP), {len(records)} records: batch {args.products} "
          f"{ceiling[f'batch_{args.products}_records_per_s']:.1f} vs batch {args.max_batch} "
          f"{ceiling[f'batch_{args.max_batch}_records_per_s']:.1f} records/s")  # fmt: skip
    write_json(args.out, result)


if __name__ == "__main__":
    main()
