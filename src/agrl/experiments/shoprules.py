"""`agrl demo` (tiny scale, minutes) and `agrl reproduce` (the decisive comparison) on ShopRules.

Both: generate ShopRules -> SFT warm start -> a gate that checks the paper's regime (head rules
learnt, tail unsolved, tail prompts stuck) -> every arm from the same SFT checkpoint -> greedy
evaluation on b_eval / w_eval / tail / tail_novel -> summary.json + report.md with plots.

Arms, per seed: the control (SFT continued on the same `rl` prompts' gold references, same step
budget), DPO (pass@N pairs on those prompts), GRPO, GRPO-PR, replay-only and AGRL. Every arm of
a seed trains on the same prompts in the same order, so seeds pair up across arms.
"""

from __future__ import annotations

import json
import logging
import random
import shutil
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

from agrl.contract import load_contract
from agrl.data.io import read_records, write_json, write_jsonl
from agrl.data.shoprules import HEAD, HEAD_RULES, NATURAL, SCENARIOS, generate, luck_proof_tail
from agrl.evaluate import Evaluation, evaluate, luck_proof
from agrl.experiments.budgets import DEMO_BUDGET, DEMO_MINUTES, ComparisonBudget
from agrl.experiments.parallel import map_jobs, worker_pool
from agrl.experiments.provenance import provenance
from agrl.experiments.runner import (
    Arm,
    RunInfo,
    arm_config,
    arm_record,
    changed_keys,
    from_checkpoint,
    train_arm,
)
from agrl.models import load_model
from agrl.models.generate import generate_completions
from agrl.report import curve_summary, replay_summary, summarize, training_stability, write_report
from agrl.rewards import label_correct
from agrl.rules import Rule, Rulebook, default_rulebook
from agrl.train.dpo import build_pairs, pairs_dataset
from agrl.train.merge import merge_models

log = logging.getLogger(__name__)

EVAL_SPLITS = ("b_eval", "w_eval", "tail", "tail_novel")
HEAD_CURVE_FILE = "head_curve.jsonl"
RL_CONFIGS = {  # RL arm -> its shipped config
    "grpo": "grpo_tiny.yaml",
    "grpo_pr": "grpo_pr_tiny.yaml",
    "replay_only": "replay_only_tiny.yaml",
    "agrl": "agrl_tiny.yaml",
}
ARMS = ("sft_gold", "dpo", *RL_CONFIGS)
MERGED_ARMS = ("agrl", "sft_gold")  # with budget.merge_alpha: also evaluated merged with their SFT start
# The gate: (name, metric key, op, threshold)
GATE = (
    ("head w_eval accuracy after SFT", "head_accuracy", ">=", 0.90),
    ("tail solved after SFT", "tail_solved", "<=", 0.15),
    ("tail-rule rl prompts with no correct label in 8 samples", "stuck_rate", ">=", 0.40),
)

Results = dict[str, dict[int, dict[str, Evaluation]]]  # arm -> seed -> split -> evaluation


# --- the arms -------------------------------------------------------------------------------------


def sft_arm(data: Path, out: Path, seed: int = 0, **fields: Any) -> Arm:
    """The warm start: the tiny model from scratch on `sft`, its vocabulary covering `rl` too."""
    files = {"train_file": str(data / "sft.jsonl"), "tiny_vocab_files": str(data / "rl.jsonl")}
    return Arm("sft", "sft", "sft_tiny.yaml", {**files, "output_dir": str(out), "seed": seed, **fields})


def comparison_arms(
    sft: Path, data: Path, prompts: Path, work: Path, seed: int, budget: ComparisonBudget
) -> dict[str, Arm]:
    """Every arm of one seed, from the same SFT model on the same prompts in the same order."""
    # Two curves on fixed subsets: tail solved, and head accuracy on the natural mix's head records
    # (`head_curve.jsonl`), so that when the head drifts shows on the same steps as the tail gain.
    curves = f"tail={data / 'tail.jsonl'},head={data / HEAD_CURVE_FILE}"
    curve = {"eval_files": curves, "eval_every_steps": budget.curve_every,
             "eval_max_samples": budget.curve_n}  # fmt: skip
    start = {"model_name_or_path": str(sft), "seed": seed}
    on_prompts = {**start, **curve, "train_file": str(prompts), "max_steps": budget.rl_steps}
    # Rehearsal of `sft` references is the experiment's, so every RL arm gets the same; the control
    # gets the same references as extra rows of its batches (the same information, without RL).
    rehearsal = {
        "ptx_coef": budget.ptx_coef,
        "ptx_file": str(data / "sft.jsonl"),
        "ptx_batch_size": budget.ptx_batch_size,
    }
    # The control gets the RL arms' compute: `control_step_factor` x their steps (training tokens).
    steps = max(1, round(budget.control_step_factor * budget.rl_steps))
    control = {**on_prompts, "per_device_train_batch_size": budget.prompts_per_step, "max_steps": steps,
               "eval_every_steps": max(1, round(budget.curve_every * steps / budget.rl_steps)) if budget.curve_every else 0}  # fmt: skip
    if budget.ptx_coef:
        control |= {"train_file": str(control_records(data, prompts, seed, budget)),
                    "per_device_train_batch_size": budget.prompts_per_step + budget.ptx_batch_size}  # fmt: skip

    def out(name: str) -> dict[str, str]:
        return {"output_dir": str(work / "models" / f"{name}_s{seed}")}

    arms = {
        # SFT continued on the RL prompts' gold references: the RL arms' information, without RL.
        "sft_gold": Arm("sft_gold", "sft", "sft_gold_tiny.yaml", {**control, **out("sft_gold")}),
        "dpo": Arm("dpo", "dpo", "dpo_tiny.yaml", {**start, **out("dpo"), "max_steps": budget.dpo_steps}),
    }  # fmt: skip
    for name, config in RL_CONFIGS.items():
        arms[name] = Arm(
            name, "grpo", config, {**on_prompts, **rehearsal, **out(name), "shuffle_dataset": False}
        )
    return arms


def control_records(data: Path, prompts: Path, seed: int, budget: ComparisonBudget) -> Path:
    """The control's training rows with rehearsal: the seed's prompts (gold references) plus as many
    `sft` records as the RL arms rehearse (`ptx_batch_size` per step), in the same seeded draw."""
    sft = read_records(data / "sft.jsonl")
    random.Random(f"agrl/ptx-records/{seed}").shuffle(sft)
    path = data / f"sft_gold_s{seed}.jsonl"
    write_jsonl(path, [*read_records(prompts), *sft[: budget.ptx_batch_size * budget.rl_steps]])
    return path


def head_curve_records(data: Path, budget: ComparisonBudget) -> Path:
    """The fixed head subset of the learning curves: the first `curve_n` head-rule `w_eval` records."""
    head = {r.casefold() for r in HEAD_RULES}
    records = [r for r in read_records(data / "w_eval.jsonl") if str(r.get("rule", "")).casefold() in head]
    write_jsonl(data / HEAD_CURVE_FILE, records[: budget.curve_n])
    return data / HEAD_CURVE_FILE


def _natural_quotas(n: int) -> dict[str, int]:
    """Head prompts per head rule in the natural mix's proportions (largest remainders sum to n)."""
    weights = {SCENARIOS[s].rule: float(NATURAL[s]) for s in HEAD}
    total = sum(weights.values())
    exact = {rule: n * w / total for rule, w in weights.items()}
    quotas = {rule: int(x) for rule, x in exact.items()}
    for rule in sorted(exact, key=lambda r: quotas[r] - exact[r])[: n - sum(quotas.values())]:
        quotas[rule] += 1
    return quotas


def luck_proof_rules(rulebook: Rulebook | None = None) -> tuple[Rule, ...]:
    """The tail rules a model blind to their feature gets wrong (R03, R09, R10 by default)."""
    rulebook = rulebook or default_rulebook()
    rules = (rulebook.get(SCENARIOS[s].rule) for s in luck_proof_tail(rulebook))
    return tuple(r for r in rules if r is not None)


def is_contrast(record: Mapping, rules: Sequence[Rule]) -> bool:
    """A head record that states one of `rules`' slots the way a model blind to that rule's feature
    would (the rule's `blind` value: a satisfied price cap, a met negation, a size that really
    differs): the near-misses on which an over-applied tail rule breaks the head."""
    checks = (record.get("annotations") or {}).get("checks") or {}
    return any(
        checks.get(slot, "unknown") == rule.blind.get(slot, "match") for rule in rules for slot in rule.when
    )


def rl_prompts(data: Path, seed: int, budget: ComparisonBudget) -> Path:
    """The `rl` prompts every arm of this seed trains on, in order: a seeded shuffle, cut to the budget.

    With `budget.rl_tail_share`, that share of the prompts comes from tail rules and the rest from
    head rules (rehearsal of what SFT already solves) — in rl's own head proportions, or with
    `rl_head_mix="natural"` in the natural mix's (mostly exact matches: what a judge sees most), or
    with `"contrast"` half of them near-misses of the tail rules (`is_contrast`), the rest natural."""
    records = read_records(data / "rl.jsonl")
    rng = random.Random(f"agrl/rl-order/{seed}")
    rng.shuffle(records)
    n = budget.rl_steps * budget.prompts_per_step
    if budget.rl_tail_share is not None:
        if not 0.0 <= budget.rl_tail_share <= 1.0:
            raise ValueError(f"rl_tail_share: expected a share in [0, 1], got {budget.rl_tail_share}")
        head_rules = {r.casefold() for r in HEAD_RULES}
        is_head = [str(r.get("rule", "")).casefold() in head_rules for r in records]
        n_tail = round(n * budget.rl_tail_share)
        tail = [r for r, h in zip(records, is_head) if not h][:n_tail]
        head = [r for r, h in zip(records, is_head) if h]
        if budget.rl_head_mix in ("natural", "contrast"):
            contrast = []
            if budget.rl_head_mix == "contrast":
                rules = luck_proof_rules()
                contrast = [h for h in head if is_contrast(h, rules)][: (n - n_tail) // 2]
            taken = {id(h) for h in contrast}
            rest = [h for h in head if id(h) not in taken]
            quotas = _natural_quotas(n - n_tail - len(contrast))
            head = contrast + [
                r for rule, q in quotas.items() for r in [h for h in rest if h["rule"] == rule][:q]
            ]
        elif budget.rl_head_mix != "rl":
            raise ValueError(f"rl_head_mix: expected rl, natural or contrast, got {budget.rl_head_mix!r}")
        records = tail + head[: n - n_tail]
        rng.shuffle(records)
    path = data / f"rl_s{seed}.jsonl"
    write_jsonl(path, records[:n])
    return path


def train_dpo(arm: Arm, sft: Path, prompts: Path, cli: Sequence[str] = ()) -> tuple[RunInfo | None, dict]:
    """DPO on pass@8 pairs of the SFT model; (None, counts) when no prompt gives a pair. `cli`: the
    user's config flags (as for the other arms)."""
    records = read_records(prompts)
    model, tokenizer = load_model(str(sft))
    pairs, counts = build_pairs(model, tokenizer, records, n=8, seed=int(arm.fields["seed"]))
    out = Path(arm.fields["output_dir"])
    write_jsonl(out.parent / f"{out.name}_pairs.jsonl", pairs)
    if not pairs:
        return None, counts
    dataset = pairs_dataset(pairs, {str(r["id"]): r for r in records}, arm_config(arm, cli))
    return train_arm(arm, cli, pairs=dataset), counts


# --- evaluation and the gate ----------------------------------------------------------------------


def evaluate_model(
    model_dir: Path, data: Path, out: Path, max_samples: int | None = None
) -> dict[str, Evaluation]:
    """Greedy predictions and metrics of one model on every evaluation split (written to `out`)."""
    contract = load_contract(model_dir)
    model, tokenizer = load_model(str(model_dir))
    results = {}
    for split in EVAL_SPLITS:
        records = read_records(data / f"{split}.jsonl")[:max_samples]
        texts = generate_completions(model, tokenizer, records, system_prompt=contract.system_prompt,
                                     rulebook=contract.prompt_rulebook(), desc=f"eval {model_dir.name}/{split}")  # fmt: skip
        predictions = {r["id"]: t[0] for r, t in zip(records, texts)}
        write_jsonl(
            out / f"{split}.predictions.jsonl", ({"id": k, "completion": v} for k, v in predictions.items())
        )
        results[split] = evaluate(
            records, predictions, contract.rulebook, contract.reasoning_format, HEAD_RULES
        )
        write_json(out / f"{split}.metrics.json", results[split].to_json())
    return results


def evaluate_merged(
    sft: Path,
    tuned: Path,
    alpha: float,
    eval_n: int,
    work: Path,
    data: Path,
    name: str,
    seed: int,
    reuse: bool,
) -> dict[str, Evaluation]:
    """The arm's model merged with its SFT start at `alpha`, evaluated like any arm (read back when
    `reuse`: the arm itself was read back and this merged row was finished before)."""
    folder = work / "eval" / f"{name}_s{seed}"
    done = finished(folder) if reuse else None
    if done is not None:
        return done
    model_dir = work / "models" / f"{name}_s{seed}"
    shutil.rmtree(model_dir, ignore_errors=True)  # a stale merge of an arm trained again
    log.info("seed %d: %s (merged with the SFT start)", seed, name)
    return evaluate_model(merge_models(sft, tuned, alpha, model_dir), data, folder, eval_n)


def finished(folder: Path) -> dict[str, Evaluation] | None:
    """The evaluations a previous run wrote to `folder`, when every split's metrics are there."""
    files = {split: folder / f"{split}.metrics.json" for split in EVAL_SPLITS}
    if not all(f.exists() for f in files.values()):
        return None
    return {split: Evaluation.from_json(json.loads(f.read_text())) for split, f in files.items()}


def gate_prompts(data: Path, budget: ComparisonBudget) -> list[dict]:
    """Luck-proof `rl` prompts of tail rules: head-rule mismatches are luck-proof too, but a model that
    knows the head solves them, so counting them would dilute the stuck rate."""
    rulebook, head = default_rulebook(), {r.casefold() for r in HEAD_RULES}
    records = read_records(data / "rl.jsonl")
    tail = [r for r in records if luck_proof(r, rulebook) and str(r.get("rule", "")).casefold() not in head]
    return tail[: budget.gate_prompts]


def stuck_rates(
    model_dir: Path, records: Sequence[Mapping], samples_per_prompt: int, seed: int = 0
) -> dict[str, float]:
    """Share of `records` on which no sample of `samples_per_prompt` (drawn with `seed`) gets the
    label right: overall (key "all") and per deciding rule."""
    model, tokenizer = load_model(str(model_dir))
    samples = generate_completions(model, tokenizer, records, do_sample=True, seed=seed,
                                   num_return_sequences=samples_per_prompt, desc="gate: tail pass@8")  # fmt: skip
    stuck = [not any(label_correct(texts, [r["label"]] * len(texts))) for r, texts in zip(records, samples)]
    by_rule: dict[str, list[bool]] = {}
    for r, s in zip(records, stuck):
        by_rule.setdefault(str(r.get("rule")), []).append(s)
    rates = {rule: sum(v) / len(v) for rule, v in sorted(by_rule.items())}
    return {"all": sum(stuck) / len(stuck) if stuck else 0.0, **rates}


def check_gate(sft: Mapping[str, Evaluation], stuck: Mapping[str, float]) -> dict:
    values = {
        "head_accuracy": sft["w_eval"].head_accuracy,
        "tail_solved": sft["tail"].tail_solved,
        "stuck_rate": stuck["all"],
    }
    checks = []
    for name, key, op, threshold in GATE:
        value = values[key] or 0.0
        ok = value >= threshold if op == ">=" else value <= threshold
        checks.append({"name": name, "key": key, "value": value, "op": op, "threshold": threshold, "ok": ok})
    per_rule = {rule: v for rule, v in stuck.items() if rule != "all"}
    return {"passed": all(c["ok"] for c in checks), "checks": checks, "stuck_per_rule": per_rule}


def target_checks(summary: Mapping, minutes: float | None = None, max_minutes: float = 120) -> list[str]:
    """Issue 15's targets, each with the number reached (seed means; differences paired by seed)."""
    lines = []

    def stat(table: str, method: str, key: str) -> Mapping | None:
        found = (summary.get(table, {}).get(method) or {}).get(key)
        return found if found and found.get("mean") is not None else None

    def check(text: str, value: Mapping | None, met: bool, interval: bool = False) -> None:
        if value is None:
            return
        shown = f"{100 * value['mean']:+.1f}" if "min" in value else f"{100 * value['mean']:.1f}"
        if interval and value.get("seed_ci95"):
            shown += (
                f" (seed t-interval [{100 * value['seed_ci95'][0]:+.1f}, {100 * value['seed_ci95'][1]:+.1f}])"
            )
        lines.append(f"{text}: {shown} — {'met' if met else 'MISSED'}")

    def mean(value: Mapping | None) -> float:
        return value["mean"] if value else float("nan")

    d = stat("vs_sft", "agrl", "w_eval/accuracy")
    check("AGRL − SFT w_eval (natural mix) accuracy (target ≥ +3)", d, mean(d) >= 0.03)
    d = stat("vs_sft", "agrl", "w_eval/head_accuracy")
    check("AGRL − SFT w_eval head accuracy (target ≥ −1.5)", d, mean(d) >= -0.015)
    d = stat("vs_grpo_pr", "agrl", "tail/tail_solved")
    low = (d or {}).get("seed_ci95") or [float("nan")]
    check("AGRL − GRPO-PR tail solved (target ≥ +30, seed interval above +15)", d,
          mean(d) >= 0.30 and low[0] > 0.15, interval=True)  # fmt: skip
    d = stat("vs_grpo_pr", "agrl", "tail/accuracy")
    check("AGRL − GRPO-PR tail label accuracy (target ≥ +15)", d, mean(d) >= 0.15, interval=True)
    d = stat("vs_grpo_pr", "agrl", "tail_novel/tail_solved")
    check("AGRL − GRPO-PR tail_novel solved (target ≥ +15)", d, mean(d) >= 0.15, interval=True)
    for key, name in (("w_eval/grounded_solved_head", "grounded adherence given solved, head"),
                      ("tail/grounded_solved_tail", "grounded adherence given solved, tail"),
                      ("b_eval/self_consistency", "self-consistency (b_eval)")):  # fmt: skip
        v = stat("methods", "agrl", key)
        check(f"AGRL {name} (target ≥ 97 %)", v, mean(v) >= 0.97)
    for key, name in (("tail/tail_solved", "tail solved"), ("w_eval/accuracy", "w_eval accuracy")):
        d = stat("vs_sft_gold", "agrl", key)
        check(f"AGRL − SFT-on-gold control, {name} (target ≥ 0)", d, mean(d) >= 0.0, interval=True)
    for c in (summary.get("gate") or {}).get("checks", []):
        if c["key"] == "stuck_rate":
            lines.append(f"gate: tail-rule prompts stuck {100 * c['value']:.1f} % (target ≥ 40 %): "
                         f"{'met' if c['ok'] else 'MISSED'}")  # fmt: skip
    if minutes is not None:
        lines.append(
            f"run time {minutes:.1f} min (target ≤ {max_minutes:g} min on 2 cores): "
            f"{'met' if minutes <= max_minutes else 'MISSED'}"
        )
    return lines


# --- the comparison -------------------------------------------------------------------------------


@dataclass(frozen=True)
class WarmStart:
    """One draw of the data and one SFT model, with its evaluation and gate; seeds train from it."""

    work: Path
    data: Path
    sft: Path
    sft_eval: dict[str, Evaluation]
    gate: dict


def warm_start_of(seeds: Sequence[int], warm_starts: int) -> dict[int, int]:
    """Seed -> warm start, in contiguous blocks (5 seeds over 2 warm starts: 0 0 0 1 1)."""
    if not 1 <= warm_starts <= max(len(seeds), 1):
        raise ValueError(
            f"warm_starts {warm_starts}: needs 1 <= warm_starts <= the number of seeds ({len(seeds)})"
        )
    return {seed: i * warm_starts // len(seeds) for i, seed in enumerate(seeds)}


def prepare_warm_start(
    out: Path,
    w: int,
    scale: str,
    budget: ComparisonBudget,
    sft_cli: Sequence[str],
    sft_fields: Mapping[str, Any] | None,
    resume: bool,
    read_back: list[str],
) -> WarmStart:
    """Data (seed w), the SFT model (seed w) and the gate of warm start `w`: `out/runs` for the first
    (the layout of a one-warm-start run), `out/runs/warm{w}` for the others."""
    work = out / "runs" if w == 0 else out / "runs" / f"warm{w}"
    data = work / "data"
    log.info("warm start %d: generating ShopRules (%s, seed %d) -> %s", w, scale, w, data)
    generate(data, seed=w, scale=scale, progress=False)
    head_curve_records(data, budget)
    sft = work / "models" / "sft"
    sft_eval = finished(work / "eval" / "sft") if resume else None
    if sft_eval is not None:
        read_back.append("sft" if w == 0 else f"sft (warm start {w})")
    else:
        log.info("warm start %d: SFT of the tiny model", w)
        sft = train_arm(
            from_checkpoint(sft_arm(data, sft, seed=w, **(sft_fields or {})), resume), sft_cli
        ).path
        sft_eval = evaluate_model(sft, data, work / "eval" / "sft", budget.eval_n)
    gate_file = work / "eval" / "gate.json"
    if resume and gate_file.exists():
        gate = json.loads(gate_file.read_text())
    else:
        gate = check_gate(sft_eval, stuck_rates(sft, gate_prompts(data, budget), budget.gate_samples, seed=w))
        write_json(gate_file, gate)
    for c in gate["checks"]:
        log.info("warm start %d gate: %s = %.1f %% (needs %s %.0f %%): %s", w, c["name"], 100 * c["value"],
                 c["op"], 100 * c["threshold"], "ok" if c["ok"] else "FAILED")  # fmt: skip
    log.info("warm start %d: gate %s", w, "passed" if gate["passed"] else "FAILED")
    return WarmStart(work, data, sft, sft_eval, gate)


# prepare_warm_start's arguments before `read_back`
WarmStartArgs = tuple[Path, int, str, ComparisonBudget, tuple[str, ...], Mapping[str, Any] | None, bool]


def _prepare_warm_start(args: WarmStartArgs) -> tuple[WarmStart, list[str]]:
    """`prepare_warm_start` as a unit of `map_jobs`: the warm start and what it read back."""
    read_back: list[str] = []
    return prepare_warm_start(*args, read_back), read_back


def _evaluate_merged(args: tuple) -> dict[str, Evaluation]:
    """`evaluate_merged` as a unit of `map_jobs`."""
    return evaluate_merged(*args)


@dataclass(frozen=True)
class ArmJob:
    """One arm at one seed: everything a worker process needs to train and evaluate it."""

    seed: int
    warm_start: int
    name: str
    arm: Arm
    sft: Path
    data: Path
    prompts: Path
    folder: Path  # its evaluation
    cli: tuple[str, ...]  # the user's config flags (RL arms)
    resume: bool
    eval_n: int


@dataclass(frozen=True)
class ArmOutcome:
    evaluation: dict[str, Evaluation]
    history: list[dict]
    read_back: bool  # finished by a previous run of the folder, not trained again
    unrecorded: bool  # read back with no record of its config to compare
    notes: dict[str, Any]


def run_arm(job: ArmJob) -> ArmOutcome:
    """Train and evaluate one arm, or read it back (`job.resume`) when a previous run finished it
    with the same config (a changed config trains it again)."""
    started = time.perf_counter()
    seed, name = job.seed, job.name
    record = arm_record(job.arm, job.cli)
    done = finished(job.folder) if job.resume else None
    recorded = job.folder / "arm.json"
    unrecorded = False
    if done is not None and recorded.is_file():
        changed = changed_keys(json.loads(recorded.read_text("utf-8")), record)
        if changed:
            log.info("seed %d: %s changed since its run (%s): trained again", seed, name, ", ".join(changed))
            done = None
    elif done is not None:  # evaluated before arms kept their record: read back, and say so
        unrecorded = True
    if done is not None:
        log.info("seed %d: %s (finished before: read back)", seed, name)
        history = RunInfo.read(name, Path(job.arm.fields["output_dir"])).log_history
        return ArmOutcome(done, history, True, unrecorded, {})
    log.info("seed %d (warm start %d): %s", seed, job.warm_start, name)
    arm = from_checkpoint(job.arm, job.resume)
    notes: dict[str, Any] = {}
    if name == "dpo":
        info, notes[f"seed {seed} dpo_pairs"] = train_dpo(arm, job.sft, job.prompts)
        if info is None:  # nothing to learn from: DPO leaves the SFT model as it is
            notes[f"seed {seed} dpo_pairs"]["note"] = "no pairs: the DPO row is the SFT model"
    else:
        info = train_arm(arm, job.cli)
    evaluation = evaluate_model(info.path if info else job.sft, job.data, job.folder, job.eval_n)
    write_json(recorded, record)
    notes[f"seed {seed} {name}_minutes"] = round((time.perf_counter() - started) / 60, 2)
    return ArmOutcome(evaluation, info.log_history if info else [], False, False, notes)


def combined_gate(gates: Mapping[int, dict]) -> dict:
    """One warm start: its gate. Several: each check's mean value, passed only where every warm start
    passes, and each warm start's gate under `per_warm_start`."""
    if len(gates) == 1:
        return next(iter(gates.values()))
    listed = list(gates.values())
    checks = [
        {**first, "value": sum(g["checks"][i]["value"] for g in listed) / len(listed),
         "ok": all(g["checks"][i]["ok"] for g in listed)}
        for i, first in enumerate(listed[0]["checks"])
    ]  # fmt: skip
    rules = sorted({r for g in listed for r in g.get("stuck_per_rule", {})})
    per_rule = {
        r: sum(g["stuck_per_rule"][r] for g in listed if r in g.get("stuck_per_rule", {}))
        / sum(r in g.get("stuck_per_rule", {}) for g in listed)
        for r in rules
    }
    return {"passed": all(c["ok"] for c in checks), "checks": checks, "stuck_per_rule": per_rule,
            "per_warm_start": {str(w): g for w, g in gates.items()}}  # fmt: skip


def run_comparison(
    out: Path,
    title: str,
    command: str,
    seeds: Sequence[int],
    scale: str,
    budget: ComparisonBudget,
    arms: Sequence[str] = ARMS,
    rl_cli: Sequence[str] = (),
    sft_cli: Sequence[str] = (),
    sft_fields: Mapping[str, Any] | None = None,
    resume: bool = False,
    max_minutes: float = 120,
) -> dict:
    """SFT warm start(s) and their gate, then `arms` over `seeds`; writes summary.json and report.md.

    `budget.warm_starts` > 1 draws the data and trains SFT that many times (seeds in blocks, see
    `warm_start_of`), so that the spread over seeds includes the warm start and the data draw.

    `rl_cli` are the user's config flags for the RL arms, `sft_cli` for the warm start. With `resume`,
    every arm (and the warm start) whose evaluation a previous run of `out` finished is read back
    instead of trained again; an arm killed mid-way is trained again from its start."""
    started = time.perf_counter()
    origin = provenance()  # the code that trains: taken now, not when the report is written
    warm_of = warm_start_of(seeds, budget.warm_starts)
    warm: dict[int, WarmStart] = {}
    read_back: list[str] = []
    unrecorded: list[str] = []  # read back with no record of their config to compare
    with worker_pool(budget.jobs) as pool:  # one pool for every phase: workers start once
        starts: list[WarmStartArgs] = [
            (out, w, scale, budget, tuple(sft_cli), sft_fields, resume) for w in sorted(set(warm_of.values()))
        ]
        prepared = dict(map_jobs(_prepare_warm_start, starts, pool, desc="warm starts"))
        for index, (_, w, *_rest) in enumerate(starts):  # in the order of the warm starts
            warm[w], finished_before = prepared[index]
            read_back += finished_before
        gate = combined_gate({w: ws.gate for w, ws in warm.items()})
        results: Results = {"sft": {seed: warm[warm_of[seed]].sft_eval for seed in seeds}}
        histories: dict[str, dict[int, list[dict]]] = {}
        notes: dict[str, Any] = {
            "budget": asdict(budget),
            "warm_start_of_seed": {str(s): w for s, w in warm_of.items()},
        }
        seed_arms: dict[int, dict[str, Arm]] = {}
        arm_jobs: list[ArmJob] = []
        for seed in seeds:
            ws = warm[warm_of[seed]]
            # here, not in a worker: every arm of the seed reads this file
            prompts = rl_prompts(ws.data, seed, budget)
            seed_arms[seed] = comparison_arms(ws.sft, ws.data, prompts, ws.work, seed, budget)
            arm_jobs += [
                ArmJob(
                    seed,
                    warm_of[seed],
                    name,
                    arm,
                    ws.sft,
                    ws.data,
                    prompts,
                    ws.work / "eval" / f"{name}_s{seed}",
                    tuple(rl_cli) if name in RL_CONFIGS else (),
                    resume,
                    budget.eval_n,
                )
                for name, arm in seed_arms[seed].items()
                if name in arms
            ]
        outcomes: dict[int, ArmOutcome] = {}
        for index, outcome in map_jobs(run_arm, arm_jobs, pool, desc="arms"):
            outcomes[index] = outcome
            partial: Results = {"sft": results["sft"]}
            for i in sorted(outcomes):
                partial.setdefault(arm_jobs[i].name, {})[arm_jobs[i].seed] = outcomes[i].evaluation
            write_json(out / "partial_results.json",
                       {a: {str(s): {k: e.to_json() for k, e in by.items()} for s, by in r.items()} for a, r in partial.items()})  # fmt: skip
        for job, outcome in ((arm_jobs[i], outcomes[i]) for i in range(len(arm_jobs))):  # in the jobs' order
            results.setdefault(job.name, {})[job.seed] = outcome.evaluation
            histories.setdefault(job.name, {})[job.seed] = outcome.history
            notes.update(outcome.notes)
            if outcome.read_back:
                read_back.append(f"{job.name}_s{job.seed}")
            if outcome.unrecorded:
                unrecorded.append(f"{job.name}_s{job.seed}")
        if budget.merge_alpha is not None:
            merges = [
                (
                    warm[warm_of[seed]].sft,
                    Path(seed_arms[seed][name].fields["output_dir"]),
                    budget.merge_alpha,
                    budget.eval_n,
                    warm[warm_of[seed]].work,
                    warm[warm_of[seed]].data,
                    f"{name}@{budget.merge_alpha:g}",
                    seed,
                    resume and f"{name}_s{seed}" in read_back,
                )
                for seed in seeds
                for name in MERGED_ARMS
                if name in arms and seed in results.get(name, {})
            ]
            merged: dict[int, dict[str, Evaluation]] = dict(
                map_jobs(_evaluate_merged, merges, pool, "merged rows")
            )
            for index, (*_, name, seed, _reuse) in enumerate(merges):
                results.setdefault(name, {})[seed] = merged[index]
    notes["SFT"] = (
        f"{len(warm)} warm start(s) (warm start w: data seed w, SFT seed w); each seed's SFT row is its "
        "warm start's, so that differences pair up"
    )
    if read_back:  # the minutes above are this run's; these were trained by the run that was resumed
        notes["resumed"] = (
            f"read back from a previous run of this folder, not trained again: {', '.join(read_back)}"
        )
    if unrecorded:
        notes["read back unchecked"] = (
            "evaluated before arms kept their config beside the evaluation, so not checked against "
            f"the current configs: {', '.join(unrecorded)}"
        )
    seconds = time.perf_counter() - started
    summary = summarize(results)
    ended = provenance()
    if (ended["commit"], ended["clean"]) != (origin["commit"], origin["clean"]):
        # the tree changed under the run: say so instead of naming the code at its end
        origin["changed_during_run"] = {"commit": ended["commit"], "clean": ended["clean"]}
    summary.update(gate=gate, curves=curve_summary(histories), replay=replay_summary(histories),
                   stability=training_stability(histories), commit=origin["commit"], provenance=origin)  # fmt: skip
    # A resumed run's time is not the comparison's: the minutes of the arms it read back are elsewhere.
    summary["targets"] = target_checks(summary, None if read_back else seconds / 60, max_minutes)
    summary["notes"] = notes
    write_json(out / "summary.json", summary)
    shown = {"commit": origin["commit"], "clean tree": origin["clean"], **notes}
    write_report(out, summary, results, histories, title=title, command=command, seconds=seconds, extra=shown,
                 gate=gate, targets=summary["targets"], resumed=bool(read_back))  # fmt: skip
    log.info("done in %.1f min; report: %s", seconds / 60, out / "report.md")
    return summary


def run_reproduce(
    out: Path,
    seeds: Sequence[int] = (0, 1, 2, 3, 4),
    scale: str = "default",
    rl_cli: Sequence[str] = (),
    budget: ComparisonBudget | None = None,
    sft_cli: Sequence[str] = (),
    resume: bool = False,
) -> dict:
    """The paper's comparison table over `seeds`: every arm, paired by seed."""
    seed_list = " ".join(map(str, seeds))
    budget = budget or ComparisonBudget()
    return run_comparison(out, f"agrl reproduce ({scale} data, seeds {list(seeds)}, {budget.warm_starts} warm start(s))",
                          f"agrl reproduce --scale {scale} --seeds {seed_list} --warm_starts {budget.warm_starts}", seeds, scale,
                          budget, ARMS, rl_cli, sft_cli, resume=resume)  # fmt: skip


def run_demo(
    out: Path,
    seed: int = 0,
    rl_cli: Sequence[str] = (),
    sft_cli: Sequence[str] = (),
    budget: ComparisonBudget | None = None,
) -> dict:
    """The embedded default at one seed: tiny ShopRules, SFT, then GRPO-PR and AGRL from the same SFT
    (the headline pair: the same rule-aware reward, without and with replay)."""
    budget = replace(budget or DEMO_BUDGET, warm_starts=1)  # one seed: one warm start
    summary = run_comparison(out, "agrl demo (tiny scale, one seed)", "make demo", [seed], "tiny",
                             budget, ("grpo_pr", "agrl"), rl_cli, sft_cli, {"max_steps": 900},
                             max_minutes=DEMO_MINUTES)  # fmt: skip
    print((out / "table.md").read_text())
    return summary
