"""End-to-end runs: `agrl demo` (tiny scale, minutes) and `agrl reproduce` (the decisive comparison).

Both: generate ShopRules -> SFT warm-start -> a gate that checks the paper's regime (head rules
learnt, tail unsolved, tail prompts stuck) -> every arm from the same SFT checkpoint -> greedy
evaluation on b_eval / w_eval / tail -> summary.json + report.md with plots.

Arms, per seed: the control (SFT continued on the same `rl` prompts' gold references, same step
budget), DPO (pass@N pairs on those prompts), GRPO, GRPO-PR, replay-only and AGRL. Every arm of
a seed trains on the same prompts in the same order, so seeds pair up across arms.
"""

from __future__ import annotations

import json
import random
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from importlib import resources
from pathlib import Path

from agrl.data.io import read_records, write_json, write_jsonl
from agrl.data.shoprules import HEAD_RULES, generate
from agrl.evaluate import evaluate, luck_proof
from agrl.report import curve_summary, summarize, write_report
from agrl.rules import default_rulebook

EVAL_SPLITS = ("b_eval", "w_eval", "tail")
RL_METHODS = {  # method -> config file (configs/)
    "grpo": "grpo_tiny.yaml",
    "grpo_pr": "grpo_pr_tiny.yaml",
    "replay_only": "replay_only_tiny.yaml",
    "agrl": "agrl_tiny.yaml",
}
ARMS = ("sft_gold", "dpo", *RL_METHODS)


@dataclass
class Budget:
    """How much of everything one comparison spends (the knobs of `agrl reproduce` and `agrl demo`)."""

    rl_steps: int = 200
    prompts_per_step: int = 4  # per_device_train_batch_size / num_generations of the RL configs
    eval_n: int = 500  # records per evaluation split
    curve_every: int = 20  # tail-solved learning curve: every N steps ...
    curve_n: int = 100  # ... on this many fixed `tail` records
    dpo_steps: int = 200
    gate_prompts: int = 120  # luck-proof tail `rl` prompts sampled 8 times for the stuck-rate gate
    gate_samples: int = 8


BUDGET_HELP = {
    "rl_steps": "optimizer steps of every RL arm (and of the SFT-on-gold control)",
    "prompts_per_step": "prompts per RL step (the RL configs' batch / num_generations)",
    "eval_n": "records per evaluation split (b_eval, w_eval, tail)",
    "curve_every": "tail-solved learning curve: evaluate every N steps",
    "curve_n": "fixed tail records of the learning curve",
    "dpo_steps": "DPO optimizer steps",
    "gate_prompts": "luck-proof tail rl prompts sampled for the stuck-rate gate",
    "gate_samples": "samples per prompt for the stuck-rate gate",
}
# The gate: (name, metric key, op, threshold)
GATE = (
    ("head w_eval accuracy after SFT", "head_accuracy", ">=", 0.90),
    ("tail solved after SFT", "tail_solved", "<=", 0.15),
    ("tail rl prompts with no correct label in 8 samples", "stuck_rate", ">=", 0.40),
)


def config_path(name: str) -> Path:
    """A shipped config (package data, `src/agrl/configs/`; `configs/` in a checkout links to it)."""
    packaged = resources.files("agrl").joinpath("configs", name)
    if not packaged.is_file():
        raise FileNotFoundError(f"config {name} is not one of agrl's shipped configs")
    return Path(str(packaged))


def _commit() -> str:
    """The code version results came from (git commit, or "unknown" outside a checkout)."""
    import subprocess

    try:
        done = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            timeout=10,
            cwd=Path(__file__).resolve().parent,
        )
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            timeout=10,
            cwd=Path(__file__).resolve().parent,
        ).stdout.strip()
        return (
            done.stdout.strip() + (" (with uncommitted changes)" if dirty else "")
            if done.returncode == 0
            else "unknown"
        )
    except OSError:
        return "unknown"


def _say(message: str) -> None:
    print(f"[agrl {time.strftime('%H:%M:%S')}] {message}", flush=True)


def _curve_args(data: Path, budget: Budget) -> list[str]:
    return [
        "--eval_files",
        f"tail={data / 'tail.jsonl'}",
        "--eval_every_steps",
        str(budget.curve_every),
        "--eval_max_samples",
        str(budget.curve_n),
    ]


def train_sft(data: Path, out: Path, seed: int, overrides: Sequence[str] = ()) -> Path:
    from agrl.train.config import AgrlSFTConfig, load_config
    from agrl.train.sft import run_sft

    args = load_config(
        AgrlSFTConfig,
        config_path("sft_tiny.yaml"),
        [
            "--train_file",
            str(data / "sft.jsonl"),
            "--tiny_vocab_files",
            str(data / "rl.jsonl"),
            "--output_dir",
            str(out),
            "--seed",
            str(seed),
            *overrides,
        ],
    )
    return Path(run_sft(args))


def rl_prompts(data: Path, seed: int, budget: Budget) -> Path:
    """The `rl` prompts every arm of this seed trains on, in order: a seeded shuffle, cut to the budget."""
    records = read_records(data / "rl.jsonl")
    random.Random(f"agrl/rl-order/{seed}").shuffle(records)
    path = data / f"rl_s{seed}.jsonl"
    write_jsonl(path, records[: budget.rl_steps * budget.prompts_per_step])
    return path


def train_rl(
    method: str,
    sft: Path,
    prompts: Path,
    data: Path,
    out: Path,
    seed: int,
    budget: Budget,
    overrides: Sequence[str] = (),
) -> Path:
    from agrl.train.config import AGRLConfig, load_config
    from agrl.train.grpo import run_grpo

    args = load_config(
        AGRLConfig,
        config_path(RL_METHODS[method]),
        [
            "--model_name_or_path",
            str(sft),
            "--train_file",
            str(prompts),
            "--output_dir",
            str(out),
            "--seed",
            str(seed),
            "--max_steps",
            str(budget.rl_steps),
            "--shuffle_dataset",
            "false",
            *_curve_args(data, budget),
            *overrides,
        ],
    )
    return Path(run_grpo(args))


def train_control(sft: Path, prompts: Path, data: Path, out: Path, seed: int, budget: Budget) -> Path:
    """SFT continued on the RL prompts' gold references: the RL arms' information, without RL."""
    from agrl.train.config import AgrlSFTConfig, load_config
    from agrl.train.sft import run_sft

    args = load_config(
        AgrlSFTConfig,
        config_path("sft_gold_tiny.yaml"),
        [
            "--model_name_or_path",
            str(sft),
            "--train_file",
            str(prompts),
            "--output_dir",
            str(out),
            "--seed",
            str(seed),
            "--max_steps",
            str(budget.rl_steps),
            "--per_device_train_batch_size",
            str(budget.prompts_per_step),
            *_curve_args(data, budget),
        ],
    )
    return Path(run_sft(args))


def train_dpo(sft: Path, prompts: Path, out: Path, seed: int, budget: Budget) -> tuple[Path | None, dict]:
    """DPO on pass@8 pairs of the SFT model; (None, counts) when no prompt gives a pair."""
    from agrl.models import load_model
    from agrl.train.config import AgrlDPOConfig, load_config
    from agrl.train.dpo import build_pairs, pairs_dataset, run_dpo

    records = read_records(prompts)
    model, tokenizer = load_model(str(sft))
    pairs, counts = build_pairs(model, tokenizer, records, n=8, seed=seed)
    write_jsonl(out.parent / f"{out.name}_pairs.jsonl", pairs)
    if not pairs:
        return None, counts
    args = load_config(
        AgrlDPOConfig,
        config_path("dpo_tiny.yaml"),
        [
            "--model_name_or_path",
            str(sft),
            "--output_dir",
            str(out),
            "--seed",
            str(seed),
            "--max_steps",
            str(budget.dpo_steps),
        ],
    )
    by_id = {str(r["id"]): r for r in records}
    return Path(run_dpo(args, pairs_dataset(pairs, by_id, args))), counts


def evaluate_model(model_dir: Path, data: Path, out: Path, max_samples: int | None = None) -> dict:
    """Greedy predictions and metrics of one model on every evaluation split."""
    from agrl.contract import load_contract
    from agrl.models import load_model
    from agrl.models.generate import generate_completions

    contract = load_contract(model_dir)
    model, tokenizer = load_model(str(model_dir))
    results = {}
    for split in EVAL_SPLITS:
        records = read_records(data / f"{split}.jsonl")[:max_samples]
        texts = generate_completions(
            model,
            tokenizer,
            records,
            system_prompt=contract.system_prompt,
            rulebook=contract.prompt_rulebook(),
            desc=f"eval {model_dir.name}/{split}",
        )
        predictions = {r["id"]: t[0] for r, t in zip(records, texts)}
        write_jsonl(
            out / f"{split}.predictions.jsonl", ({"id": k, "completion": v} for k, v in predictions.items())
        )
        results[split] = evaluate(
            records, predictions, contract.rulebook, contract.reasoning_format, head_rules=HEAD_RULES
        )
        write_json(out / f"{split}.metrics.json", results[split])
    return results


def stuck_rate(model_dir: Path, data: Path, budget: Budget) -> float:
    """Share of luck-proof tail `rl` prompts on which no sample of `gate_samples` gets the label right."""
    from agrl.models import load_model
    from agrl.models.generate import generate_completions
    from agrl.rewards import label_correct

    rulebook = default_rulebook()
    records = [r for r in read_records(data / "rl.jsonl") if luck_proof(r, rulebook)][: budget.gate_prompts]
    model, tokenizer = load_model(str(model_dir))
    samples = generate_completions(
        model,
        tokenizer,
        records,
        do_sample=True,
        num_return_sequences=budget.gate_samples,
        desc="gate: tail pass@8",
    )
    stuck = sum(
        not any(label_correct(texts, [r["label"]] * len(texts))) for r, texts in zip(records, samples)
    )
    return stuck / len(records) if records else 0.0


def check_gate(sft_metrics: dict, stuck: float) -> dict:
    values = {
        "head_accuracy": sft_metrics["w_eval"]["head_accuracy"],
        "tail_solved": sft_metrics["tail"]["tail_solved"],
        "stuck_rate": stuck,
    }
    checks = []
    for name, key, op, threshold in GATE:
        value = values[key]
        ok = value >= threshold if op == ">=" else value <= threshold
        checks.append({"name": name, "key": key, "value": value, "op": op, "threshold": threshold, "ok": ok})
    return {"passed": all(c["ok"] for c in checks), "checks": checks}


def _history(model_dir: Path) -> list[dict]:
    path = model_dir / "trainer_state.json"
    return json.loads(path.read_text())["log_history"] if path.exists() else []


def _prepare(
    out: Path, scale: str, budget: Budget, sft_overrides: Sequence[str]
) -> tuple[Path, Path, dict, dict]:
    """Data, SFT warm-start, its evaluation and the gate (shared by demo and reproduce)."""
    data = out / "data"
    _say(f"generating ShopRules ({scale}, seed 0) -> {data}")
    generate(data, seed=0, scale=scale, progress=False)
    _say("SFT warm-start of the tiny model")
    sft = train_sft(data, out / "models" / "sft", 0, sft_overrides)
    sft_metrics = evaluate_model(sft, data, out / "eval" / "sft", budget.eval_n)
    gate = check_gate(sft_metrics, stuck_rate(sft, data, budget))
    for c in gate["checks"]:
        _say(
            f"gate: {c['name']} = {100 * c['value']:.1f} % (needs {c['op']} {100 * c['threshold']:.0f} %): "
            f"{'ok' if c['ok'] else 'FAILED'}"
        )
    _say(f"gate {'passed' if gate['passed'] else 'FAILED'}")
    return data, sft, sft_metrics, gate


def run_arms(
    arms: Sequence[str],
    sft: Path,
    data: Path,
    work: Path,
    seed: int,
    budget: Budget,
    overrides: Sequence[str] = (),
) -> tuple[dict, dict, dict]:
    """Train and evaluate every arm of one seed; returns (metrics, histories, notes) by arm."""
    prompts = rl_prompts(data, seed, budget)
    results, histories, notes = {}, {}, {}
    for arm in arms:
        started = time.perf_counter()
        _say(f"seed {seed}: {arm}")
        path = work / "models" / f"{arm}_s{seed}"
        if arm == "sft_gold":
            train_control(sft, prompts, data, path, seed, budget)
        elif arm == "dpo":
            trained, notes["dpo_pairs"] = train_dpo(sft, prompts, path, seed, budget)
            if trained is None:  # nothing to learn from: DPO leaves the SFT model as it is
                notes["dpo_pairs"]["note"] = "no pairs: the DPO row is the SFT model"
                path = sft
        else:
            train_rl(arm, sft, prompts, data, path, seed, budget, overrides)
        histories[arm] = _history(path) if path != sft else []
        results[arm] = evaluate_model(path, data, work / "eval" / f"{arm}_s{seed}", budget.eval_n)
        notes[f"{arm}_minutes"] = round((time.perf_counter() - started) / 60, 2)
    return results, histories, notes


def target_checks(summary: dict) -> list[str]:
    """The issue's targets, each with the number reached (from the summary's statistics and curves)."""
    methods, diffs = summary["methods"], summary.get("vs_grpo", {})
    lines = []

    def mean(method: str, key: str) -> float | None:
        return (methods.get(method, {}).get(key) or {}).get("mean")

    d = (diffs.get("agrl") or {}).get("tail/tail_solved")
    if d:
        lines.append(
            f"AGRL − GRPO tail solved: {100 * d['mean']:+.1f} points on the mean (target ≥ +20), "
            f"worst seed {100 * d['min']:+.1f} (target ≥ +10): "
            f"{'met' if d['mean'] >= 0.20 and d['min'] >= 0.10 else 'MISSED'}"
        )
    a, c = mean("agrl", "tail/tail_solved"), mean("sft_gold", "tail/tail_solved")
    if a is not None and c is not None:
        lines.append(
            f"AGRL tail solved {100 * a:.1f} vs SFT-on-gold control {100 * c:.1f} (target: AGRL ≥ control): "
            f"{'met' if a >= c else 'MISSED'}"
        )
    curves = summary.get("curves", {}).get("agrl", {})
    fractions = list(curves.get("fraction_of_steps", {}).values())
    if fractions:
        shown = ", ".join("never" if f is None else f"{f:.0%}" for f in fractions)
        met = all(f is not None and f <= 0.5 for f in fractions)
        lines.append(
            f"AGRL reaches GRPO's final tail solved after ({shown}) of its steps per seed "
            f"(target ≤ 50 %): {'met' if met else 'MISSED'}"
        )
    a, s = mean("agrl", "w_eval/head_accuracy"), mean("sft", "w_eval/head_accuracy")
    if a is not None and s is not None:
        lines.append(
            f"AGRL head w_eval accuracy {100 * a:.1f} vs SFT {100 * s:.1f} (target: within 2 points): "
            f"{'met' if a >= s - 0.02 else 'MISSED'}"
        )
    g = mean("agrl", "b_eval/grounded_adherence")
    if g is not None:
        lines.append(
            f"AGRL grounded adherence {100 * g:.1f} % (target ≥ 98 %): {'met' if g >= 0.98 else 'MISSED'}"
        )
    return lines


def run_comparison(
    out: Path,
    title: str,
    command: str,
    seeds: Sequence[int],
    scale: str,
    budget: Budget,
    arms: Sequence[str] = ARMS,
    overrides: Sequence[str] = (),
    sft_overrides: Sequence[str] = (),
) -> dict:
    """The comparison: one SFT warm-start and its gate, then `arms` over `seeds`; writes the report."""
    started = time.perf_counter()
    work = out / "runs"
    data, sft, sft_metrics, gate = _prepare(work, scale, budget, sft_overrides)
    results: dict = {"sft": {seed: sft_metrics for seed in seeds}}
    histories: dict = {}
    extra: dict = {"commit": _commit(), "budget": asdict(budget)}
    for seed in seeds:
        by_arm, hist, notes = run_arms(arms, sft, data, work, seed, budget, overrides)
        for arm in arms:
            results.setdefault(arm, {})[seed] = by_arm[arm]
            histories.setdefault(arm, {})[seed] = hist[arm]
        extra.update({f"seed {seed} {k}": v for k, v in notes.items()})
        write_json(out / "partial_results.json", results)
    extra["SFT"] = "one run (data seed 0); its row repeats it for every seed so that differences pair up"
    summary = _summarize_and_report(
        out, results, histories, gate, extra, title, command, time.perf_counter() - started
    )
    _say(f"done in {(time.perf_counter() - started) / 60:.1f} min; report: {out / 'report.md'}")
    return summary


def rebuild_report(out: Path, title: str, command: str, seconds: float, extra: dict | None = None) -> dict:
    """Re-render a finished comparison's summary and report from its saved metrics and trainer
    states (no training): for report changes after a long run."""
    work = out / "runs"
    saved = json.loads((out / "partial_results.json").read_text())
    order = [m for m in ("sft", *ARMS) if m in saved] + sorted(set(saved) - {"sft", *ARMS})
    results = {m: {int(s): r for s, r in saved[m].items()} for m in order}
    histories = {
        m: {seed: _history(work / "models" / f"{m}_s{seed}") for seed in by}
        for m, by in results.items()
        if m != "sft"
    }
    histories = {m: h for m, h in histories.items() if any(h.values())}
    old = json.loads((out / "summary.json").read_text())
    notes = {
        "commit": old.get("commit", "unknown"),
        **old.get("notes", {}),
        **(extra or {}),
        "report re-rendered from the saved metrics at": _commit(),
    }
    return _summarize_and_report(out, results, histories, old["gate"], notes, title, command, seconds)


def _summarize_and_report(
    out: Path,
    results: dict,
    histories: dict,
    gate: dict,
    notes: dict,
    title: str,
    command: str,
    seconds: float,
) -> dict:
    """summary.json (statistics, gate, curves, targets, commit and notes) and report.md with its plots."""
    summary = summarize(results)
    summary["gate"], summary["curves"] = gate, curve_summary(histories)
    summary["targets"] = target_checks(summary)
    summary["commit"], summary["notes"] = (
        notes.get("commit", "unknown"),
        {k: v for k, v in notes.items() if k != "commit"},
    )
    write_json(out / "summary.json", summary)
    write_report(
        out,
        summary,
        results,
        histories,
        title=title,
        command=command,
        seconds=seconds,
        extra=notes,
        gate=gate,
        targets=summary["targets"],
    )
    return summary


def run_reproduce(
    out: Path,
    seeds: Sequence[int] = (0, 1, 2),
    scale: str = "default",
    overrides: Sequence[str] = (),
    budget: Budget | None = None,
    sft_overrides: Sequence[str] = (),
) -> dict:
    return run_comparison(
        out,
        f"agrl reproduce ({scale} data, seeds {list(seeds)})",
        f"agrl reproduce --scale {scale} --seeds {' '.join(map(str, seeds))}",
        seeds,
        scale,
        budget or Budget(),
        ARMS,
        overrides,
        sft_overrides,
    )


DEMO_BUDGET = Budget(rl_steps=60, eval_n=300, curve_every=15, curve_n=60, gate_prompts=60)


def run_demo(
    out: Path,
    seed: int = 0,
    overrides: Sequence[str] = (),
    sft_overrides: Sequence[str] = (),
    budget: Budget | None = None,
) -> dict:
    """The embedded default at one seed: tiny ShopRules, SFT, then GRPO and AGRL from the same SFT."""
    summary = run_comparison(
        out,
        "agrl demo (tiny scale, one seed)",
        "make demo",
        [seed],
        "tiny",
        budget or DEMO_BUDGET,
        ("grpo", "agrl"),
        overrides,
        ["--max_steps", "900", *sft_overrides],
    )
    print((out / "table.md").read_text())
    return summary
