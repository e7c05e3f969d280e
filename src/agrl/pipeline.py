"""End-to-end runs: `agrl demo` (tiny scale, minutes) and `agrl reproduce` (the paper's table over seeds).

Both: generate ShopRules -> SFT warm-start -> RL methods from the same SFT checkpoint -> evaluate
every model on b_eval / w_eval / hard -> summary.json + report.md with plots.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from importlib import resources
from pathlib import Path

from agrl.data.io import read_records, write_json, write_jsonl
from agrl.data.shoprules import generate
from agrl.evaluate import evaluate
from agrl.report import summarize, write_report

EVAL_SPLITS = ("b_eval", "w_eval", "hard")
RL_METHODS = {  # method -> config file (configs/) and its overrides
    "grpo": "grpo_tiny.yaml",
    "grpo_pr": "grpo_pr_tiny.yaml",
    "replay_only": "replay_only_tiny.yaml",
    "agrl": "agrl_tiny.yaml",
}


def config_path(name: str) -> Path:
    """Shipped configs live in the repository's configs/ folder (or beside an installed package)."""
    for base in (Path.cwd() / "configs", Path(__file__).resolve().parents[2] / "configs"):
        if (base / name).exists():
            return base / name
    packaged = resources.files("agrl").joinpath("configs", name)
    if packaged.is_file():
        return Path(str(packaged))
    raise FileNotFoundError(f"config {name} not found in ./configs")


def _commit() -> str:
    """The code version results came from (git commit, or "unknown" outside a checkout)."""
    import subprocess

    try:
        done = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=10,
                              cwd=Path(__file__).resolve().parent)
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], capture_output=True,
                               text=True, timeout=10, cwd=Path(__file__).resolve().parent).stdout.strip()
        return done.stdout.strip() + (" (with uncommitted changes)" if dirty else "") if done.returncode == 0 else "unknown"
    except OSError:
        return "unknown"


def _say(message: str) -> None:
    print(f"[agrl {time.strftime('%H:%M:%S')}] {message}", flush=True)


def train_sft(data: Path, out: Path, seed: int, overrides: Sequence[str] = ()) -> Path:
    from agrl.train.config import AgrlSFTConfig, load_config
    from agrl.train.sft import run_sft

    args = load_config(AgrlSFTConfig, config_path("sft_tiny.yaml"), [
        "--train_file", str(data / "sft.jsonl"), "--tiny_vocab_files", str(data / "rl.jsonl"),
        "--output_dir", str(out), "--seed", str(seed), *overrides])
    return Path(run_sft(args))


def train_rl(method: str, sft: Path, data: Path, out: Path, seed: int, overrides: Sequence[str] = (),
             eval_every: int = 0) -> Path:
    from agrl.train.config import AGRLConfig, load_config
    from agrl.train.grpo import run_grpo

    extra = ["--eval_files", f"hard={data / 'hard.jsonl'}", "--eval_every_steps", str(eval_every),
             "--eval_max_samples", "100"] if eval_every else []
    args = load_config(AGRLConfig, config_path(RL_METHODS[method]), [
        "--model_name_or_path", str(sft), "--train_file", str(data / "rl.jsonl"), "--output_dir", str(out),
        "--seed", str(seed), *extra, *overrides])
    return Path(run_grpo(args))


def train_dpo(sft: Path, data: Path, out: Path, seed: int, n: int = 8, max_prompts: int = 400,
              overrides: Sequence[str] = ()) -> tuple[Path, dict]:
    from agrl.models import load_model
    from agrl.train.config import AgrlDPOConfig, load_config
    from agrl.train.dpo import build_pairs, pairs_dataset, run_dpo

    records = read_records(data / "rl.jsonl")[:max_prompts]
    model, tokenizer = load_model(str(sft))
    pairs, counts = build_pairs(model, tokenizer, records, n=n, seed=seed)
    write_jsonl(out.parent / f"{out.name}_pairs.jsonl", pairs)
    args = load_config(AgrlDPOConfig, config_path("dpo_tiny.yaml"), [
        "--model_name_or_path", str(sft), "--output_dir", str(out), "--seed", str(seed),
        *overrides])
    by_id = {str(r["id"]): r for r in records}
    if not pairs:
        raise RuntimeError(f"DPO: no pairs from {len(records)} prompts ({counts})")
    return Path(run_dpo(args, pairs_dataset(pairs, by_id, args))), counts


def evaluate_model(model_dir: Path, data: Path, out: Path, max_samples: int | None = None) -> dict:
    """Greedy predictions and metrics of one model on every evaluation split."""
    from agrl.models import load_model
    from agrl.models.generate import generate_completions

    model, tokenizer = load_model(str(model_dir))
    results = {}
    for split in EVAL_SPLITS:
        records = read_records(data / f"{split}.jsonl")[:max_samples]
        texts = generate_completions(model, tokenizer, records, desc=f"eval {model_dir.name}/{split}")
        predictions = {r["id"]: t[0] for r, t in zip(records, texts)}
        write_jsonl(out / f"{split}.predictions.jsonl", ({"id": k, "completion": v} for k, v in predictions.items()))
        results[split] = evaluate(records, predictions)
        write_json(out / f"{split}.metrics.json", results[split])
    return results


def run_demo(out: Path, seed: int = 0, overrides: Sequence[str] = (), sft_overrides: Sequence[str] = (),
             eval_max_samples: int | None = None, eval_every: int = 10) -> dict:
    """The embedded default: tiny ShopRules, tiny model, SFT, then GRPO and AGRL from the same SFT.

    `overrides` apply to both RL runs, `sft_overrides` to SFT (e.g. fewer steps for a smoke run).
    """
    started = time.perf_counter()
    data = out / "data"
    _say(f"generating ShopRules (tiny scale, seed {seed}) -> {data}")
    generate(data, seed=seed, scale="tiny")
    models = out / "models"
    _say("SFT warm-start of the tiny model")
    sft = train_sft(data, models / "sft", seed, sft_overrides)
    trained = {"sft": sft}
    for method in ("grpo", "agrl"):
        _say(f"{method} from the SFT checkpoint")
        trained[method] = train_rl(method, sft, data, models / method, seed, overrides, eval_every=eval_every)
    for method, path in trained.items():
        _say(f"evaluating {method}")
        evaluate_model(path, data, out / "eval" / method, eval_max_samples)
    summary = rebuild_demo_report(out, seed, seconds=time.perf_counter() - started)
    _say(f"done in {time.perf_counter() - started:.0f} s; report: {out / 'report.md'}")
    print((out / "table.md").read_text())
    return summary


def _history(model_dir: Path) -> list[dict]:
    path = model_dir / "trainer_state.json"
    return json.loads(path.read_text())["log_history"] if path.exists() else []


def run_reproduce(out: Path, seeds: Sequence[int] = (0, 1, 2), scale: str = "default",
                  overrides: Sequence[str] = (), methods: Sequence[str] = ("sft", "dpo", *RL_METHODS),
                  eval_max_samples: int | None = 200, sft_overrides: Sequence[str] = ()) -> dict:
    """The comparison table: one SFT warm-start, then every method from it over `seeds`.

    As in the paper, all methods start from the same SFT checkpoint (data seed 0); the seeds vary
    DPO's pass@N sampling and the RL runs (rollout sampling, data order). Models go under out/runs
    (not committed); summary.json, report.md and the plots go beside them.
    """
    started = time.perf_counter()
    results: dict = {m: {} for m in methods}
    histories: dict = {m: {} for m in methods if m in RL_METHODS}
    extra: dict = {"commit": _commit()}
    work = out / "runs"
    data = work / "data"
    _say(f"generating ShopRules ({scale}, seed 0)")
    generate(data, seed=0, scale=scale)
    _say("SFT warm-start")
    sft = train_sft(data, work / "models" / "sft", 0, sft_overrides)
    results["sft"][0] = evaluate_model(sft, data, work / "eval" / "sft", eval_max_samples)
    for seed in seeds:
        trained = {}
        if "dpo" in methods:
            _say(f"seed {seed}: DPO pairs + training")
            trained["dpo"], extra[f"dpo_pairs_seed{seed}"] = train_dpo(sft, data, work / "models" / f"dpo_s{seed}", seed)
        for method in (m for m in methods if m in RL_METHODS):
            _say(f"seed {seed}: {method}")
            path = train_rl(method, sft, data, work / "models" / f"{method}_s{seed}", seed, overrides, eval_every=10)
            trained[method] = path
            histories[method][seed] = _history(path)
        for method, path in trained.items():
            _say(f"seed {seed}: evaluating {method}")
            results[method][seed] = evaluate_model(path, data, work / "eval" / f"{method}_s{seed}", eval_max_samples)
        write_json(out / "partial_results.json", results)
    summary = summarize(results)
    write_json(out / "summary.json", summary)
    write_report(out, summary, results, histories, title=f"agrl reproduce ({scale} data, seeds {list(seeds)})",
                 command=f"agrl reproduce --scale {scale} --seeds {' '.join(map(str, seeds))}",
                 seconds=time.perf_counter() - started, extra=extra)
    return summary


def rebuild_demo_report(out: Path, seed: int = 0, seconds: float = 0.0) -> dict:
    """Re-render a finished demo's report from its saved metrics and trainer states (no training)."""
    methods = [m for m in ("sft", "grpo", "agrl") if (out / "eval" / m).exists()]
    results = {m: {seed: {s: json.loads((out / "eval" / m / f"{s}.metrics.json").read_text()) for s in EVAL_SPLITS}}
               for m in methods}
    summary = summarize(results)
    write_json(out / "summary.json", summary)
    histories = {m: {seed: _history(out / "models" / m)} for m in methods if m != "sft"}
    write_report(out, summary, results, histories, title="agrl demo (tiny scale)", command="make demo",
                 seconds=seconds)
    return summary
