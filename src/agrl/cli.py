"""`agrl` command line: data, baseline, reward, eval, train, merge, predict, serve, demo, reproduce."""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from pathlib import Path
from typing import Any

from agrl import __version__
from agrl.data.io import DataError, read_prediction_rows, read_records, write_jsonl
from agrl.data.shoprules import HEAD_RULES, SFT_TAIL_SHARE
from agrl.rules import RulebookError, default_rulebook, load_rulebook


def _rulebook(args: argparse.Namespace):
    return load_rulebook(getattr(args, "rulebook", None))


def cmd_data_shoprules(args: argparse.Namespace) -> int:
    from agrl.data.shoprules import generate

    started = time.perf_counter()
    stats = generate(
        args.out,
        seed=args.seed,
        scale=args.scale,
        rulebook=_rulebook(args),
        sft_tail_share=args.sft_tail_share,
    )
    counts = {s: v["n"] for s, v in stats["splits"].items()}
    print(
        json.dumps(
            {"out": str(args.out), "seconds": round(time.perf_counter() - started, 2), "records": counts}
        )
    )
    return 0


def cmd_data_esci(args: argparse.Namespace) -> int:
    from agrl.data.esci import load_esci

    records = load_esci(args.folder, locale=args.locale, split=args.split, limit=args.limit)
    write_jsonl(args.out, records)
    print(json.dumps({"out": str(args.out), "records": len(records)}))
    return 0


def cmd_baseline_overlap(args: argparse.Namespace) -> int:
    from agrl.baselines import overlap_completion

    records = read_records(args.data, require_label=False)
    n = write_jsonl(
        args.out,
        (
            {"id": r["id"], "completion": overlap_completion(r["query"], r["product"]["title"])}
            for r in records
        ),
    )
    print(json.dumps({"out": str(args.out), "predictions": n}))
    return 0


def cmd_reward(args: argparse.Namespace) -> int:
    from agrl.rewards import check_weights, score_completion

    records = {r["id"]: r for r in read_records(args.data, require_label=False)}
    weights = check_weights(json.loads(args.weights)) if args.weights else None
    rulebook = _rulebook(args)
    rows: list[dict[str, Any]] = []
    for _, pid, completion in read_prediction_rows(args.completions):
        if pid not in records:
            raise DataError(args.completions, None, "id", f"{pid!r} is not in {args.data}")
        rows.append({"id": pid, **score_completion(completion, records[pid], rulebook, weights, args.format)})
    write_jsonl(args.out, rows)
    mean = sum(r["total"] for r in rows) / len(rows) if rows else 0.0
    print(json.dumps({"out": str(args.out), "scored": len(rows), "mean_total": round(mean, 4)}))
    return 0


def cmd_eval(args: argparse.Namespace) -> int:
    from agrl.contract import load_contract
    from agrl.data.load import load_records
    from agrl.evaluate import HEADLINE, evaluate, prediction_coverage, write_evaluation

    fmt, rulebook = args.format, _rulebook(args)
    if args.model:  # the model's contract says how to read its outputs
        contract = load_contract(args.model)
        contract.check(str(args.model), reasoning_format=fmt)
        fmt = contract.reasoning_format
        rulebook = rulebook if args.rulebook else contract.rulebook
    records = load_records(args.data)
    if not records:
        raise DataError(args.data, None, None, "no records to evaluate on")
    predictions, coverage = prediction_coverage(
        records, read_prediction_rows(args.predictions), args.predictions
    )
    # Head/tail split of the shipped rulebook (ShopRules); a user's rulebook has no known head.
    head = HEAD_RULES if rulebook.ids == default_rulebook().ids else None
    metrics = evaluate(records, predictions, rulebook, fmt or "think_first", head_rules=head)
    write_evaluation(
        metrics,
        args.out,
        title=f"Evaluation of {Path(args.predictions).name} on {Path(args.data).name}",
        coverage=coverage,
    )
    if coverage["missing"] or coverage["duplicate_ids"] or coverage["unknown_ids"]:
        logging.getLogger(__name__).warning("predictions %s: %d records without a prediction (scored wrong), %d duplicate ids "
                    "(last row kept), %d unknown ids (ignored)", args.predictions, coverage["missing"],
                    coverage["duplicate_ids"], coverage["unknown_ids"])  # fmt: skip
    shown = {k: coverage[k] for k in ("matched", "missing", "duplicate_ids", "unknown_ids")}
    print(json.dumps({k: metrics.get(k) for k in ("n", *HEADLINE)} | shown))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="agrl", description=__doc__)
    parser.add_argument("--version", action="version", version=f"agrl {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    data = sub.add_parser("data", help="generate or convert data").add_subparsers(
        dest="source", required=True
    )
    p = data.add_parser("shoprules", help="generate the ShopRules benchmark")
    p.add_argument("--out", required=True, type=Path, help="folder for the split files and stats.json")
    p.add_argument("--seed", type=int, default=0, help="same seed -> same bytes")
    p.add_argument("--scale", choices=("tiny", "small", "default"), default="default", help="split sizes")
    p.add_argument(
        "--sft-tail-share",
        "--sft_tail_share",
        type=float,
        default=SFT_TAIL_SHARE,
        help="share of each tail rule in the sft split (0 allowed)",
    )
    p.add_argument("--rulebook", type=Path, help="rulebook YAML (default: the shipped one)")
    p.set_defaults(func=cmd_data_shoprules)
    p = data.add_parser(
        "esci", help="convert the ESCI parquet layout to agrl JSONL with heuristic annotations"
    )
    p.add_argument("--folder", required=True, type=Path, help="folder in the official ESCI parquet layout")
    p.add_argument("--out", required=True, type=Path, help="JSONL records to write")
    p.add_argument("--locale", default="us", help="product_locale to keep")
    p.add_argument("--split", choices=("train", "test"), help="ESCI split to keep (default: both)")
    p.add_argument("--limit", type=int, help="keep the first N records")
    p.set_defaults(func=cmd_data_esci)

    baseline = sub.add_parser("baseline", help="reference predictors").add_subparsers(
        dest="kind", required=True
    )
    p = baseline.add_parser("overlap", help="word-overlap baseline")
    p.add_argument("--data", required=True, type=Path, help="records (JSONL/CSV/Parquet)")
    p.add_argument("--out", required=True, type=Path, help="JSONL of {id, completion}")
    p.set_defaults(func=cmd_baseline_overlap)

    p = sub.add_parser("reward", help="score completions with the rule-aware rewards")
    p.add_argument("--data", required=True, type=Path, help="records with ground truth")
    p.add_argument("--completions", required=True, type=Path, help="JSONL of {id, completion}")
    p.add_argument("--out", required=True, type=Path, help="JSONL of {id, total, components}")
    p.add_argument("--weights", help="JSON object of component weights, e.g. '{\"label\": 1}'")
    p.add_argument(
        "--format", default="think_first", choices=("think_first", "label_first"), help="reasoning format"
    )
    p.add_argument("--rulebook", type=Path, help="rulebook YAML (default: the shipped one)")
    p.set_defaults(func=cmd_reward)

    p = sub.add_parser("eval", help="evaluate predictions")
    p.add_argument("--data", required=True, type=Path, help="labelled records, or an ESCI folder")
    p.add_argument("--predictions", required=True, type=Path, help="JSONL of {id, completion}")
    p.add_argument("--out", required=True, type=Path, help="folder for metrics.json and report.md")
    p.add_argument("--model", type=Path, help="the model folder whose agrl.json says how to read the outputs")
    p.add_argument(
        "--format",
        default=None,
        choices=("think_first", "label_first"),
        help="reasoning format (default: the model's, else think_first)",
    )
    p.add_argument("--rulebook", type=Path, help="rulebook YAML (default: the model's, else the shipped one)")
    p.set_defaults(func=cmd_eval)

    _add_late_commands(sub)
    return parser


def _add_late_commands(sub: argparse._SubParsersAction) -> None:
    """Commands that need torch; imported lazily so `agrl data` stays fast."""
    try:
        from agrl import commands
    except ImportError:  # pragma: no cover - partial installs
        return
    commands.register(sub)


def configure_logging() -> None:
    """agrl's progress lines on stderr as `[agrl HH:MM:SS] message`; other libraries' loggers untouched."""
    logger = logging.getLogger("agrl")
    if not logger.handlers:
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("[agrl %(asctime)s] %(message)s", datefmt="%H:%M:%S"))
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)
        logger.propagate = False


def main(argv: list[str] | None = None) -> int:
    configure_logging()
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    if extra and not getattr(args, "accepts_overrides", False):
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    args.overrides = extra
    try:
        return int(args.func(args) or 0)
    except (
        DataError,
        RulebookError,
        ValueError,
        OSError,
    ) as exc:  # OSError: missing, unwritable, not a folder
        print(f"agrl: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
