"""Real data (ESCI): one command from an ESCI folder to a judged comparison with its peers.

`agrl esci --data FOLDER --out results/esci` reads the folder (official parquet layout), annotates
it (`agrl.data.annotate`), splits it by query (`agrl.data.split`), and puts on the same dev rows:

- the peers a search team tries first: the majority grade, the word-overlap baseline refit on the
  train split, all-MiniLM-L6-v2 embeddings + logistic regression, MiniLM fine-tuned as a
  cross-encoder (`agrl.peers`);
- the tiny from-scratch model (the floor) and SmolLM2-135M-Instruct: LoRA SFT label-first and
  think-first, full fine-tuning at the same CPU time, then GRPO-PR and AGRL (grade-hint replay)
  from the label-first SFT model with the same seed and prompts;

with accuracy, macro-F1, per-class P/R/F1 and confusion, 95 % bootstrap CIs resampled by query and
paired by-query differences. Choices are fixed before the run (label-first for RL because serving
stops after the label; LoRA, whose measured cost and score the run reports beside full fine-tuning),
never picked on dev scores.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

from agrl.data.io import atomic_write_text, read_records, write_json, write_jsonl
from agrl.evaluate import bootstrap_by_group, label_metrics
from agrl.pipeline import _commit, _say, config_path
from agrl.reasoning import lenient_label

ESCI_ORDER = (
    "majority",
    "overlap_refit",
    "minilm_logreg",
    "minilm_cross_encoder",
    "tiny_sft",
    "smollm2_full_sft",
    "smollm2_sft_think_first",
    "smollm2_sft",
    "smollm2_grpo_pr",
    "smollm2_agrl",
)
GRADE_NAMES = {4: "E", 3: "S", 2: "C", 1: "I"}


@dataclass
class EsciBudget:
    """What `agrl esci` spends; the defaults fit the 30-query sample in ~60 min on 2 cores."""

    dev_fraction: float = 0.4
    sft_epochs: float = 1.0
    rl_steps: int = 30
    probe_steps: int = 3
    tiny_steps: int = 400
    peer_epochs: int = 4
    eval_batch: int = 32
    full_ft: bool = True
    think_first: bool = True
    seed: int = 0
    limit: int = 0


BUDGET_HELP = {
    "dev_fraction": "share of queries in dev (a hash of the query text; 0.4 of 30 queries -> 12)",
    "sft_epochs": "SmolLM2 SFT epochs over the train split",
    "rl_steps": "GRPO-PR and AGRL steps (4 prompts x 4 rollouts each)",
    "probe_steps": "steps timed per variant in the LoRA / full / bf16 probe",
    "tiny_steps": "SFT steps of the tiny from-scratch floor",
    "peer_epochs": "cross-encoder epochs",
    "eval_batch": "records per generate call on dev",
    "full_ft": "also train SmolLM2 fully for the same CPU time as LoRA SFT (1/0)",
    "think_first": "also train SmolLM2 think-first (1/0)",
    "seed": "seed of every trained arm",
    "limit": "keep the first N train and N dev rows (0: all; for smoke runs)",
}


# --- data -----------------------------------------------------------------------------------------


def prepare(data: Path, work: Path, dev_fraction: float, limit: int = 0) -> dict:
    """Load, annotate and split by query; write train/dev JSONL; return the data's facts."""
    from agrl.data.load import load_records
    from agrl.data.split import split_by_query
    from agrl.rules import default_rulebook

    records = load_records(data)
    split = split_by_query(records, dev_fraction)
    if limit:
        split = {name: rows[:limit] for name, rows in split.items()}
    for name, rows in split.items():
        write_jsonl(work / "data" / f"{name}.jsonl", rows)
    rulebook = default_rulebook()
    train = split["train"]
    agree = [
        rulebook.decide((r.get("annotations") or {}).get("checks") or {}).grade == r["label"] for r in train
    ]
    coverage = Counter(s for r in records for s in (r.get("annotations") or {}).get("checks", {}))
    return {
        "records": len(records),
        "queries": {k: sorted({r["query"] for r in v}) for k, v in split.items()},
        "rows": {k: len(v) for k, v in split.items()},
        "labels": {
            k: dict(sorted(Counter(GRADE_NAMES[r["label"]] for r in v).items())) for k, v in split.items()
        },
        "check_coverage": {s: round(c / len(records), 4) for s, c in coverage.most_common()},
        "rulebook_agrees_with_label_train": sum(agree) / len(agree) if agree else None,
    }


# --- peers ----------------------------------------------------------------------------------------


def peer_predictions(
    train: Sequence[Mapping], dev: Sequence[Mapping], budget: EsciBudget
) -> dict[str, list[int]]:
    from agrl.baselines import fit_thresholds, overlap_label
    from agrl.peers import CrossEncoder, EmbeddingLogReg

    majority = Counter(int(r["label"]) for r in train).most_common(1)[0][0]
    thresholds = fit_thresholds(train)
    out = {
        "majority": [majority] * len(dev),
        "overlap_refit": [overlap_label(r["query"], r["product"]["title"], thresholds) for r in dev],
    }
    _say(f"overlap thresholds refit on train: {thresholds}")
    logreg = EmbeddingLogReg()
    logreg.fit(list(train), seed=budget.seed)
    out["minilm_logreg"] = list(logreg.predict(list(dev)))
    cross = CrossEncoder()
    cross.fit(list(train), seed=budget.seed, epochs=budget.peer_epochs)
    out["minilm_cross_encoder"] = list(cross.predict(list(dev)))
    return out


# --- SmolLM2 --------------------------------------------------------------------------------------


def sft_smollm2(
    train: Path, out: Path, budget: EsciBudget, overrides: Sequence[str] = ()
) -> tuple[Path, dict]:
    from agrl.train.config import AgrlSFTConfig, load_config
    from agrl.train.sft import run_sft

    args = load_config(
        AgrlSFTConfig,
        config_path("sft_smollm2_esci.yaml"),
        [
            "--train_file",
            str(train),
            "--output_dir",
            str(out),
            "--seed",
            str(budget.seed),
            "--num_train_epochs",
            str(budget.sft_epochs),
            *overrides,
        ],
    )
    started = time.monotonic()
    path = Path(run_sft(args))
    return path, {"seconds": time.monotonic() - started, **_trained(path)}


def _trained(model_dir: Path) -> dict:
    """Steps and the trainer's own runtime (training loop only: no load, save or evaluation)."""
    state = json.loads((model_dir / "trainer_state.json").read_text())
    runtime = next((h["train_runtime"] for h in reversed(state["log_history"]) if "train_runtime" in h), None)
    return {"steps": state["global_step"], "train_runtime": runtime}


def probe_step_time(train: Path, work: Path, budget: EsciBudget) -> dict:
    """Seconds per SFT step (the trainer's loop time) of LoRA in fp32 and bf16 and of full fine-tuning
    in bf16, on the same batches."""
    variants = {
        "lora_fp32": ["--bf16", "false"],
        "lora_bf16": [],
        "full_bf16": ["--use_peft", "false", "--learning_rate", "2e-5"],
    }
    timings = {}
    for name, extra in variants.items():
        _, info = sft_smollm2(
            train, work / "probe" / name, budget, ["--max_steps", str(budget.probe_steps), *extra]
        )
        timings[name] = info["train_runtime"] / info["steps"]
        _say(f"probe {name}: {timings[name]:.2f} s/step")
    return {
        "s_per_step": timings,
        "full_over_lora": timings["full_bf16"] / timings["lora_bf16"],
        "bf16_over_fp32": timings["lora_bf16"] / timings["lora_fp32"],
    }


def _rl(method: str, sft: Path, train: Path, out: Path, budget: EsciBudget) -> tuple[Path, dict]:
    from agrl.train.config import AGRLConfig, load_config
    from agrl.train.grpo import run_grpo

    args = load_config(
        AGRLConfig,
        config_path(f"{method}_smollm2_esci.yaml"),
        [
            "--model_name_or_path",
            str(sft),
            "--train_file",
            str(train),
            "--output_dir",
            str(out),
            "--seed",
            str(budget.seed),
            "--max_steps",
            str(budget.rl_steps),
        ],
    )
    started = time.monotonic()
    path = Path(run_grpo(args))
    history = json.loads((path / "trainer_state.json").read_text()).get("log_history", [])
    return path, {"seconds": time.monotonic() - started, **_trained(path), "log_history": history}


def judge_predictions(
    model_dir: Path, dev: Sequence[Mapping], budget: EsciBudget, out: Path
) -> tuple[list, dict]:
    """Greedy grades on dev; label-first models stop at `</answer>` (the served path)."""
    from agrl.contract import load_contract
    from agrl.models import load_model
    from agrl.models.generate import generate_completions

    contract = load_contract(model_dir)
    model, tokenizer = load_model(str(model_dir))
    early = contract.reasoning_format == "label_first"
    started = time.monotonic()
    texts = generate_completions(
        model,
        tokenizer,
        dev,
        batch_size=budget.eval_batch,
        system_prompt=contract.system_prompt,
        rulebook=contract.prompt_rulebook(),
        stop_after_answer=early,
        max_new_tokens=16 if early else 160,
        desc=f"dev {model_dir.name}",
    )
    seconds = time.monotonic() - started
    write_jsonl(out, ({"id": r["id"], "completion": t[0]} for r, t in zip(dev, texts)))
    return [lenient_label(t[0]) for t in texts], {"eval_seconds": seconds, "early_stop": early}


def _tiny_floor(train: Path, out: Path, budget: EsciBudget) -> Path:
    from agrl.train.config import AgrlSFTConfig, load_config
    from agrl.train.sft import run_sft

    args = load_config(
        AgrlSFTConfig,
        config_path("sft_tiny.yaml"),
        [
            "--train_file",
            str(train),
            "--output_dir",
            str(out),
            "--seed",
            str(budget.seed),
            "--max_steps",
            str(budget.tiny_steps),
            "--reasoning_format",
            "label_first",
            "--max_length",
            "384",
        ],
    )
    return Path(run_sft(args))


# --- the run --------------------------------------------------------------------------------------


def run_esci(data: Path, out: Path, budget: EsciBudget, work: Path | None = None) -> dict:
    started = time.monotonic()
    work = work or Path("runs") / "esci"
    facts = prepare(Path(data), work, budget.dev_fraction, budget.limit)
    train_path, dev_path = work / "data" / "train.jsonl", work / "data" / "dev.jsonl"
    train, dev = read_records(train_path), read_records(dev_path)
    _say(f"ESCI: {facts['rows']} rows, dev queries {facts['queries']['dev']}")
    preds_dir = out / "predictions"
    predictions: dict[str, list] = {}
    info: dict[str, dict] = {}
    stage = time.monotonic()
    predictions.update(peer_predictions(train, dev, budget))
    info["peers"] = {"seconds": time.monotonic() - stage}
    _say(f"peers done in {info['peers']['seconds']:.0f} s")

    def judged(name: str, model_dir: Path, extra: dict | None = None) -> None:
        predictions[name], meta = judge_predictions(model_dir, dev, budget, preds_dir / f"{name}.jsonl")
        info[name] = {**(extra or {}), **meta}
        metrics = label_metrics([r["label"] for r in dev], predictions[name])
        _say(f"{name}: accuracy {metrics['accuracy']:.3f} macro-F1 {metrics['macro_f1']:.3f}")

    stage = time.monotonic()
    tiny = _tiny_floor(train_path, work / "models" / "tiny_sft", budget)
    judged("tiny_sft", tiny, {"seconds": time.monotonic() - stage, **_trained(tiny)})
    from agrl.models import resolve_model_path

    resolve_model_path("smollm2")  # convert the GGUF once, outside any timing
    info["probe"] = probe_step_time(train_path, work, budget)
    sft, sft_info = sft_smollm2(train_path, work / "models" / "smollm2_sft", budget)
    judged("smollm2_sft", sft, sft_info)
    if budget.think_first:
        path, meta = sft_smollm2(
            train_path,
            work / "models" / "smollm2_sft_think_first",
            budget,
            ["--reasoning_format", "think_first"],
        )
        judged("smollm2_sft_think_first", path, meta)
    if budget.full_ft:
        steps = max(1, round(sft_info["steps"] / info["probe"]["full_over_lora"]))
        path, meta = sft_smollm2(
            train_path,
            work / "models" / "smollm2_full_sft",
            budget,
            ["--use_peft", "false", "--learning_rate", "2e-5", "--max_steps", str(steps)],
        )
        judged("smollm2_full_sft", path, meta)
    for method in ("grpo_pr", "agrl"):
        path, meta = _rl(method, sft, train_path, work / "models" / f"smollm2_{method}", budget)
        judged(f"smollm2_{method}", path, meta)
    summary = summarize(dev, predictions, facts, info, budget)
    summary["seconds"] = time.monotonic() - started
    summary["commit"] = _commit()
    write_esci_report(out, summary, dev, predictions)
    return summary


# --- summary and report ---------------------------------------------------------------------------


def paired_by_query(gold: list, a: list, b: list, groups: list, metric: str) -> dict:
    """a − b on `metric`, with its by-query bootstrap CI (the same resampled queries for both)."""
    point = label_metrics(gold, a)[metric] - label_metrics(gold, b)[metric]
    return {"diff": point, "ci": list(bootstrap_by_group(gold, a, groups, (metric,), baseline=b)[metric])}


def summarize(
    dev: Sequence[Mapping], predictions: Mapping[str, list], facts: dict, info: dict, budget: EsciBudget
) -> dict:
    gold = [int(r["label"]) for r in dev]
    groups = [r["query"] for r in dev]
    methods = {}
    for name in [m for m in ESCI_ORDER if m in predictions]:
        metrics = label_metrics(gold, predictions[name])
        metrics["ci"] = bootstrap_by_group(gold, predictions[name], groups)
        methods[name] = metrics
    pairs = [
        ("smollm2_agrl", "smollm2_grpo_pr"),
        ("smollm2_grpo_pr", "smollm2_sft"),
        ("smollm2_agrl", "smollm2_sft"),
        ("smollm2_agrl", "minilm_logreg"),
        ("smollm2_agrl", "minilm_cross_encoder"),
        ("smollm2_agrl", "majority"),
    ]
    differences = {
        f"{a} - {b}": {
            m: paired_by_query(gold, predictions[a], predictions[b], groups, m)
            for m in ("accuracy", "macro_f1")
        }
        for a, b in pairs
        if a in predictions and b in predictions
    }
    slim_info = {k: {kk: vv for kk, vv in v.items() if kk != "log_history"} for k, v in info.items()}
    return {
        "budget": asdict(budget),
        "data": facts,
        "methods": methods,
        "differences": differences,
        "runs": slim_info,
        "rl_logs": {k: _rl_log(v.get("log_history", [])) for k, v in info.items() if v.get("log_history")},
    }


def _rl_log(history: Sequence[Mapping]) -> list[dict]:
    keep = (
        "step",
        "reward",
        "rewards/label_reward/mean",
        "frac_reward_zero_std",
        "replay/triggered_frac",
        "replay/guided_success",
        "replay/no_guidance",
        "completions/mean_length",
    )
    return [{k: h[k] for k in keep if k in h} for h in history if "reward" in h]


def _ci(metrics: Mapping, key: str) -> str:
    lo, hi = metrics["ci"][key]
    return f"{metrics[key]:.3f} [{lo:.3f}, {hi:.3f}]"


def write_esci_report(
    out: Path, summary: dict, dev: Sequence[Mapping], predictions: Mapping[str, list]
) -> None:
    out.mkdir(parents=True, exist_ok=True)
    write_json(out / "summary.json", summary)
    methods = summary["methods"]
    lines = [
        "# Real data (ESCI): SmolLM2 judges beside the peers a team tries first",
        "",
        f"Command: `agrl esci --data {{ESCI folder}} --out {out}` — {summary['seconds'] / 60:.1f} min on this machine, "
        f"commit {summary['commit']}.",
        "",
        f"Data: {summary['data']['records']} records; split by query (hash of the query text, dev share "
        f"{summary['budget']['dev_fraction']}): train {summary['data']['rows']['train']} rows / "
        f"{len(summary['data']['queries']['train'])} queries, dev {summary['data']['rows']['dev']} rows / "
        f"{len(summary['data']['queries']['dev'])} queries. Labels (train / dev): {summary['data']['labels']['train']} / "
        f"{summary['data']['labels']['dev']}.",
        "",
        f"The rulebook read on the annotator's checks gives the human label on "
        f"{summary['data']['rulebook_agrees_with_label_train']:.1%} of train records (hence `consistency` weight 0 "
        f"on ESCI). Records with a check per slot: {summary['data']['check_coverage']}.",
        "",
        "## Dev results (95 % CIs: bootstrap over dev queries)",
        "",
        "| method | accuracy | macro-F1 | predicted I/C/S/E share |",
        "|---|---|---|---|",
    ]
    for name, m in methods.items():
        share = "/".join(f"{m['predicted_share'][str(g)]:.2f}" for g in (1, 2, 3, 4))
        lines.append(f"| {name} | {_ci(m, 'accuracy')} | {_ci(m, 'macro_f1')} | {share} |")
    lines += [
        "",
        "## Paired differences (same dev queries resampled for both)",
        "",
        "| difference | accuracy | macro-F1 |",
        "|---|---|---|",
    ]
    for name, d in summary["differences"].items():
        cell = lambda x: f"{x['diff']:+.3f} [{x['ci'][0]:+.3f}, {x['ci'][1]:+.3f}]"  # noqa: E731
        lines.append(f"| {name} | {cell(d['accuracy'])} | {cell(d['macro_f1'])} |")
    lines += [
        "",
        "## Per-class F1 (I / C / S / E) and support",
        "",
        "| method | I | C | S | E |",
        "|---|---|---|---|---|",
    ]
    for name, m in methods.items():
        lines.append(
            f"| {name} | " + " | ".join(f"{m['per_class'][str(g)]['f1']:.2f}" for g in (1, 2, 3, 4)) + " |"
        )
    support = next(iter(methods.values()))["per_class"]
    lines.append("| support | " + " | ".join(str(support[str(g)]["support"]) for g in (1, 2, 3, 4)) + " |")
    runs = summary["runs"]
    if "probe" in runs:
        p = runs["probe"]
        lines += [
            "",
            "## LoRA or full fine-tuning (SFT step time, same batches)",
            "",
            ", ".join(f"{k} {v:.2f} s/step" for k, v in p["s_per_step"].items())
            + f"; full ÷ LoRA {p['full_over_lora']:.2f}, bf16 ÷ fp32 {p['bf16_over_fp32']:.2f}. "
            "LoRA bf16 is the default; `smollm2_full_sft` is full fine-tuning given the same CPU time.",
        ]
    lines += ["", "## Runs", "", "| run | train s | steps | dev eval s |", "|---|---|---|---|"]
    for name, r in runs.items():
        if name in ("probe", "peers"):
            continue
        lines.append(
            f"| {name} | {r.get('seconds', 0):.0f} | {r.get('steps', '')} | {r.get('eval_seconds', 0):.0f} |"
        )
    for name, log in summary["rl_logs"].items():
        if log:
            last = log[-1]
            lines.append(
                f"\n{name}: last logged step "
                + ", ".join(f"{k} {v:.3g}" if isinstance(v, float) else f"{k} {v}" for k, v in last.items())
            )
    lines += [
        "",
        "![dev accuracy and macro-F1](esci_bars.png)",
        "",
        "![confusion matrices](esci_confusion.png)",
        "",
    ]
    atomic_write_text(out / "report.md", "\n".join(lines))
    _plots(out, methods)


def _plots(out: Path, methods: Mapping[str, Mapping]) -> None:
    from agrl.report import _pyplot

    plt = _pyplot()
    names = list(methods)
    fig, ax = plt.subplots(figsize=(10, 4))
    width = 0.4
    for k, key in enumerate(("accuracy", "macro_f1")):
        values = [methods[n][key] for n in names]
        errors = [
            [v - methods[n]["ci"][key][0] for n, v in zip(names, values)],
            [methods[n]["ci"][key][1] - v for n, v in zip(names, values)],
        ]
        ax.bar(
            [i + (k - 0.5) * width for i in range(len(names))],
            values,
            width,
            yerr=errors,
            capsize=3,
            label=key,
        )
    ax.set_xticks(range(len(names)), names, rotation=30, ha="right", fontsize=8)
    ax.set_ylim(0, 1)
    ax.legend()
    ax.set_title("ESCI dev (95 % CI by query)")
    fig.tight_layout()
    fig.savefig(out / "esci_bars.png", dpi=110)
    plt.close(fig)
    cols = 4
    rows = (len(names) + cols - 1) // cols
    fig, axes = plt.subplots(rows, cols, figsize=(3 * cols, 3 * rows), squeeze=False)
    for ax, name in zip(axes.flat, names):
        conf = methods[name]["confusion"]
        grid = [[conf[str(g)][str(p)] for p in (1, 2, 3, 4)] for g in (1, 2, 3, 4)]
        ax.imshow(grid, cmap="Blues")
        for i in range(4):
            for j in range(4):
                ax.text(j, i, grid[i][j], ha="center", va="center", fontsize=7)
        ax.set_xticks(range(4), ["I", "C", "S", "E"])
        ax.set_yticks(range(4), ["I", "C", "S", "E"])
        ax.set_title(name, fontsize=8)
        ax.set_xlabel("predicted", fontsize=7)
    for ax in list(axes.flat)[len(names) :]:
        ax.axis("off")
    fig.tight_layout()
    fig.savefig(out / "esci_confusion.png", dpi=110)
    plt.close(fig)
