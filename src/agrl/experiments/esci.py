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
import logging
import random
import re
import statistics
import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict
from functools import partial
from pathlib import Path
from typing import Any

from agrl.baselines import fit_thresholds, overlap_label
from agrl.contract import load_contract
from agrl.data.io import atomic_write_text, read_records, write_json, write_jsonl
from agrl.data.load import load_records
from agrl.data.split import query_folds, split_by_query
from agrl.evaluate import check_agreement
from agrl.experiments.budgets import EsciBudget, budget_flags
from agrl.experiments.provenance import provenance
from agrl.experiments.runner import Arm, RunInfo, StageMissing, Stages, from_checkpoint, train_arm
from agrl.models import load_model, resolve_model_path
from agrl.models.generate import generate_completions
from agrl.peers import CrossEncoder, EmbeddingLogReg
from agrl.reasoning import lenient_label
from agrl.render import bar_plot, markdown_table, pyplot
from agrl.rules import default_rulebook
from agrl.schema import GRADE_NAMES, GRADES
from agrl.stats import label_intervals, label_metrics, sample_sd, seed_interval

log = logging.getLogger(__name__)

ESCI_ORDER = ("majority", "overlap_refit", "minilm_logreg", "minilm_logreg_balanced", "minilm_cross_encoder", "tiny_sft",
              "smollm2_full_sft", "smollm2_sft_think_first", "smollm2_sft", "smollm2_grpo_pr", "smollm2_agrl")  # fmt: skip
PAIRS = (("smollm2_agrl", "smollm2_grpo_pr"), ("smollm2_grpo_pr", "smollm2_sft"), ("smollm2_agrl", "smollm2_sft"),
         ("smollm2_agrl", "minilm_logreg"), ("smollm2_agrl", "minilm_logreg_balanced"),
         ("smollm2_agrl", "minilm_cross_encoder"), ("smollm2_agrl", "overlap_refit"), ("smollm2_agrl", "majority"))  # fmt: skip
FULL_FT: dict[str, Any] = {
    "use_peft": False,
    "learning_rate": 2e-5,
}  # full fine-tuning: a smaller step than LoRA's


# --- data -----------------------------------------------------------------------------------------


def prepare(
    data: Path, work: Path, dev_fraction: float, limit: int = 0, eval_data: Path | None = None
) -> dict:
    """Load and annotate; split `data` by query into train/dev, or, with `eval_data`, train on all of
    `data` and evaluate on all of `eval_data` (their queries must not overlap); write train/dev JSONL;
    return the data's facts."""
    records = load_records(data)
    split: dict[str, list[Mapping]]
    if eval_data is None:
        split = split_by_query(records, dev_fraction)
    else:
        split = {"train": list(records), "dev": list(load_records(eval_data))}
        shared = sorted({r["query"] for r in split["train"]} & {r["query"] for r in split["dev"]})
        if shared:
            raise ValueError(
                f"--eval {eval_data}: {len(shared)} of its queries are in --train {data} too "
                f"(e.g. {shared[0]!r}); the evaluation would see training queries"
            )
        records = [dict(r) for r in (*split["train"], *split["dev"])]
    if limit:
        split = {name: rows[:limit] for name, rows in split.items()}
    for name, rows in split.items():
        write_jsonl(work / "data" / f"{name}.jsonl", (dict(r) for r in rows))
    rulebook = default_rulebook()
    train = split["train"]
    agree = [
        rulebook.decide((r.get("annotations") or {}).get("checks") or {}).grade == r["label"] for r in train
    ]
    coverage = Counter(s for r in records for s in (r.get("annotations") or {}).get("checks", {}))
    return {
        "records": len(records),
        "folders": {"train": str(data), "dev": str(eval_data or data)},
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
    majority = Counter(int(r["label"]) for r in train).most_common(1)[0][0]
    thresholds = fit_thresholds(train)
    out = {
        "majority": [majority] * len(dev),
        "overlap_refit": [overlap_label(r["query"], r["product"]["title"], thresholds) for r in dev],
    }
    log.info("overlap thresholds refit on train: %s", thresholds)
    logreg = EmbeddingLogReg()
    logreg.fit(list(train), seed=budget.seed)
    out["minilm_logreg"] = list(logreg.predict(list(dev)))
    logreg.fit(list(train), seed=budget.seed, class_weight="balanced")  # the embeddings are cached
    out["minilm_logreg_balanced"] = list(logreg.predict(list(dev)))
    for seed in budget.rl_seeds:  # the one peer whose result depends on its seed
        cross = CrossEncoder()
        cross.fit(list(train), seed=seed, epochs=budget.peer_epochs)
        out[seeded("minilm_cross_encoder", seed)] = list(cross.predict(list(dev)))
    return out


def seeded(name: str, seed: int) -> str:
    """The name of one seed's run of a seeded arm (`smollm2_agrl_s1`)."""
    return f"{name}_s{seed}"


def by_seed(names: Sequence[str]) -> dict[str, dict[int | None, str]]:
    """{arm: {seed: run name}}: a seeded arm's runs under its own name, a one-run arm as seed None."""
    out: dict[str, dict[int | None, str]] = {}
    for name in names:
        match = re.fullmatch(r"(.+)_s(\d+)", name)
        base, seed = (match.group(1), int(match.group(2))) if match else (name, None)
        out.setdefault(base, {})[seed] = name
    return out


# --- the arms -------------------------------------------------------------------------------------


def sft_smollm2(train: Path, out: Path, budget: EsciBudget, resume: bool = False, **fields: Any) -> RunInfo:
    """SmolLM2 SFT on `train` (LoRA label-first by default: `sft_smollm2_esci.yaml`); with `resume`,
    from the run's last checkpoint when it has one."""
    arm = Arm(out.name, "sft", "sft_smollm2_esci.yaml",
              {"train_file": str(train), "output_dir": str(out), "seed": budget.seed,
               "num_train_epochs": budget.sft_epochs, **fields})  # fmt: skip
    return train_arm(from_checkpoint(arm, resume))


# The SFT warm starts compared by cross-validation on the training queries: name -> (SFT fields,
# whether the reference keeps the annotator's check lines; without, it is the label and a
# `type: - | - unknown` line). Full fine-tuning at its own smaller step (FULL_FT).
CV_GRID: dict[str, tuple[dict[str, Any], bool]] = {
    "lora_1ep": ({}, True),
    "lora_2ep": ({"num_train_epochs": 2.0}, True),
    "full_1ep": (FULL_FT, True),
    "lora_1ep_no_checks": ({}, False),
    # Records drawn class-balanced (agrl.train.data.ClassBalancedSampler), so SFT does not learn the
    # majority grade (the partial run's SFT answered E on 95 % of dev60): power 0.5 gives train's
    # E/S/I/C draws 38/31/22/9 % instead of 49/32/16/3 %; 1.0 would show C's 33 rows ~10 times an epoch.
    "lora_2ep_balanced": ({"num_train_epochs": 2.0, "class_balance": 0.5}, True),
}


def without_checks(records: Sequence[Mapping]) -> list[dict]:
    """The records with no annotations: their SFT reference is the label alone (rewards do not read
    this file)."""
    return [{**r, "annotations": {}} for r in records]


def choose_sft(train: Sequence[Mapping], work: Path, budget: EsciBudget, stages: Stages) -> dict:
    """k-fold cross-validation by query on the training records (never the evaluation folder): every
    `CV_GRID` warm start trained on k-1 folds and scored (macro-F1, label-first, early stop) on the
    held-out one; the highest mean macro-F1 wins, ties (within 0.005) to the earlier (cheaper) entry.
    When RL arms follow, only warm starts that state the annotator's checks are eligible: GRPO-PR's
    and AGRL's rewards are decomposed along the checks, and a judge that writes none has no rule
    adherence to measure (a no-checks warm start was chosen once: adherence 0 %). The no-checks entry
    stays in the table as the control of stating the checks."""
    folds = query_folds(train, budget.cv_folds)
    table: dict[str, dict] = {}
    for name in CV_GRID:
        scores, seconds = [], 0.0
        for i in range(len(folds)):
            done = stages.run(
                f"cv_{name}_fold{i}", partial(cv_fold, folds, i, name, work, budget, stages.resume)
            )
            scores.append(done["macro_f1"])
            seconds += done["seconds"]
            log.info("cv %s fold %d: macro-F1 %.3f", name, i, scores[-1])
        table[name] = {
            "macro_f1_per_fold": scores,
            "macro_f1": statistics.fmean(scores),
            "train_seconds": seconds,
        }
    eligible = cv_eligible(rl_follows=bool(budget.rl_seeds))
    return {
        "folds": [sorted({r["query"] for r in f}) for f in folds],
        "grid": table,
        "eligible": eligible,
        "chosen": cv_choice({name: table[name] for name in eligible}),
        "best_of_all": cv_choice(table),
    }


def cv_fold(folds: Sequence[Sequence[Mapping]], i: int, name: str, work: Path, budget: EsciBudget,
            resume: bool) -> dict:  # fmt: skip
    """One CV entry trained on every fold but `i` and scored (macro-F1) on fold `i`."""
    fields, checks = CV_GRID[name]
    rows = [r for j, f in enumerate(folds) if j != i for r in f]
    path = work / "cv" / f"fold{i}_train_{'checks' if checks else 'no_checks'}.jsonl"
    write_jsonl(path, [dict(r) for r in rows] if checks else without_checks(rows))
    info = sft_smollm2(path, work / "cv" / f"{name}_fold{i}", budget, resume, **fields)
    grades, _ = judge_predictions(info.path, folds[i], budget, work / "cv" / f"{name}_fold{i}.jsonl")
    return {"macro_f1": label_metrics([int(r["label"]) for r in folds[i]], grades)["macro_f1"],
            "seconds": info.seconds}  # fmt: skip


def cv_eligible(rl_follows: bool) -> list[str]:
    """The CV entries a warm start may be chosen from: with RL arms after it, those whose reference
    states the checks (see `choose_sft`)."""
    return [name for name, (_, checks) in CV_GRID.items() if checks or not rl_follows]


def cv_choice(table: Mapping[str, Mapping], tie: float = 0.005) -> str:
    """The entry with the highest mean macro-F1; within `tie` of it, the earliest (cheapest) one."""
    best = max(t["macro_f1"] for t in table.values())
    return next(name for name, t in table.items() if t["macro_f1"] >= best - tie)


def rl_smollm2(
    method: str, sft: Path, train: Path, out: Path, budget: EsciBudget, seed: int, resume: bool = False
) -> RunInfo:
    """GRPO-PR or AGRL from the SmolLM2 SFT model (`{method}_smollm2_esci.yaml`) at `seed`."""
    arm = Arm(out.name, "grpo", f"{method}_smollm2_esci.yaml",
              {"model_name_or_path": str(sft), "train_file": str(train), "output_dir": str(out),
               "seed": seed, "max_steps": budget.rl_steps, "label_balance": budget.label_balance})  # fmt: skip
    return train_arm(from_checkpoint(arm, resume))


def tiny_floor(train: Path, out: Path, budget: EsciBudget, resume: bool = False) -> RunInfo:
    """The tiny from-scratch model, label-first: what no pretraining scores."""
    arm = Arm("tiny_sft", "sft", "sft_tiny.yaml",
              {"train_file": str(train), "output_dir": str(out), "seed": budget.seed, "max_steps": budget.tiny_steps,
               "reasoning_format": "label_first", "max_length": 384})  # fmt: skip
    return train_arm(from_checkpoint(arm, resume))


def probe_step_time(train: Path, work: Path, budget: EsciBudget) -> dict:
    """Seconds per SFT step (the trainer's loop time) of LoRA in fp32 and bf16 and of full fine-tuning
    in bf16, on the same batches."""
    variants: dict[str, dict[str, Any]] = {
        "lora_fp32": {"bf16": False},
        "lora_bf16": {},
        "full_bf16": FULL_FT,
    }
    timings = {}
    for name, fields in variants.items():
        info = sft_smollm2(train, work / "probe" / name, budget, max_steps=budget.probe_steps, **fields)
        timings[name] = (info.train_runtime or 0.0) / max(1, info.steps)
        log.info("probe %s: %.2f s/step", name, timings[name])
    return {"s_per_step": timings, "full_over_lora": timings["full_bf16"] / timings["lora_bf16"],
            "bf16_over_fp32": timings["lora_bf16"] / timings["lora_fp32"]}  # fmt: skip


def judge_predictions(
    model_dir: Path, dev: Sequence[Mapping], budget: EsciBudget, out: Path
) -> tuple[list, dict]:
    """Greedy grades on dev; label-first models stop at `</answer>` (the served path)."""
    contract = load_contract(model_dir)
    model, tokenizer = load_model(str(model_dir))
    early = contract.reasoning_format == "label_first"
    started = time.monotonic()
    texts = generate_completions(model, tokenizer, dev, batch_size=budget.eval_batch, system_prompt=contract.system_prompt,
                                 rulebook=contract.prompt_rulebook(), stop_after_answer=early,
                                 max_new_tokens=16 if early else 160, desc=f"dev {model_dir.name}")  # fmt: skip
    seconds = time.monotonic() - started
    grades = [lenient_label(t[0]) for t in texts]
    write_jsonl(out, ({"id": r["id"], "completion": t[0], "grade": g} for r, t, g in zip(dev, texts, grades)))
    return grades, {"eval_seconds": seconds, "early_stop": early}


def adherence_rows(dev: Sequence[Mapping], n: int) -> list[Mapping]:
    """The fixed dev subsample every judge writes its full reasoning on (the same rows for all)."""
    if n <= 0 or n >= len(dev):
        return list(dev) if n > 0 else []
    keep = set(random.Random("agrl/esci/adherence").sample(range(len(dev)), n))
    return [r for i, r in enumerate(dev) if i in keep]


def judge_reasoning(model_dir: Path, rows: Sequence[Mapping], budget: EsciBudget, out: Path) -> dict:
    """Rule adherence on real data: the judge writes its whole reasoning (no early stop) on `rows`;
    its stated checks against the annotator's, and its label against the rulebook on its own checks
    (`agrl.evaluate.check_agreement`)."""
    contract = load_contract(model_dir)
    model, tokenizer = load_model(str(model_dir))
    texts = generate_completions(model, tokenizer, rows, batch_size=budget.eval_batch, system_prompt=contract.system_prompt,
                                 rulebook=contract.prompt_rulebook(), max_new_tokens=160, desc=f"reasoning {model_dir.name}")  # fmt: skip
    completions = {str(r["id"]): t[0] for r, t in zip(rows, texts)}
    write_jsonl(out, ({"id": k, "completion": v} for k, v in completions.items()))
    return check_agreement(rows, completions, contract.rulebook, contract.reasoning_format)


# --- the run --------------------------------------------------------------------------------------


def run_esci(
    data: Path,
    out: Path,
    budget: EsciBudget,
    work: Path | None = None,
    eval_data: Path | None = None,
    resume: bool = False,
    report_only: bool = False,
) -> dict:
    """Every arm on the dev rows: `data` split by query, or all of `eval_data` (see `prepare`). Each
    finished stage (peers, probe, every CV fold, every judged arm) is kept in `work/stages`; with
    `resume`, a killed run reads those back and continues a killed training from its checkpoint.
    `report_only` trains nothing: the report of the stages finished so far (up to the first missing)."""
    started = time.monotonic()
    work = work or Path("runs") / "esci"
    origin = provenance()
    stages = Stages(work / "stages", resume, origin, read_only=report_only)
    asked: dict[str, Any] = {
        "budget": asdict(budget),
        "train": str(data),
        "eval": str(eval_data) if eval_data else None,
    }
    request = stages.path("request")  # read directly: the request is not a stage read back
    before = json.loads(request.read_text("utf-8")) if stages.resume and request.is_file() else None
    if before is not None:
        before.pop("computed_at", None)
    if before is not None and before != asked:
        flat = {**before["budget"], **before}, {**asked["budget"], **asked}
        changed = sorted(
            k for k in set(flat[0]) | set(flat[1]) if k != "budget" and flat[0].get(k) != flat[1].get(k)
        )
        raise ValueError(
            f"--resume: the run in {request.parent} was started with "
            + ", ".join(f"{k}={flat[0].get(k)!r}" for k in changed)
            + f", not {', '.join(f'{k}={flat[1].get(k)!r}' for k in changed)}; resume with the same flags, "
            "or start afresh in another --work folder"
        )
    if report_only and before is None:
        raise FileNotFoundError(f"--report_only: no run to report in {work} (no {request})")
    if not report_only:
        stages.put("request", asked)
    facts = prepare(Path(data), work, budget.dev_fraction, budget.limit, eval_data)
    train_path, dev_path = work / "data" / "train.jsonl", work / "data" / "dev.jsonl"
    train, dev = read_records(train_path), read_records(dev_path)
    log.info("ESCI: %s rows, dev queries %s", facts["rows"], facts["queries"]["dev"])
    predictions: dict[str, list] = {}
    runs: dict[str, dict] = {}
    logs: dict[str, list[dict]] = {}
    stage = time.monotonic()
    peers = stages.run("peers", lambda: {"predictions": peer_predictions(train, dev, budget),
                                         "seconds": time.monotonic() - stage})  # fmt: skip
    predictions.update(peers["predictions"])
    for name in list(predictions):  # a peer writes no reasoning: its grade only
        write_jsonl(out / "predictions" / f"{name}.jsonl",
                    ({"id": r["id"], "grade": g} for r, g in zip(dev, predictions[name])))  # fmt: skip
    runs["peers"] = {"seconds": peers["seconds"]}
    log.info("peers done in %.0f s", runs["peers"]["seconds"])

    reasoning_rows = adherence_rows(dev, budget.adherence_n)
    adherence: dict[str, dict] = {}

    def judged(name: str, train_run: Callable[[], RunInfo]) -> RunInfo:
        """Train (or read back) the arm, then its grades on dev and its reasoning on the adherence rows."""

        def compute() -> dict:
            info = train_run()
            grades, meta = judge_predictions(info.path, dev, budget, out / "predictions" / f"{name}.jsonl")
            reasoning = (judge_reasoning(info.path, reasoning_rows, budget,
                                         out / "predictions" / f"{name}.reasoning.jsonl") if reasoning_rows else None)  # fmt: skip
            return {"grades": grades, "run": {**info.summary(), **meta}, "adherence": reasoning}

        done = stages.run(name, compute)
        info = RunInfo.read(name, Path(done["run"]["path"]), done["run"]["seconds"])
        predictions[name], runs[name] = done["grades"], done["run"]
        if done.get("adherence"):
            adherence[name] = done["adherence"]
        if info.log_history and any("reward" in h for h in info.log_history):
            logs[name] = info.log_history
        metrics = label_metrics([r["label"] for r in dev], predictions[name])
        log.info("%s: accuracy %.3f macro-F1 %.3f", name, metrics["accuracy"], metrics["macro_f1"])
        return info

    try:
        run_arms(judged, stages, train, train_path, work, runs, budget)
    except StageMissing as missing:  # report_only: what finished before this stage
        runs["unfinished"] = {"first_missing_stage": str(missing)}
    summary = summarize(dev, predictions, facts, runs, logs, budget)
    summary["adherence"] = adherence
    summary["seconds"] = time.monotonic() - started
    if stages.read_back:  # this process's minutes are not the run's: the stages' own times are in `runs`
        summary["resumed"] = {"read_back": stages.read_back,
                              "stage_seconds": sum(r.get("seconds", 0.0) + r.get("eval_seconds", 0.0)
                                                   for r in runs.values() if isinstance(r, dict))}  # fmt: skip
    summary["commit"], summary["provenance"] = origin["commit"], origin
    summary["stage_provenance"] = stages.origins()  # a resumed run's stages may come from older commits
    write_esci_report(out, summary)
    return summary


def run_arms(judged: Callable[[str, Callable[[], RunInfo]], RunInfo], stages: Stages, train: Sequence[Mapping],
             train_path: Path, work: Path, runs: dict, budget: EsciBudget) -> None:  # fmt: skip
    """The trained arms in order: the tiny floor, the step-time probe, the CV choice of the SFT warm
    start, SmolLM2 SFT (and its think-first and full fine-tuning comparisons), then GRPO-PR and AGRL
    at every seed from that SFT model."""
    resume = stages.resume
    judged("tiny_sft", lambda: tiny_floor(train_path, work / "models" / "tiny_sft", budget, resume))
    resolve_model_path("smollm2")  # convert the GGUF once, outside any timing
    runs["probe"] = stages.run("probe", lambda: probe_step_time(train_path, work, budget))
    fields: dict[str, Any] = {}
    sft_train = train_path
    if budget.cv_folds:
        runs["cv"] = choose_sft(train, work, budget, stages)
        fields, checks = CV_GRID[runs["cv"]["chosen"]]
        if not checks:
            sft_train = work / "data" / "train_no_checks.jsonl"
            write_jsonl(sft_train, without_checks(train))
        log.info("SFT warm start chosen by %d-fold CV: %s", budget.cv_folds, runs["cv"]["chosen"])
    models = work / "models"
    sft = judged(
        "smollm2_sft", lambda: sft_smollm2(sft_train, models / "smollm2_sft", budget, resume, **fields)
    )
    if budget.think_first:
        judged("smollm2_sft_think_first", lambda: sft_smollm2(train_path, models / "smollm2_sft_think_first", budget,
                                                              resume, reasoning_format="think_first"))  # fmt: skip
    if budget.full_ft:
        steps = max(1, round(sft.steps / runs["probe"]["full_over_lora"]))
        judged("smollm2_full_sft", lambda: sft_smollm2(train_path, models / "smollm2_full_sft", budget, resume,
                                                       max_steps=steps, **FULL_FT))  # fmt: skip
    for seed in budget.rl_seeds:  # every seed from the same SFT model: paired by seed
        for method in ("grpo_pr", "agrl"):
            name = seeded(f"smollm2_{method}", seed)
            judged(
                name, partial(rl_smollm2, method, sft.path, train_path, models / name, budget, seed, resume)
            )


# --- summary and report ---------------------------------------------------------------------------


def paired_by_query(
    gold: list, a: list, b: list, groups: list, metrics: Sequence[str] = ("accuracy", "macro_f1")
) -> dict:
    """a − b on each metric, with its by-query bootstrap CI (the same resampled queries for both)."""
    ma, mb = label_metrics(gold, a), label_metrics(gold, b)
    cis = label_intervals(gold, a, groups, baseline=b, metrics=metrics)
    return {m: {"diff": ma[m] - mb[m], "ci": list(cis[m])} for m in metrics}


def summarize(dev: Sequence[Mapping], predictions: Mapping[str, list], facts: dict, runs: dict,
              logs: Mapping[str, Sequence[Mapping]], budget: EsciBudget) -> dict:  # fmt: skip
    gold = [int(r["label"]) for r in dev]
    groups = [r["query"] for r in dev]
    runs_of = by_seed(list(predictions))
    order = [m for m in ESCI_ORDER if m in runs_of] + sorted(set(runs_of) - set(ESCI_ORDER))
    methods = {}
    for base in order:
        for name in runs_of[base].values():
            metrics = label_metrics(gold, predictions[name])
            metrics["ci"] = label_intervals(gold, predictions[name], groups)
            methods[name] = metrics
    arms = {base: seed_stats({s: methods[n] for s, n in runs_of[base].items()}) for base in order
            if None not in runs_of[base]}  # fmt: skip
    differences = {}
    for a, b in PAIRS:
        if a not in runs_of or b not in runs_of:
            continue
        per_seed: dict[int | None, dict] = {}
        for seed, name in runs_of[a].items():  # b's run of the same seed, or its one run
            other = runs_of[b].get(seed, runs_of[b].get(None))
            if other is not None:
                per_seed[seed] = paired_by_query(gold, predictions[name], predictions[other], groups)
        if per_seed:
            differences[f"{a} - {b}"] = difference_stats(per_seed)
    return {"budget": asdict(budget), "data": facts, "methods": methods, "arms": arms, "differences": differences,
            "runs": runs, "rl_logs": {k: _rl_log(v) for k, v in logs.items()}, "dev_labels": gold}  # fmt: skip


def seed_stats(
    by_seed_metrics: Mapping[int | None, Mapping], keys: Sequence[str] = ("accuracy", "macro_f1")
) -> dict:
    """A seeded arm over its seeds: per seed, mean, sample SD and the 95 % t-interval over seeds."""
    out = {}
    for key in keys:
        values = {str(s): float(m[key]) for s, m in by_seed_metrics.items()}
        x = list(values.values())
        out[key] = {"per_seed": values, "mean": statistics.fmean(x), "sd": sample_sd(x),
                    "seed_ci95": seed_interval(x)}  # fmt: skip
    return out


def difference_stats(per_seed: Mapping[int | None, Mapping]) -> dict:
    """a − b: with one run, its difference and by-query CI; with seeds, per seed (each with its
    by-query CI), their mean, SD and 95 % t-interval over seeds."""
    if list(per_seed) == [None]:
        return dict(per_seed[None])
    out = {}
    for metric in next(iter(per_seed.values())):
        diffs = [d[metric]["diff"] for d in per_seed.values()]
        out[metric] = {"diff": statistics.fmean(diffs), "sd": sample_sd(diffs), "seed_ci95": seed_interval(diffs),
                       "per_seed": {str(s): d[metric] for s, d in per_seed.items()}}  # fmt: skip
    return out


def _rl_log(history: Sequence[Mapping]) -> list[dict]:
    keep = ("step", "reward", "rewards/label_reward/mean", "frac_reward_zero_std", "replay/triggered_frac",
            "replay/guided_success", "replay/no_guidance", "completions/mean_length")  # fmt: skip
    return [{k: h[k] for k in keep if k in h} for h in history if "reward" in h]


def _ci(metrics: Mapping, key: str) -> str:
    lo, hi = metrics["ci"][key]
    return f"{metrics[key]:.3f} [{lo:.3f}, {hi:.3f}]"


def _signed(x: Mapping) -> str:
    """One run: the difference [by-query CI]; seeds: mean ± SD t[seed interval] (each seed's value)."""
    if "ci" in x:
        return f"{x['diff']:+.3f} [{x['ci'][0]:+.3f}, {x['ci'][1]:+.3f}]"
    text = f"{x['diff']:+.3f} ± {x['sd']:.3f}"
    if x.get("seed_ci95"):
        text += f" t[{x['seed_ci95'][0]:+.3f}, {x['seed_ci95'][1]:+.3f}]"
    return text + " (" + ", ".join(f"{d['diff']:+.3f}" for d in x["per_seed"].values()) + ")"


def _over_seeds(x: Mapping) -> str:
    text = f"{x['mean']:.3f} ± {x['sd']:.3f}"
    if x.get("seed_ci95"):
        text += f" t[{x['seed_ci95'][0]:.3f}, {x['seed_ci95'][1]:.3f}]"
    return text


def collapsed(predicted: Mapping[str, float], gold: Mapping[str, int], n: int, order: Sequence[str]) -> str:
    """ "yes (E 0.97)" when one class takes > 80 % of the predictions and more than its gold share
    (the issue's bar: no arm predicts one class on > 80 % of rows unless the gold share is that high)."""
    top = max(order, key=lambda g: predicted.get(g, 0.0))
    share = predicted.get(top, 0.0)
    over = share > 0.8 and share > (gold.get(top, 0) / n if n else 0.0)
    return f"yes ({GRADE_NAMES[int(top)]} {share:.2f})" if over else "no"


def write_esci_report(out: Path, summary: dict) -> None:
    out.mkdir(parents=True, exist_ok=True)
    write_json(out / "summary.json", summary)
    methods, data, runs = summary["methods"], summary["data"], summary["runs"]
    order = [str(g) for g in sorted(GRADES)]
    folders = data.get("folders") or {}
    separate = folders and folders["train"] != folders["dev"]
    command = (f"agrl esci --train {folders['train']} --eval {folders['dev']} --out {out}" if separate
               else f"agrl esci --data {folders.get('train', '{ESCI folder}')} --out {out}")  # fmt: skip
    command = " ".join([command, budget_flags(EsciBudget, summary["budget"])]).strip()
    split_text = (
        f"train on all of `{folders['train']}`, evaluate on all of `{folders['dev']}` (no shared query)"
        if separate
        else f"split by query (hash of the query text, dev share {summary['budget']['dev_fraction']})"
    )
    gold_share = {g: sum(1 for r in summary.get("dev_labels", []) if str(r) == g) for g in order}
    n_dev = sum(gold_share.values())
    unfinished = runs.get("unfinished", {}).get("first_missing_stage")
    resumed = summary.get("resumed")
    lines = [
        "# Real data (ESCI): SmolLM2 judges beside the peers a team tries first",
        "",
        *(
            [
                f"**Partial report** (`--report_only`): the run has not finished; its first missing stage is "
                f"`{unfinished}`, and every arm from there on is absent below.",
                "",
            ]
            if unfinished
            else []
        ),
        *(
            [
                f"Resumed: {len(resumed['read_back'])} stages read back; the minutes below are this process's, "
                f"the stages' own train + eval time sums to {resumed['stage_seconds'] / 60:.1f} min.",
                "",
            ]
            if resumed
            else []
        ),
        f"Command: `{command}` — {summary['seconds'] / 60:.1f} min on this machine, "
        f"commit {summary['commit']}{'' if summary.get('provenance', {}).get('clean', True) else ' (with uncommitted changes)'}.",
        "",
        f"Data: {data['records']} records; {split_text}: train {data['rows']['train']} rows / "
        f"{len(data['queries']['train'])} queries, dev {data['rows']['dev']} rows / "
        f"{len(data['queries']['dev'])} queries. Labels (train / dev): {data['labels']['train']} / "
        f"{data['labels']['dev']}.",
        "",
        f"The rulebook read on the annotator's checks gives the human label on "
        f"{data['rulebook_agrees_with_label_train']:.1%} of train records (hence `consistency` weight 0 "
        f"on ESCI). Records with a check per slot: {data['check_coverage']}.",
        "",
        "## Dev results (95 % CIs: bootstrap over dev queries)",
        "",
        markdown_table(
            ["method", "accuracy", "macro-F1", "predicted I/C/S/E share", "one class on > 80 % of rows"],
            [
                [
                    name,
                    _ci(m, "accuracy"),
                    _ci(m, "macro_f1"),
                    "/".join(f"{m['predicted_share'][g]:.2f}" for g in order),
                    collapsed(m["predicted_share"], gold_share, n_dev, order),
                ]
                for name, m in methods.items()
            ]
            + (
                [["gold", "", "", "/".join(f"{gold_share[g] / n_dev:.2f}" for g in order), ""]]
                if n_dev
                else []
            ),
        ),  # fmt: skip
        "## Seeded arms over their seeds (mean ± sample SD, t[95 % t-interval over seeds])",
        "",
        markdown_table(
            ["arm", "seeds", "accuracy", "macro-F1"],
            [
                [name, len(a["accuracy"]["per_seed"]), _over_seeds(a["accuracy"]), _over_seeds(a["macro_f1"])]
                for name, a in summary.get("arms", {}).items()
            ],
        ),  # fmt: skip
        "## Paired differences (same dev queries resampled for both; seeded arms paired by seed)",
        "",
        "One run: difference [by-query bootstrap CI]. Seeded: mean over seeds ± SD t[t-interval over "
        "seeds] (per seed); each seed's by-query CI is in summary.json.",
        "",
        markdown_table(
            ["difference", "accuracy", "macro-F1"],
            [
                [name, _signed(d["accuracy"]), _signed(d["macro_f1"])]
                for name, d in summary["differences"].items()
            ],
        ),  # fmt: skip
        "## Per-class F1 (I / C / S / E) and support",
        "",
        markdown_table(
            ["method", *(GRADE_NAMES[int(g)] for g in order)],
            [[name, *(f"{m['per_class'][g]['f1']:.2f}" for g in order)] for name, m in methods.items()]
            + [["support", *(next(iter(methods.values()))["per_class"][g]["support"] for g in order)]],
        ),
    ]
    if "cv" in runs:
        cv = runs["cv"]
        lines += [f"## SFT warm start chosen by {len(cv['folds'])}-fold cross-validation on the training queries",
                  "", "Macro-F1 on each held-out fold of training queries (label-first, early stop); the "
                  "evaluation folder is never used. Eligible (RL arms follow: the warm start must state "
                  "the checks their rewards are decomposed along): " + ", ".join(cv.get("eligible", cv["grid"]))
                  + ". Chosen: **" + cv["chosen"] + "**" + (f" (best of all entries: {cv['best_of_all']})"
                  if cv.get("best_of_all", cv["chosen"]) != cv["chosen"] else "") + ".", "",
                  markdown_table(["warm start", "macro-F1 per fold", "mean", "train s (all folds)"],
                                 [[name, " / ".join(f"{x:.3f}" for x in t["macro_f1_per_fold"]), f"{t['macro_f1']:.3f}",
                                   f"{t['train_seconds']:.0f}"] for name, t in cv["grid"].items()]), ""]  # fmt: skip
    if summary.get("adherence"):
        slots = sorted({slot for a in summary["adherence"].values() for slot in a["per_slot"]})

        def pct(x: float | None) -> str:
            return "n/a" if x is None else f"{100 * x:.1f}"

        lines += ["## Rule adherence on real data (the same dev subsample, whole reasoning, no early stop)", "",
                  "*stated* = completions with a parseable reasoning; *agrees* = the judge's check is the "
                  "annotator's, over every slot the annotator decided (per slot after it); *self-consistent* "
                  "= the label is what the rulebook yields from the judge's own checks.", "",
                  markdown_table(["judge", "rows", "stated", "self-consistent", "agrees (all slots)",
                                  *(f"{slot}" for slot in slots)],
                                 [[name, a["n"], pct(a["stated"]), pct(a["self_consistency"]), pct(a["overall"]),
                                   *(pct((a["per_slot"].get(slot) or {}).get("agree")) for slot in slots)]
                                  for name, a in summary["adherence"].items()]), ""]  # fmt: skip
    if "probe" in runs:
        p = runs["probe"]
        lines += ["## LoRA or full fine-tuning (SFT step time, same batches)", "",
                  ", ".join(f"{k} {v:.2f} s/step" for k, v in p["s_per_step"].items())
                  + f"; full ÷ LoRA {p['full_over_lora']:.2f}, bf16 ÷ fp32 {p['bf16_over_fp32']:.2f}. "
                  "LoRA bf16 is the default; `smollm2_full_sft` is full fine-tuning given the same CPU time."]  # fmt: skip
    trained = [[name, f"{r.get('seconds', 0):.0f}", r.get("steps", ""), f"{r.get('eval_seconds', 0):.0f}"]
               for name, r in runs.items() if name not in ("probe", "peers", "unfinished")]  # fmt: skip
    lines += ["", "## Runs", "", markdown_table(["run", "train s", "steps", "dev eval s"], trained)]
    for name, entries in summary["rl_logs"].items():
        if entries:
            last = ", ".join(
                f"{k} {v:.3g}" if isinstance(v, float) else f"{k} {v}" for k, v in entries[-1].items()
            )
            lines.append(f"{name}: last logged step {last}\n")
    lines += [
        "![dev accuracy and macro-F1](esci_bars.png)",
        "",
        "![confusion matrices](esci_confusion.png)",
        "",
    ]
    atomic_write_text(out / "report.md", "\n".join(lines))
    _plots(out, methods)


def _plots(out: Path, methods: Mapping[str, Mapping]) -> None:
    names = list(methods)
    series = {key: [methods[n][key] for n in names] for key in ("accuracy", "macro_f1")}
    intervals = {key: [methods[n]["ci"][key] for n in names] for key in series}
    bar_plot(out / "esci_bars.png", names, series, intervals, ylim=(0, 1), title="ESCI dev (95 % CI by query)",
             figsize=(10, 4))  # fmt: skip
    plt = pyplot()
    cols = 4
    rows = (len(names) + cols - 1) // cols
    fig, axes = plt.subplots(rows, cols, figsize=(3 * cols, 3 * rows), squeeze=False)
    ticks = [GRADE_NAMES[g] for g in sorted(GRADES)]
    for ax, name in zip(axes.flat, names):
        conf = methods[name]["confusion"]
        grid = [[conf[str(g)][str(p)] for p in sorted(GRADES)] for g in sorted(GRADES)]
        ax.imshow(grid, cmap="Blues")
        for i, row in enumerate(grid):
            for j, count in enumerate(row):
                ax.text(j, i, count, ha="center", va="center", fontsize=7)
        ax.set_xticks(range(len(ticks)), ticks)
        ax.set_yticks(range(len(ticks)), ticks)
        ax.set_title(name, fontsize=8)
        ax.set_xlabel("predicted", fontsize=7)
    for ax in list(axes.flat)[len(names) :]:
        ax.axis("off")
    fig.tight_layout()
    fig.savefig(out / "esci_confusion.png", dpi=110)
    plt.close(fig)
