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

# (split, metric, column title); the headline metric first.
COLUMNS: tuple[tuple[str, str, str], ...] = (
    ("tail", "tail_solved", "tail solved"),
    ("w_eval", "head_accuracy", "w_eval head acc"),
    ("w_eval", "accuracy", "w_eval acc"),
    ("b_eval", "accuracy", "b_eval acc"),
    ("b_eval", "macro_f1", "b_eval F1"),
    ("b_eval", "grounded_adherence", "grounded adherence (b_eval)"),
    ("b_eval", "self_consistency", "self-consistency (b_eval)"),
    ("b_eval", "format_valid", "format valid (b_eval)"),
    ("tail", "accuracy", "tail label acc (luck-prone)"),
)
# metric -> (outcome vector counted, outcome mask it is counted over; None = every record)
OUTCOME_METRICS: dict[str, tuple[str, str | None]] = {
    "accuracy": ("correct", None),
    "head_accuracy": ("correct", "head"),
    "tail_solved": ("solved", "luck_proof"),
    "grounded_adherence": ("grounded", None),
    "format_valid": ("valid", None),
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
N_BOOT = 1000


def sample_sd(values: Sequence[float]) -> float:
    return statistics.stdev(values) if len(values) > 1 else 0.0


def _vectors(
    by_seed: Mapping, split: str, metric: str, seeds: Sequence
) -> tuple[np.ndarray, np.ndarray] | None:
    if metric not in OUTCOME_METRICS:
        return None
    hit_key, mask_key = OUTCOME_METRICS[metric]
    hits, masks = [], []
    for seed in seeds:
        outcomes = by_seed[seed].get(split, {}).get("outcomes")
        if not outcomes or hit_key not in outcomes:
            return None
        hits.append([c == "1" for c in outcomes[hit_key]])
        masks.append([c == "1" for c in outcomes[mask_key]] if mask_key else [True] * len(outcomes[hit_key]))
    if len({len(h) for h in hits}) != 1:
        return None
    return np.array(hits, dtype=float), np.array(masks, dtype=float)


def _boot_means(hits: np.ndarray, masks: np.ndarray, idx: np.ndarray) -> np.ndarray:
    """Mean over seeds of the metric on each bootstrap resample of examples: shape (N_BOOT,)."""
    num = (hits[:, idx] * masks[:, idx]).sum(axis=2)
    den = masks[:, idx].sum(axis=2)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.nanmean(num / den, axis=0)


def _resamples(n: int) -> np.ndarray:
    return np.random.default_rng(0).integers(0, n, size=(N_BOOT, n))


def metric_stats(by_seed: Mapping, split: str, metric: str) -> dict:
    """{per_seed, mean, sd, n, ci95} of one metric of one method."""
    seeds = sorted(s for s in by_seed if by_seed[s].get(split, {}).get(metric) is not None)
    values = [float(by_seed[s][split][metric]) for s in seeds]
    if not values:
        return {"per_seed": {}, "mean": None, "sd": None, "n": 0, "ci95": None}
    stats = {
        "per_seed": dict(zip(map(str, seeds), values)),
        "mean": statistics.fmean(values),
        "sd": sample_sd(values),
        "n": len(values),
        "ci95": None,
    }
    vectors = _vectors(by_seed, split, metric, seeds)
    if vectors is not None:
        boots = _boot_means(*vectors, _resamples(vectors[0].shape[1]))
        boots = boots[~np.isnan(boots)]
        if boots.size:
            stats["ci95"] = [float(np.percentile(boots, 2.5)), float(np.percentile(boots, 97.5))]
    return stats


def paired_difference(a: Mapping, b: Mapping, split: str, metric: str) -> dict | None:
    """Method a minus method b, paired by seed: per-seed differences, mean, SD, bootstrap CI."""
    seeds = sorted(
        s
        for s in a
        if s in b
        and a[s].get(split, {}).get(metric) is not None
        and b[s].get(split, {}).get(metric) is not None
    )
    if not seeds:
        return None
    diffs = [float(a[s][split][metric]) - float(b[s][split][metric]) for s in seeds]
    out = {
        "per_seed": dict(zip(map(str, seeds), diffs)),
        "mean": statistics.fmean(diffs),
        "sd": sample_sd(diffs),
        "n": len(diffs),
        "min": min(diffs),
        "ci95": None,
    }
    va, vb = _vectors(a, split, metric, seeds), _vectors(b, split, metric, seeds)
    if va is not None and vb is not None and va[0].shape == vb[0].shape:
        idx = _resamples(va[0].shape[1])
        boots = _boot_means(*va, idx) - _boot_means(*vb, idx)
        boots = boots[~np.isnan(boots)]
        if boots.size:
            out["ci95"] = [float(np.percentile(boots, 2.5)), float(np.percentile(boots, 97.5))]
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
        rows: dict = {"final": {}, "auc": {}, "steps_to_reference_final": {}, "fraction_of_steps": {}}
        for seed, history in by_seed.items():
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


def summarize(results: Mapping[str, Mapping[int, Mapping[str, Mapping]]], reference: str = "grpo") -> dict:
    """{method: {seed: {split: metrics}}} -> per method and column: stats; paired differences vs `reference`."""
    summary: dict = {"methods": {}, "vs_" + reference: {}}
    for method, by_seed in results.items():
        if not by_seed:
            continue
        summary["methods"][method] = {
            f"{split}/{metric}": metric_stats(by_seed, split, metric) for split, metric, _ in COLUMNS
        }
        if method != reference and reference in results:
            summary["vs_" + reference][method] = {
                f"{split}/{metric}": paired_difference(by_seed, results[reference], split, metric)
                for split, metric, _ in COLUMNS
            }
    return summary


def _fmt(stat: Mapping | None, ci: bool = False) -> str:
    if not stat or stat.get("mean") is None:
        return "n/a"
    text = f"{100 * stat['mean']:.1f}"
    if stat.get("n", 0) > 1:
        text += f" ± {100 * stat['sd']:.1f}"
    if ci and stat.get("ci95"):
        lo, hi = stat["ci95"]
        text += f" [{100 * lo:.1f}, {100 * hi:.1f}]"
    return text


def table(summary: Mapping, ci: bool = False) -> str:
    lines = [
        "| method | " + " | ".join(title for _, _, title in COLUMNS) + " |",
        "|---" * (len(COLUMNS) + 1) + "|",
    ]
    for method, stats in summary["methods"].items():
        cells = [_fmt(stats.get(f"{split}/{metric}"), ci) for split, metric, _ in COLUMNS]
        lines.append(f"| {LABELS.get(method, method)} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def _signed(stat: Mapping | None) -> str:
    if not stat:
        return "n/a"
    text = f"{100 * stat['mean']:+.1f} ± {100 * stat['sd']:.1f}"
    if stat.get("ci95"):
        text += f" [{100 * stat['ci95'][0]:+.1f}, {100 * stat['ci95'][1]:+.1f}]"
    per_seed = ", ".join(f"{100 * v:+.1f}" for v in stat["per_seed"].values())
    return f"{text} ({per_seed})"


def difference_table(summary: Mapping, reference: str = "grpo") -> str:
    cols = [
        c
        for c in COLUMNS
        if c[:2]
        in (
            ("tail", "tail_solved"),
            ("w_eval", "head_accuracy"),
            ("w_eval", "accuracy"),
            ("b_eval", "accuracy"),
        )
    ]
    lines = [
        f"| method − {LABELS.get(reference, reference)} | " + " | ".join(t for _, _, t in cols) + " |",
        "|---" * (len(cols) + 1) + "|",
    ]
    for method, diffs in summary.get("vs_" + reference, {}).items():
        lines.append(
            f"| {LABELS.get(method, method)} | "
            + " | ".join(_signed(diffs.get(f"{s}/{m}")) for s, m, _ in cols)
            + " |"
        )
    return "\n".join(lines) + "\n"


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _plot_bars(summary: Mapping, path: Path) -> None:
    plt = _pyplot()
    cols = COLUMNS[:4]
    methods = list(summary["methods"])
    fig, ax = plt.subplots(figsize=(9, 4))
    width = 0.8 / max(1, len(methods))
    for i, method in enumerate(methods):
        stats = [summary["methods"][method].get(f"{s}/{m}") or {} for s, m, _ in cols]
        means = [100 * (st.get("mean") or 0) for st in stats]
        errs = [
            [100 * ((st.get("mean") or 0) - st["ci95"][0]) if st.get("ci95") else 0 for st in stats],
            [100 * (st["ci95"][1] - (st.get("mean") or 0)) if st.get("ci95") else 0 for st in stats],
        ]
        ax.bar(
            [j + i * width for j in range(len(cols))],
            means,
            width,
            yerr=errs,
            capsize=3,
            label=LABELS.get(method, method),
        )
    ax.set_xticks([j + width * (len(methods) - 1) / 2 for j in range(len(cols))], [t for _, _, t in cols])
    ax.set_ylabel("% (bars: mean over seeds; whiskers: 95 % bootstrap CI)")
    ax.set_ylim(0, 100)
    ax.legend(fontsize=7, ncol=2)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _plot_per_rule(results: Mapping, path: Path, split: str = "b_eval") -> None:
    plt = _pyplot()
    rules = sorted(
        {
            rule
            for by_seed in results.values()
            for r in by_seed.values()
            for rule in r.get(split, {}).get("per_rule", {})
        }
    )
    methods = [m for m in results if results[m]]
    fig, ax = plt.subplots(figsize=(10, 4))
    width = 0.8 / max(1, len(methods))
    for i, method in enumerate(methods):
        means = []
        for rule in rules:
            vals = [
                r[split]["per_rule"][rule]["solved"]
                for r in results[method].values()
                if rule in r.get(split, {}).get("per_rule", {})
            ]
            means.append(100 * statistics.fmean(vals) if vals else 0)
        ax.bar([j + i * width for j in range(len(rules))], means, width, label=LABELS.get(method, method))
    ax.set_xticks([j + width * (len(methods) - 1) / 2 for j in range(len(rules))], rules, fontsize=8)
    ax.set_ylabel("solved: label and rule right (%)")
    ax.set_ylim(0, 100)
    ax.set_title(f"Per deciding rule ({split})")
    ax.legend(fontsize=7, ncol=2)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _band(ax, by_seed: Mapping, key: str, color: str, label: str, style: str = "-") -> None:
    """Mean over seeds at each step, shaded by the sample SD over seeds."""
    series = [dict(curve_points(h, key)) for h in by_seed.values()]
    steps = sorted(set.intersection(*(set(s) for s in series))) if series and all(series) else []
    if not steps:
        return
    mean = [statistics.fmean(s[x] for s in series) for x in steps]
    sd = [sample_sd([s[x] for s in series]) for x in steps]
    ax.plot(steps, mean, style, color=color, label=label, marker="." if style == "-" else None)
    if len(series) > 1:
        ax.fill_between(
            steps,
            [m - d for m, d in zip(mean, sd)],
            [m + d for m, d in zip(mean, sd)],
            color=color,
            alpha=0.15,
        )


def _plot_curves(histories: Mapping, path: Path) -> None:
    plt = _pyplot()
    keys = [
        (CURVE_KEY, "tail solved (fixed tail subset, greedy, no hints)"),
        ("rewards/label_reward/mean", "rollout label accuracy (train)"),
        ("frac_reward_zero_std", "zero-advantage fraction (dashed: before replay)"),
    ]
    fig, axes = plt.subplots(1, 3, figsize=(15, 4))
    for ax, (key, title) in zip(axes, keys):
        for i, (method, by_seed) in enumerate(histories.items()):
            _band(ax, by_seed, key, f"C{i}", LABELS.get(method, method))
            if key == "frac_reward_zero_std":
                _band(ax, by_seed, "replay/zero_adv_frac_before", f"C{i}", None, "--")
        ax.set_title(title, fontsize=9)
        ax.set_xlabel("step")
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


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
) -> None:
    out.mkdir(parents=True, exist_ok=True)
    _plot_bars(summary, out / "accuracy.png")
    _plot_per_rule(results, out / "per_rule.png")
    lines = [f"# {title}", ""]
    if gate is not None:
        verdict = "PASSED" if gate["passed"] else "FAILED — the comparison below is not in the paper's regime"
        lines += (
            [f"**Gate before RL: {verdict}.**", ""]
            + [
                f"- {c['name']}: {100 * c['value']:.1f} % (needs {c['op']} {100 * c['threshold']:.0f} %) — "
                f"{'ok' if c['ok'] else 'FAILED'}"
                for c in gate["checks"]
            ]
            + [""]
        )
    lines += [
        f"Command: `{command}` ({seconds / 60:.1f} min).",
        "",
        "Every cell: mean ± sample SD over seeds [95 % bootstrap CI over evaluation examples: the noise "
        "of a finite evaluation set, not the spread over seeds, which the SD shows], in %. "
        "Greedy decoding, no hints, strict parsing (a malformed output is wrong). *tail solved* = label "
        "and deciding rule right on the `tail` split (examples a model blind to the tail feature gets "
        "wrong); *w_eval head acc* = accuracy on w_eval records decided by head rules.",
        "",
        table(summary, ci=True),
        "![accuracy](accuracy.png)",
        "",
    ]
    if summary.get("vs_grpo"):
        lines += [
            "## Paired differences against GRPO (same seed)",
            "",
            "mean ± SD over seeds [95 % paired bootstrap CI] (per seed), in points.",
            "",
            difference_table(summary),
            "",
        ]
    if targets:
        lines += ["## Targets", ""] + [f"- {t}" for t in targets] + [""]
    if histories:
        curves = summary.get("curves") or curve_summary(histories)
        lines += [
            "## Learning curves",
            "",
            "Tail solved on a fixed tail subset during RL; AUC = mean height of "
            "the curve; *reach* = first evaluated step at which the method reaches GRPO's final value "
            "(same seed).",
            "",
            "| method | final | AUC | steps to reach GRPO's final (fraction of run) |",
            "|---|---|---|---|",
        ]
        for method, rows in curves.items():
            final = [v for v in rows["final"].values()]
            auc = [v for v in rows["auc"].values() if v is not None]
            reach = ", ".join(
                "never" if v is None else f"{v} ({rows['fraction_of_steps'][s]:.0%})"
                for s, v in rows["steps_to_reference_final"].items()
            )
            lines.append(
                f"| {LABELS.get(method, method)} | "
                f"{_fmt({'mean': statistics.fmean(final), 'sd': sample_sd(final), 'n': len(final)}) if final else 'n/a'} | "
                f"{_fmt({'mean': statistics.fmean(auc), 'sd': sample_sd(auc), 'n': len(auc)}) if auc else 'n/a'} | "
                f"{reach or 'n/a'} |"
            )
        _plot_curves(histories, out / "training_curves.png")
        lines += [
            "",
            "![training curves](training_curves.png)",
            "",
            "## Training stability",
            "",
            "| method | reward SD over steps | zero-advantage fraction | entropy |",
            "|---|---|---|---|",
        ]
        for method, s in training_stability(histories).items():
            cells = [
                f"{s[k]['mean']:.3f} ± {s[k]['sd']:.3f}" if s[k]["mean"] is not None else "n/a"
                for k in ("reward_std_over_steps", "zero_adv_frac", "entropy")
            ]
            lines.append(f"| {LABELS.get(method, method)} | " + " | ".join(cells) + " |")
        lines.append("")
    lines += [
        "## Per deciding rule (b_eval, solved = label and rule right, %)",
        "",
        "![per rule](per_rule.png)",
        "",
    ]
    rules = sorted(
        {
            rule
            for by_seed in results.values()
            for r in by_seed.values()
            for rule in r.get("b_eval", {}).get("per_rule", {})
        }
    )
    lines.append("| method | " + " | ".join(rules) + " |")
    lines.append("|" + "---|" * (len(rules) + 1))
    for method, by_seed in results.items():
        cells = []
        for rule in rules:
            vals = [
                r["b_eval"]["per_rule"][rule]["solved"]
                for r in by_seed.values()
                if rule in r.get("b_eval", {}).get("per_rule", {})
            ]
            cells.append(f"{100 * statistics.fmean(vals):.0f}" if vals else "n/a")
        lines.append(f"| {LABELS.get(method, method)} | " + " | ".join(cells) + " |")
    if extra:
        lines += ["", "## Notes", ""] + [f"- {k}: {v}" for k, v in extra.items()]
    atomic_write_text(out / "table.md", table(summary))
    atomic_write_text(out / "report.md", "\n".join(lines) + "\n")
