"""Torch-backed commands (`train`, `predict`, `serve`, `demo`, `reproduce`), imported lazily by the CLI."""

from __future__ import annotations

import argparse
import json
import warnings
from functools import partial
from pathlib import Path

from agrl.configs import config_path
from agrl.experiments.budgets import ComparisonBudget, EsciBudget, budget_from, budget_parser

# transformers 5 renames gradient_checkpointing; TRL still sets it. Not actionable for users.
warnings.filterwarnings("ignore", message=".*gradient_checkpointing.*deprecated.*")

METHODS = ("sft", "dpo", "grpo", "agrl")


def cmd_train(args: argparse.Namespace) -> int:
    from agrl.train.config import AGRLConfig, AgrlDPOConfig, AgrlSFTConfig, load_config

    classes = {"sft": AgrlSFTConfig, "dpo": AgrlDPOConfig, "grpo": AGRLConfig, "agrl": AGRLConfig}
    if args.fields:  # what --key value accepts: the config class's own parser, with defaults
        from trl import TrlParser

        TrlParser(classes[args.method], prog=f"agrl train {args.method}").print_help()  # type: ignore[arg-type]
        return 0
    if args.config is not None and not args.config.exists() and args.config.parent == Path("."):
        args.config = config_path(args.config.name)  # a shipped config by name, from any directory
    if args.config is not None and not args.config.exists():
        raise FileNotFoundError(f"--config {args.config}: no such file")

    from agrl.train.common import removed_on_failure

    if args.method == "sft":
        from agrl.train.sft import run_sft

        sft = load_config(AgrlSFTConfig, args.config, args.overrides)
        output_dir, start = sft.output_dir, partial(run_sft, sft)
    elif args.method == "dpo":
        from agrl.train.dpo import run_dpo

        dpo = load_config(AgrlDPOConfig, args.config, args.overrides)
        output_dir, start = dpo.output_dir, partial(run_dpo, dpo)
    else:
        from agrl.train.grpo import run_grpo

        # `grpo` defaults to plain GRPO (outcome reward, no replay); `agrl` to the full method.
        defaults = {"reward_mode": "outcome", "replay": False} if args.method == "grpo" else {}
        rl = load_config(AGRLConfig, args.config, args.overrides, **defaults)
        output_dir, start = rl.output_dir, partial(run_grpo, rl)
    with removed_on_failure(output_dir or "trainer_output"):
        out = start()
    print(json.dumps({"method": args.method, "output_dir": out}))
    return 0


def cmd_merge(args: argparse.Namespace) -> int:
    from agrl.train.merge import merge_models

    out = merge_models(args.base, args.model, args.alpha, args.out)
    print(json.dumps({"output_dir": str(out), "alpha": args.alpha}))
    return 0


def cmd_predict(args: argparse.Namespace) -> int:
    from agrl.predict import run_predict

    print(
        json.dumps(
            run_predict(
                args.model,
                args.data,
                args.out,
                args.batch_size,
                args.max_new_tokens,
                args.resume,
                args.system_prompt,
                args.early_stop,
                dtype=args.dtype,
            )
        )
    )
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    import uvicorn

    from agrl.serve import create_app

    app = create_app(
        args.model,
        max_batch=args.max_batch,
        system_prompt=args.system_prompt,
        fmt=args.format,
        max_new_tokens=args.max_new_tokens,
        max_body_bytes=args.max_body_bytes,
        max_wait_ms=args.max_wait_ms,
        max_queue=args.max_queue,
        request_timeout_s=args.request_timeout_s,
        batching=not args.no_batching,
        dtype=args.dtype,
    )
    uvicorn.run(app, host=args.host, port=args.port, log_level="info")
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from agrl.experiments.shoprules import run_demo

    run_demo(Path(args.out), seed=args.seed, rl_cli=args.overrides)
    return 0


def cmd_reproduce(args: argparse.Namespace) -> int:
    from agrl.experiments.shoprules import run_reproduce

    budget = budget_from(ComparisonBudget, args)
    run_reproduce(
        Path(args.out),
        seeds=args.seeds,
        scale=args.scale,
        rl_cli=args.overrides,
        budget=budget,
        resume=args.resume,
    )
    return 0


def cmd_esci(args: argparse.Namespace) -> int:
    from agrl.experiments.esci import run_esci

    summary = run_esci(
        args.data,
        args.out,
        budget_from(EsciBudget, args),
        work=args.work,
        eval_data=args.eval_data,
        resume=args.resume,
        report_only=args.report_only,
    )
    print(
        json.dumps(
            {
                name: {"accuracy": round(m["accuracy"], 4), "macro_f1": round(m["macro_f1"], 4)}
                for name, m in summary["methods"].items()
            }
        )
    )
    return 0


def _judge_options(p: argparse.ArgumentParser) -> None:
    """What `predict` and `serve` both need to know of the model they run."""
    p.add_argument(
        "--model", required=True, help="model folder (with agrl.json), hub id available offline, or smollm2"
    )
    p.add_argument("--max-new-tokens", "--max_new_tokens", type=int, default=128, help="completion budget")
    p.add_argument(
        "--system-prompt",
        "--system_prompt",
        action="store_true",
        default=None,
        help="the model was trained with the system prompt (default: what its agrl.json says)",
    )
    p.add_argument(
        "--dtype",
        choices=("fp32", "bf16"),
        default="fp32",
        help="inference precision: bf16 uses the CPU's AMX / the GPU's tensor cores (bench/predict_speed.py)",
    )


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "train", help="train a judge: sft | dpo | grpo | agrl (TRL config fields as --key value)"
    )
    p.add_argument("method", choices=METHODS, help="training stage (grpo = outcome reward, no replay)")
    p.add_argument(
        "--config",
        type=Path,
        help="YAML config (fields of the TRL config plus agrl's): a path, or "
        "the name of a shipped one (agrl_tiny.yaml, sft_tiny.yaml, ...)",
    )
    p.add_argument(
        "--fields",
        action="store_true",
        help="list every field the stage accepts (TRL's and agrl's) with its default and help, then exit",
    )
    p.set_defaults(func=cmd_train, accepts_overrides=True)

    p = sub.add_parser(
        "merge",
        help="interpolate a tuned judge's weights with its start's: (1 - alpha) * base + alpha * tuned",
    )
    p.add_argument("--base", required=True, type=Path, help="the model training started from (e.g. the SFT)")
    p.add_argument("--model", required=True, type=Path, help="the tuned model (e.g. AGRL)")
    p.add_argument("--alpha", required=True, type=float, help="weight of the tuned model, in [0, 1]")
    p.add_argument("--out", required=True, type=Path, help="a new folder for the merged model")
    p.set_defaults(func=cmd_merge)

    p = sub.add_parser("predict", help="judge records with a model: JSONL/CSV/Parquet in, JSONL out")
    p.add_argument("--data", required=True, type=Path, help="records (JSONL/CSV/Parquet) or an ESCI folder")
    p.add_argument("--out", required=True, type=Path, help="{id, completion} rows; .jsonl, .csv or .parquet")
    p.add_argument(
        "--resume",
        action="store_true",
        help="keep the rows a killed or finished run already wrote and judge only the other ids",
    )
    p.add_argument("--batch-size", "--batch_size", type=int, default=64, help="records per generate call")
    _judge_options(p)
    p.add_argument(
        "--early-stop",
        "--early_stop",
        action="store_true",
        help="stop each completion at </answer>: a label-first model's label in a few tokens, "
        "without its reasoning (a think-first model writes its label last: no saving)",
    )
    p.set_defaults(func=cmd_predict)

    p = sub.add_parser("serve", help="HTTP judge (FastAPI)")
    p.add_argument("--host", default="127.0.0.1", help="bind address")
    p.add_argument("--port", type=int, default=8000, help="bind port")
    p.add_argument(
        "--max-batch",
        "--max_batch",
        type=int,
        default=64,
        help="most products per request, and per model batch across requests",
    )
    p.add_argument(
        "--max-wait-ms",
        "--max_wait_ms",
        type=float,
        default=10.0,
        help="how long a batch waits for more requests to share it, counted from when the model is free",
    )
    p.add_argument(
        "--max-queue",
        "--max_queue",
        type=int,
        default=256,
        help="requests that may wait; beyond it, HTTP 503 with Retry-After",
    )
    p.add_argument(
        "--request-timeout-s",
        "--request_timeout_s",
        type=float,
        default=60.0,
        help="a request not answered by then gets 503 and is not judged",
    )
    p.add_argument(
        "--no-batching",
        "--no_batching",
        action="store_true",
        help="judge one request at a time (no micro-batching across requests)",
    )
    p.add_argument(
        "--max-body-bytes",
        "--max_body_bytes",
        type=int,
        default=1_000_000,
        help="larger request bodies get HTTP 413",
    )
    p.add_argument(
        "--format",
        default=None,
        choices=("think_first", "label_first"),
        help="reasoning format (default: what the model's agrl.json says)",
    )
    _judge_options(p)
    p.set_defaults(func=cmd_serve)

    p = sub.add_parser("demo", help="the embedded default: data, tiny model, SFT, GRPO, AGRL, report")
    p.add_argument("--out", default="runs/demo", help="folder for data, models, report.md, summary.json")
    p.add_argument("--seed", type=int, default=0, help="seed of the RL runs")
    p.set_defaults(func=cmd_demo, accepts_overrides=True)

    p = sub.add_parser(
        "reproduce", help="the paper's comparison table over seeds", parents=[budget_parser(ComparisonBudget)]
    )
    p.add_argument("--out", default="results/reproduce", help="folder for report.md, summary.json, plots")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4],
                   help="seeds of every arm (paired); with --warm_starts 2 (the default) 0-2 start from one SFT model, 3-4 from another")  # fmt: skip
    p.add_argument(
        "--scale", default="default", choices=("tiny", "small", "default"), help="ShopRules split sizes"
    )
    p.add_argument("--resume", action="store_true",
                   help="read back the arms a killed run of --out finished instead of training them again")  # fmt: skip
    p.set_defaults(func=cmd_reproduce, accepts_overrides=True)

    p = sub.add_parser(
        "esci",
        help="real data: SmolLM2 SFT / GRPO-PR / AGRL beside majority, overlap and MiniLM "
        "peers on an ESCI folder's dev queries",
        parents=[budget_parser(EsciBudget)],
    )
    p.add_argument("--train", "--data", dest="data", required=True, type=Path,
                   help="ESCI folder (official parquet layout) to train on; without --eval it is split by query")  # fmt: skip
    p.add_argument("--eval", dest="eval_data", type=Path, default=None,
                   help="ESCI folder to evaluate on (all of it; no query may be in --train)")  # fmt: skip
    p.add_argument(
        "--out", default=Path("results/esci"), type=Path, help="folder for report.md, summary.json, plots"
    )
    p.add_argument("--work", default=Path("runs/esci"), type=Path, help="folder for split data and models")
    p.add_argument("--resume", action="store_true",
                   help="read back the stages a killed run in --work finished (work/stages) and continue "
                        "a killed training from its last checkpoint")  # fmt: skip
    p.add_argument("--report_only", "--report-only", action="store_true",
                   help="train nothing: write the report of the stages a run in --work has finished so far")  # fmt: skip
    p.set_defaults(func=cmd_esci)
