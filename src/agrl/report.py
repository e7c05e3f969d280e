"""Reports people look at: summary.json, a Markdown report and PNG plots.

Spread over seeds is the sample SD (ddof = 1). 95 % CIs come from a bootstrap over evaluation
examples (the same resampled examples for every seed and method, so differences are paired);
differences between methods are paired by seed. The evaluation splits are fixed, so a method's
runs differ only in training randomness.
"""

from __future__ import annotations

import statistics
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from agrl.data.io import atomic_write_text
from agrl.evaluate import Evaluation
from agrl.render import bar_plot, markdown_table, pyplot
from agrl.stats import Statistic, interval, sample_sd, seed_interval, share_statistic

# (split, metric, column title); the headline metric first.
COLUMNS: tuple[tuple[str, str, str], ...] = (
    ("tail", "tail_solved", "tail solved"),
    ("tail_novel", "tail_solved", "tail_novel solved"),
    ("w_eval", "head_accuracy", "w_eval head acc"),
    ("w_eval", "accuracy", "w_eval acc"),
    ("b_eval", "accuracy", "b_eval acc"),
    ("b_eval", "macro_f1", "b_eval F1"),
    ("b_eval", "grounded_adherence", "grounded adherence (b_eval)"),
    ("b_eval", "self_consistency", "self-consistency (b_eval)"),
    ("b_eval", "format_valid", "format valid (b_eval)"),
    ("tail", "accuracy", "tail label acc (luck-prone)"),
    ("w_eval", "grounded_solved_head", "grounded given solved, head (w_eval)"),
    ("tail", "grounded_solved_tail", "grounded given solved, tail"),
    ("w_eval", "self_consistency_head", "self-consistency, head (w_eval)"),
    ("tail", "self_consistency_tail", "self-consistency, tail"),
)
# metric -> (outcome vector counted, outcome mask it is counted over; None = every record)
OUTCOME_METRICS: dict[str, tuple[str, str | None]] = {
    "accuracy": ("correct", None),
    "head_accuracy": ("correct", "head"),
    "tail_solved": ("solved", "luck_proof"),
    "grounded_adherence": ("grounded", None),
    "format_valid": ("valid", None),
    "grounded_solved_head": ("grounded", "solved_head"),
    "grounded_solved_tail": ("grounded", "solved_tail"),
}
LABELS = {
    "sft": "SFT",
    "sft_gold": "SFT-on-gold (control)",
    "dpo": "DPO",
    "grpo": "GRPO",
    "grpo_pr": "GRPO-PR",
    "replay_only": "replay-only",
    "agrl": "AGRL",
}
CURVE_KEY = "eval_tail_tail_solved"
HEAD_CURVE_KEY = "eval_head_accuracy"  # head accuracy on a fixed w_eval head subset, same steps


def _outcomes(
    by_seed: Mapping, split: str, metric: str, seeds: Sequence
) -> tuple[np.ndarray, np.ndarray] | None:
    """(hits, mask) of shape (seeds, n): the per-record outcomes a metric counts, for every seed."""
    if metric not in OUTCOME_METRICS:
        return None
    hit_key, mask_key = OUTCOME_METRICS[metric]
    hits, masks = [], []
    for seed in seeds:
        outcomes = by_seed[seed][split].outcomes
        if hit_key not in outcomes:
            return None
        hits.append(outcomes[hit_key])
        masks.append(outcomes[mask_key] if mask_key else np.ones_like(outcomes[hit_key]))
    if len({len(h) for h in hits}) != 1:
        return None
    return np.array(hits), np.array(masks)


def _value(by_seed: Mapping, seed, split: str, metric: str) -> float | None:
    evaluation = by_seed[seed].get(split)
    value = evaluation.get(metric) if evaluation is not None else None
    return None if value is None else float(value)


def _ci(statistic: Statistic, n: int) -> list[float] | None:
    low, high = interval(statistic, n)
    return None if np.isnan(low) or np.isnan(high) else [float(low), float(high)]


def metric_stats(by_seed: Mapping, split: str, metric: str) -> dict:
    """{per_seed, mean, sd, n, ci95, seed_ci95} of one metric of one method: `ci95` resamples the
    evaluation examples (the same for every seed), `seed_ci95` is the t-interval over seeds."""
    seeds = sorted(s for s in by_seed if _value(by_seed, s, split, metric) is not None)
    values = [_value(by_seed, s, split, metric) or 0.0 for s in seeds]
    if not values:
        return {"per_seed": {}, "mean": None, "sd": None, "n": 0, "ci95": None, "seed_ci95": None}
    stats = {
        "per_seed": dict(zip(map(str, seeds), values)),
        "mean": statistics.fmean(values),
        "sd": sample_sd(values),
        "n": len(values),
        "ci95": None,
        "seed_ci95": seed_interval(values),
    }
    vectors = _outcomes(by_seed, split, metric, seeds)
    if vectors is not None:
        stats["ci95"] = _ci(share_statistic(*vectors), vectors[0].shape[1])
    return stats


def paired_difference(a: Mapping, b: Mapping, split: str, metric: str) -> dict | None:
    """Method a minus method b, paired by seed: per-seed differences, mean, SD, the seed-level
    t-interval and a bootstrap CI over the same resampled examples for both."""
    seeds = sorted(
        s
        for s in a
        if s in b and _value(a, s, split, metric) is not None and _value(b, s, split, metric) is not None
    )
    if not seeds:
        return None
    diffs = [(_value(a, s, split, metric) or 0.0) - (_value(b, s, split, metric) or 0.0) for s in seeds]
    out = {
        "per_seed": dict(zip(map(str, seeds), diffs)),
        "mean": statistics.fmean(diffs),
        "sd": sample_sd(diffs),
        "n": len(diffs),
        "min": min(diffs),
        "ci95": None,
        "seed_ci95": seed_interval(diffs),
    }
    va, vb = _outcomes(a, split, metric, seeds), _outcomes(b, split, metric, seeds)
    if va is not None and vb is not None and va[0].shape == vb[0].shape:
        fa, fb = share_statistic(*va), share_statistic(*vb)
        out["ci95"] = _ci(lambda w: fa(w) - fb(w), va[0].shape[1])
    return out


def curve_points(history: Sequence[Mapping], key: str = CURVE_KEY) -> list[tuple[int, float]]:
    return [(int(h["step"]), float(h[key])) for h in history if key in h and "step" in h]


def curve_auc(points: Sequence[tuple[int, float]]) -> float | None:
    """Area under a curve divided by its step span: its mean height (trapezoids)."""
    if len(points) < 2:
        return points[0][1] if points else None
    area = sum((x1 - x0) * (y0 + y1) / 2 for (x0, y0), (x1, y1) in zip(points, points[1:]))
    return area / (points[-1][0] - points[0][0])


def steps_to_reach(points: Sequence[tuple[int, float]], target: float) -> int | None:
    return next((x for x, y in points if y >= target - 1e-12), None)


def curve_summary(histories: Mapping[str, Mapping[int, Sequence[Mapping]]], reference: str = "grpo") -> dict:
    """Per method: final value, AUC and (vs `reference`) steps to reach its final value, by seed."""
    out: dict = {}
    for method, by_seed in histories.items():
        rows: dict = {"final": {}, "auc": {}, "steps_to_reference_final": {}, "fraction_of_steps": {},
                      "head_start": {}, "head_final": {}, "head_min": {}}  # fmt: skip
        for seed, history in by_seed.items():
            head = curve_points(history, HEAD_CURVE_KEY)
            if head:
                rows["head_start"][str(seed)], rows["head_final"][str(seed)] = head[0][1], head[-1][1]
                rows["head_min"][str(seed)] = min(y for _, y in head)
            points = curve_points(history)
            if not points:
                continue
            rows["final"][str(seed)] = points[-1][1]
            rows["auc"][str(seed)] = curve_auc(points)
            ref = curve_points(histories.get(reference, {}).get(seed, []))
            if ref:
                reached = steps_to_reach(points, ref[-1][1])
                rows["steps_to_reference_final"][str(seed)] = reached
                rows["fraction_of_steps"][str(seed)] = (
                    None if reached is None else reached / max(1, points[-1][0])
                )
        out[method] = rows
    return out


def training_stability(histories: Mapping[str, Mapping[int, Sequence[Mapping]]]) -> dict:
    """Per method, over seeds: reward std over steps, zero-advantage fraction, entropy."""
    out: dict = {}
    for method, by_seed in histories.items():
        rows: dict[str, list[float]] = {"reward_std_over_steps": [], "zero_adv_frac": [], "entropy": []}
        for history in by_seed.values():
            rewards = [h["reward"] for h in history if "reward" in h]
            zero = [h["frac_reward_zero_std"] for h in history if "frac_reward_zero_std" in h]
            entropy = [h["entropy"] for h in history if "entropy" in h]
            if len(rewards) > 1:
                rows["reward_std_over_steps"].append(statistics.stdev(rewards))
            if zero:
                rows["zero_adv_frac"].append(statistics.fmean(zero))
            if entropy:
                rows["entropy"].append(statistics.fmean(entropy))
        out[method] = {
            k: {"mean": statistics.fmean(v) if v else None, "sd": sample_sd(v), "n": len(v)}
            for k, v in rows.items()
        }
    return out


# What replay did, per method and seed: the mean over logged steps of each counter the trainer logs
# (agrl_trainer._log_replay), the guided success per guidance level and the trigger rate per rule.
REPLAY_KEYS = ("replay/triggered_frac", "replay/zero_adv_frac_before", "replay/zero_adv_frac_after",
               "replay/from_queue", "replay/queue_size", "replay/no_guidance", "replay/guided_success",
               "replay/level_mean", "ptx/nll")  # fmt: skip


def replay_summary(histories: Mapping[str, Mapping[int, Sequence[Mapping]]]) -> dict:
    """{method: {counter: {per_seed, mean, sd, n}}} for the methods whose logs carry replay counters;
    counters a step does not log (guided success on a step with no guided rollout) do not count."""
    out: dict = {}
    for method, by_seed in histories.items():
        keys = sorted({k for h in by_seed.values() for row in h for k in row
                       if k.startswith("replay/") or k == "ptx/nll"})  # fmt: skip
        keys = [k for k in REPLAY_KEYS if k in keys] + [k for k in keys if k not in REPLAY_KEYS]
        if not any(k.startswith("replay/") for k in keys):
            continue
        rows: dict = {}
        for key in keys:
            per_seed = {
                str(seed): statistics.fmean(v)
                for seed, history in by_seed.items()
                if (v := [float(row[key]) for row in history if key in row])
            }
            values = list(per_seed.values())
            rows[key] = {"per_seed": per_seed, "mean": statistics.fmean(values) if values else None,
                         "sd": sample_sd(values), "n": len(values)}  # fmt: skip
        out[method] = rows
    return out


# Paired differences reported: the headline is AGRL − GRPO-PR (the same rule-aware reward, without
# replay: what isolates replay); GRPO (label-only reward) and SFT (the warm start) stay as rows.
REFERENCES = ("grpo_pr", "grpo", "sft", "sft_gold")


def summarize(
    results: Mapping[str, Mapping[int, Mapping[str, Evaluation]]], references: Sequence[str] = REFERENCES
) -> dict:
    """{method: {seed: {split: metrics}}} -> per method and column: stats; for every reference that
    was run, `vs_<reference>`: every other method's differences from it, paired by seed."""
    summary: dict = {"methods": {}}
    for method, by_seed in results.items():
        if by_seed:
            summary["methods"][method] = {
                f"{split}/{metric}": metric_stats(by_seed, split, metric) for split, metric, _ in COLUMNS
            }
    for reference in (r for r in references if results.get(r)):
        summary["vs_" + reference] = {
            method: {
                f"{split}/{metric}": paired_difference(by_seed, results[reference], split, metric)
                for split, metric, _ in COLUMNS
            }
            for method, by_seed in results.items()
            if method != reference and by_seed
        }
    return summary


def _fmt(stat: Mapping | None, ci: bool = False) -> str:
    if not stat or stat.get("mean") is None:
        return "n/a"
    text = f"{100 * stat['mean']:.1f}"
    if stat.get("n", 0) > 1:
        text += f" ± {100 * stat['sd']:.1f}"
    if ci and stat.get("seed_ci95"):
        lo, hi = stat["seed_ci95"]
        text += f" t[{100 * lo:.1f}, {100 * hi:.1f}]"
    if ci and stat.get("ci95"):
        lo, hi = stat["ci95"]
        text += f" [{100 * lo:.1f}, {100 * hi:.1f}]"
    return text


def _label(method: str) -> str:
    arm, merged, alpha = method.partition("@")  # `agrl@0.8`: the arm merged with its SFT start
    if merged:
        return f"{LABELS.get(arm, arm)} merged with SFT (alpha {alpha})"
    return LABELS.get(method, method)


def table(summary: Mapping, ci: bool = False) -> str:
    return markdown_table(
        ["method", *(title for _, _, title in COLUMNS)],
        [
            [_label(method), *(_fmt(stats.get(f"{split}/{metric}"), ci) for split, metric, _ in COLUMNS)]
            for method, stats in summary["methods"].items()
        ],
    )


def _signed(stat: Mapping | None) -> str:
    if not stat:
        return "n/a"
    text = f"{100 * stat['mean']:+.1f} ± {100 * stat['sd']:.1f}"
    if stat.get("seed_ci95"):
        text += f" t[{100 * stat['seed_ci95'][0]:+.1f}, {100 * stat['seed_ci95'][1]:+.1f}]"
    if stat.get("ci95"):
        text += f" [{100 * stat['ci95'][0]:+.1f}, {100 * stat['ci95'][1]:+.1f}]"
    per_seed = ", ".join(f"{100 * v:+.1f}" for v in stat["per_seed"].values())
    return f"{text} ({per_seed})"


DIFFERENCE_COLUMNS = [c for c in COLUMNS if c[:2] in {("tail", "tail_solved"), ("tail", "accuracy"),
                                                      ("tail_novel", "tail_solved"),
                                                      ("w_eval", "head_accuracy"), ("w_eval", "accuracy"),
                                                      ("b_eval", "accuracy")}]  # fmt: skip


def difference_table(summary: Mapping, reference: str = "grpo_pr") -> str:
    return markdown_table(
        [f"method − {_label(reference)}", *(t for _, _, t in DIFFERENCE_COLUMNS)],
        [
            [_label(method), *(_signed(diffs.get(f"{s}/{m}")) for s, m, _ in DIFFERENCE_COLUMNS)]
            for method, diffs in summary.get("vs_" + reference, {}).items()
        ],
    )


def _per_rule_solved(
    results: Mapping, split: str = "b_eval", key: str = "solved"
) -> tuple[list[str], dict[str, list[float | None]]]:
    """Rules, and per method the mean over seeds of each rule's `key` share (None: never evaluated)."""
    rules = sorted({rule for by_seed in results.values() for r in by_seed.values() if split in r
                    for rule in r[split].per_rule})  # fmt: skip
    table: dict[str, list[float | None]] = {}
    for method, by_seed in results.items():
        if not by_seed:
            continue
        row = []
        for rule in rules:
            vals = [r[split].per_rule[rule][key] for r in by_seed.values()
                    if split in r and rule in r[split].per_rule]  # fmt: skip
            row.append(statistics.fmean(vals) if vals else None)
        table[method] = row
    return rules, table


def _rule_table(rules: Sequence[str], by_method: Mapping[str, Sequence[float | None]]) -> str:
    """Methods × rules, shares in whole percent."""
    rows = [
        [_label(m), *("n/a" if v is None else f"{100 * v:.0f}" for v in row)] for m, row in by_method.items()
    ]
    return markdown_table(["method", *rules], rows)


def stated_on_rules(
    results: Mapping, split: str, rules: Sequence[str], top: int = 3
) -> dict[str, dict[str, str]]:
    """Per method and gold rule, what the judge stated most often ("<rule> → <label>": share of that
    rule's records, summed over seeds): where a rule breaks, and into what."""
    out: dict[str, dict[str, str]] = {}
    for method, by_seed in results.items():
        cells = {}
        for rule in rules:
            counts: dict[str, int] = {}
            for r in by_seed.values():
                for stated, n in (r[split].per_rule.get(rule, {}).get("stated") or {}).items():
                    counts[stated] = counts.get(stated, 0) + n
            total = sum(counts.values())
            ranked = sorted(counts.items(), key=lambda kv: -kv[1])[:top]
            cells[rule] = ", ".join(f"{k} {100 * n / total:.0f}%" for k, n in ranked) if total else "n/a"
        out[method] = cells
    return out


def _tail_rules_section(results: Mapping) -> list[str]:
    """Tail solved per tail rule on `tail` and on `tail_novel` (its held-back surfaces): which rule a
    method learns, and whether it learns the rule or the surfaces it trained on."""
    lines: list[str] = []
    for split in ("tail", "tail_novel"):
        rules, solved = _per_rule_solved(results, split)
        if rules:
            lines += [
                f"## Tail solved per rule ({split}, %, mean over seeds)",
                "",
                _rule_table(rules, solved),
                "",
            ]
    return lines


def _head_drift_section(results: Mapping, split: str = "w_eval") -> list[str]:
    """Label accuracy per deciding rule on the natural mix, and what each judge says on each rule."""
    rules, accuracy = _per_rule_solved(results, split, "accuracy")
    if not rules:
        return []
    stated = stated_on_rules(results, split, rules)
    return [
        f"## Per deciding rule ({split}: the natural mix; label accuracy, %)",
        "",
        _rule_table(rules, accuracy),
        f"What each judge states on each gold rule ({split}; stated rule → label, share of the rule's records):",
        "",
        markdown_table(
            ["gold rule", *map(_label, stated)],
            [[rule, *(stated[m][rule] for m in stated)] for rule in rules],
        ),
    ]


def _plot_bars(summary: Mapping, path: Path) -> None:
    cols = COLUMNS[:4]
    series, intervals = {}, {}
    for method, by_column in summary["methods"].items():
        stats = [by_column.get(f"{s}/{m}") or {} for s, m, _ in cols]
        series[_label(method)] = [100 * (st.get("mean") or 0) for st in stats]
        intervals[_label(method)] = [
            [100 * v for v in st["ci95"]] if st.get("ci95") else None for st in stats
        ]
    bar_plot(path, [t for _, _, t in cols], series, intervals, ylim=(0, 100),
             ylabel="% (bars: mean over seeds; whiskers: 95 % bootstrap CI)")  # fmt: skip


def _plot_per_rule(results: Mapping, path: Path, split: str = "b_eval") -> None:
    rules, solved = _per_rule_solved(results, split)
    series = {_label(m): [100 * (v or 0) for v in row] for m, row in solved.items()}
    bar_plot(path, rules, series, ylim=(0, 100), ylabel="solved: label and rule right (%)",
             title=f"Per deciding rule ({split})", figsize=(10, 4))  # fmt: skip


def _band(ax, by_seed: Mapping, key: str, color: str, label: str | None, style: str = "-") -> None:
    """Mean over seeds at each step, shaded by the sample SD over seeds."""
    series = [dict(curve_points(h, key)) for h in by_seed.values()]
    steps = sorted(set.intersection(*(set(s) for s in series))) if series and all(series) else []
    if not steps:
        return
    mean = [statistics.fmean(s[x] for s in series) for x in steps]
    sd = [sample_sd([s[x] for s in series]) for x in steps]
    ax.plot(steps, mean, style, color=color, label=label, marker="." if style == "-" else None)
    if len(series) > 1:
        low, high = [m - d for m, d in zip(mean, sd)], [m + d for m, d in zip(mean, sd)]
        ax.fill_between(steps, low, high, color=color, alpha=0.15)


def _plot_curves(histories: Mapping, path: Path) -> None:
    plt = pyplot()
    keys = [
        (CURVE_KEY, "tail solved (fixed tail subset, greedy, no hints)"),
        (HEAD_CURVE_KEY, "head accuracy (fixed w_eval head subset, greedy)"),
        ("rewards/label_reward/mean", "rollout label accuracy (train)"),
        ("frac_reward_zero_std", "zero-advantage fraction (dashed: before replay)"),
    ]
    fig, axes = plt.subplots(1, len(keys), figsize=(5 * len(keys), 4))
    for ax, (key, title) in zip(axes, keys):
        for i, (method, by_seed) in enumerate(histories.items()):
            _band(ax, by_seed, key, f"C{i}", _label(method))
            if key == "frac_reward_zero_std":
                _band(ax, by_seed, "replay/zero_adv_frac_before", f"C{i}", None, "--")
        ax.set_title(title, fontsize=9)
        ax.set_xlabel("step")
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _over_seeds(values: Sequence[float]) -> str:
    return (
        _fmt({"mean": statistics.fmean(values), "sd": sample_sd(values), "n": len(values)})
        if values
        else "n/a"
    )


def _curve_section(summary: Mapping, histories: Mapping, out: Path) -> list[str]:
    curves = summary.get("curves") or curve_summary(histories)
    rows = []
    for method, c in curves.items():
        reach = ", ".join("never" if v is None else f"{v} ({c['fraction_of_steps'][s]:.0%})"
                          for s, v in c["steps_to_reference_final"].items())  # fmt: skip
        auc = [v for v in c["auc"].values() if v is not None]
        head = [_over_seeds(list(c.get(k, {}).values())) for k in ("head_start", "head_min", "head_final")]
        rows.append(
            [_label(method), _over_seeds(list(c["final"].values())), _over_seeds(auc), reach or "n/a", *head]
        )
    _plot_curves(histories, out / "training_curves.png")
    stability = [
        [_label(method), *(f"{s[k]['mean']:.3f} ± {s[k]['sd']:.3f}" if s[k]["mean"] is not None else "n/a"
                           for k in ("reward_std_over_steps", "zero_adv_frac", "entropy"))]
        for method, s in training_stability(histories).items()
    ]  # fmt: skip
    replay = summary.get("replay") or replay_summary(histories)
    shown = ("replay/triggered_frac", "replay/zero_adv_frac_before", "replay/zero_adv_frac_after",
             "replay/from_queue", "replay/guided_success", "replay/guided_success_level_1",
             "replay/guided_success_level_2", "replay/guided_success_level_3")  # fmt: skip
    replay_rows = [
        [_label(method), *(_over_seeds(list((r.get(k) or {}).get("per_seed", {}).values())) for k in shown)]
        for method, r in replay.items()
    ]
    return [
        "## Replay (means over logged steps; mean ± SD over seeds)",
        "",
        "triggered = share of prompt groups judged stagnant and replayed; zero-advantage before / after "
        "= share of groups with no reward spread before and after the guided rollouts; from queue = "
        "share of a batch's prompts served from the replay queue; guided success = share of guided "
        "rollouts with the right label (per starting level where logged). Per-rule trigger rates are "
        "in summary.json (`replay`).",
        "",
        markdown_table(
            [
                "method",
                "triggered",
                "zero-adv before",
                "zero-adv after",
                "from queue",
                "guided success",
                "level 1",
                "level 2",
                "level 3",
            ],
            replay_rows,
        ),  # fmt: skip
        "",
        "## Learning curves",
        "",
        "Tail solved on a fixed tail subset during RL; AUC = mean height of the curve; *reach* = first "
        "evaluated step at which the method reaches GRPO's final value (same seed). Head accuracy on a "
        "fixed subset of w_eval head-rule records at the same steps: at step 0, its lowest, at the end.",
        "",
        markdown_table(
            [
                "method",
                "tail solved final",
                "AUC",
                "steps to reach GRPO's final (fraction of run)",
                "head acc start",
                "head acc min",
                "head acc final",
            ],
            rows,
        ),  # fmt: skip
        "![training curves](training_curves.png)",
        "",
        "## Training stability",
        "",
        markdown_table(["method", "reward SD over steps", "zero-advantage fraction", "entropy"], stability),
    ]


def write_report(
    out: Path,
    summary: Mapping,
    results: Mapping,
    histories: Mapping,
    title: str,
    command: str,
    seconds: float,
    extra: Mapping | None = None,
    gate: Mapping | None = None,
    targets: Sequence[str] = (),
    resumed: bool = False,
) -> None:
    """report.md (gate, table, paired differences, targets, curves, per rule, notes) and table.md.

    `resumed`: some arms were read back from an earlier run, so `seconds` is not the comparison's time."""
    out.mkdir(parents=True, exist_ok=True)
    _plot_bars(summary, out / "accuracy.png")
    _plot_per_rule(results, out / "per_rule.png")
    lines = [f"# {title}", ""]
    if gate is not None:
        verdict = "PASSED" if gate["passed"] else "FAILED — the comparison below is not in the paper's regime"
        lines += [f"**Gate before RL: {verdict}.**", ""]
        lines += [f"- {c['name']}: {100 * c['value']:.1f} % (needs {c['op']} {100 * c['threshold']:.0f} %) — "
                  f"{'ok' if c['ok'] else 'FAILED'}" for c in gate["checks"]] + [""]  # fmt: skip
        if gate.get("stuck_per_rule"):
            shown = ", ".join(f"{rule} {100 * v:.1f} %" for rule, v in gate["stuck_per_rule"].items())
            lines += [f"Stuck per tail rule: {shown}.", ""]
        for w, g in (gate.get("per_warm_start") or {}).items():  # several warm starts: the above are means
            shown = ", ".join(f"{c['key']} {100 * c['value']:.1f} %{'' if c['ok'] else ' (FAILED)'}"
                              for c in g["checks"])  # fmt: skip
            lines += [f"- warm start {w}: {shown}"]
        if gate.get("per_warm_start"):
            lines += ["", "With several warm starts, each value above is their mean; the gate passes only "
                      "where every warm start passes.", ""]  # fmt: skip
    lines += [
        f"Command: `{command}` ({seconds / 60:.1f} min"
        + ("; resumed: this run trained only what Notes does not list as read back)." if resumed else ")."),
        "",
        "Every cell: mean ± sample SD over seeds t[95 % t-interval over seeds] [95 % bootstrap CI over "
        "evaluation examples: the noise of a finite evaluation set, not the spread over seeds], in %. "
        "Greedy decoding, no hints, strict parsing (a malformed output is wrong). *tail solved* = label "
        "and deciding rule right on the `tail` split (examples a model blind to the tail feature gets "
        "wrong); *w_eval head acc* = accuracy on w_eval records decided by head rules.",
        "",
        table(summary, ci=True),
        "![accuracy](accuracy.png)",
        "",
    ]
    for reference in REFERENCES:
        if summary.get("vs_" + reference):
            lines += [
                f"## Paired differences against {_label(reference)} (same seed)",
                "",
                "mean ± SD over seeds t[95 % t-interval over seeds] [95 % paired bootstrap CI over examples] "
                "(per seed), in points. The seed interval is the one that speaks to another training run."
                + (" AGRL − GRPO-PR is the headline: the same rule-aware reward, with and without replay."
                   if reference == "grpo_pr" else ""),
                "",
                difference_table(summary, reference),
                "",
            ]  # fmt: skip
    if targets:
        lines += ["## Targets", ""] + [f"- {t}" for t in targets] + [""]
    if histories:
        lines += _curve_section(summary, histories, out)
    rules, solved = _per_rule_solved(results)
    lines += [
        "## Per deciding rule (b_eval, solved = label and rule right, %)",
        "",
        "![per rule](per_rule.png)",
        "",
        _rule_table(rules, solved),
    ]
    lines += _tail_rules_section(results)
    lines += _head_drift_section(results)
    if extra:
        lines += ["## Notes", ""] + [f"- {k}: {v}" for k, v in extra.items()]
    atomic_write_text(out / "table.md", table(summary))
    atomic_write_text(out / "report.md", "\n".join(lines) + "\n")
