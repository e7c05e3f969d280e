"""Reports people look at: summary.json (mean/std over seeds), a Markdown table and PNG plots."""

from __future__ import annotations

import math
import statistics
from collections.abc import Mapping, Sequence
from pathlib import Path

from agrl.data.io import atomic_write_text

METRICS = ("accuracy", "macro_f1", "rule_adherence", "format_valid", "rule_accuracy")
SPLITS = ("b_eval", "w_eval", "hard")
LABELS = {"sft": "SFT", "dpo": "DPO", "grpo": "GRPO", "grpo_pr": "GRPO-PR", "replay_only": "replay-only",
          "agrl": "AGRL"}


def _stat(values: Sequence[float]) -> dict:
    values = [v for v in values if v is not None and not (isinstance(v, float) and math.isnan(v))]
    if not values:
        return {"mean": None, "std": None, "n": 0}
    return {"mean": statistics.fmean(values), "std": statistics.pstdev(values) if len(values) > 1 else 0.0,
            "n": len(values)}


def summarize(results: Mapping[str, Mapping[int, Mapping[str, Mapping]]]) -> dict:
    """{method: {seed: {split: metrics}}} -> {method: {split: {metric: {mean, std, n}}}}."""
    summary: dict = {}
    for method, by_seed in results.items():
        if not by_seed:
            continue
        splits = sorted({s for r in by_seed.values() for s in r})
        summary[method] = {
            split: {m: _stat([r[split][m] for r in by_seed.values() if split in r]) for m in METRICS}
            for split in splits
        }
    return summary


def training_stability(histories: Mapping[str, Mapping[int, Sequence[Mapping]]]) -> dict:
    """Per method, over seeds: reward std over steps, mean zero-advantage fraction, mean entropy, final hard acc."""
    out: dict = {}
    for method, by_seed in histories.items():
        rows = {"reward_std_over_steps": [], "zero_adv_frac": [], "entropy": [], "final_hard_accuracy": []}
        for history in by_seed.values():
            rewards = [h["reward"] for h in history if "reward" in h]
            zero = [h["frac_reward_zero_std"] for h in history if "frac_reward_zero_std" in h]
            entropy = [h["entropy"] for h in history if "entropy" in h]
            hard = [h["eval_hard_accuracy"] for h in history if "eval_hard_accuracy" in h]
            if len(rewards) > 1:
                rows["reward_std_over_steps"].append(statistics.pstdev(rewards))
            if zero:
                rows["zero_adv_frac"].append(statistics.fmean(zero))
            if entropy:
                rows["entropy"].append(statistics.fmean(entropy))
            if hard:
                rows["final_hard_accuracy"].append(hard[-1])
        out[method] = {k: _stat(v) for k, v in rows.items()}
    return out


def _fmt(stat: Mapping | None, pct: bool = True) -> str:
    if not stat or stat.get("mean") is None:
        return "n/a"
    scale = 100 if pct else 1
    text = f"{scale * stat['mean']:.1f}" if pct else f"{stat['mean']:.3f}"
    if stat.get("n", 0) > 1:
        text += f" ± {scale * stat['std']:.1f}" if pct else f" ± {stat['std']:.3f}"
    return text


def table(summary: Mapping) -> str:
    head = "| method | " + " | ".join(f"{s} acc" for s in SPLITS) + " | " + " | ".join(f"{s} F1" for s in SPLITS)
    head += " | rule adherence (b_eval) | format valid (b_eval) |"
    lines = [head, "|" + "---|" * (2 + 2 * len(SPLITS) + 1)]
    for method, by_split in summary.items():
        cells = [_fmt(by_split.get(s, {}).get("accuracy")) for s in SPLITS]
        cells += [_fmt(by_split.get(s, {}).get("macro_f1")) for s in SPLITS]
        cells += [_fmt(by_split.get("b_eval", {}).get("rule_adherence")),
                  _fmt(by_split.get("b_eval", {}).get("format_valid"))]
        lines.append(f"| {LABELS.get(method, method)} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def _plot_accuracy(summary: Mapping, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    methods = list(summary)
    fig, ax = plt.subplots(figsize=(8, 4))
    width = 0.8 / max(1, len(methods))
    for i, method in enumerate(methods):
        means = [100 * (summary[method].get(s, {}).get("accuracy", {}).get("mean") or 0) for s in SPLITS]
        stds = [100 * (summary[method].get(s, {}).get("accuracy", {}).get("std") or 0) for s in SPLITS]
        xs = [j + i * width for j in range(len(SPLITS))]
        ax.bar(xs, means, width, yerr=stds, label=LABELS.get(method, method), capsize=3)
    ax.set_xticks([j + width * (len(methods) - 1) / 2 for j in range(len(SPLITS))], SPLITS)
    ax.set_ylabel("accuracy (%)")
    ax.set_ylim(0, 100)
    ax.set_title("Accuracy by method and split")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _plot_per_rule(results: Mapping, path: Path, split: str = "b_eval") -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(9, 4))
    rules: list[str] = []
    for by_seed in results.values():
        for r in by_seed.values():
            for rule in r.get(split, {}).get("per_rule", {}):
                if rule not in rules:
                    rules.append(rule)
    methods = [m for m in results if results[m]]
    width = 0.8 / max(1, len(methods))
    for i, method in enumerate(methods):
        means = []
        for rule in rules:
            vals = [r[split]["per_rule"][rule]["accuracy"] for r in results[method].values()
                    if rule in r.get(split, {}).get("per_rule", {})]
            means.append(100 * statistics.fmean(vals) if vals else 0)
        ax.bar([j + i * width for j in range(len(rules))], means, width, label=LABELS.get(method, method))
    ax.set_xticks([j + width * (len(methods) - 1) / 2 for j in range(len(rules))], rules, fontsize=8)
    ax.set_ylabel("accuracy (%)")
    ax.set_ylim(0, 100)
    ax.set_title(f"Accuracy per deciding rule ({split})")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _plot_curves(histories: Mapping, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    # The label reward is on the same 0-1 scale for every method (rollout label accuracy); the total
    # reward is not (outcome vs weighted rule-aware components).
    keys = [("rewards/label_reward/mean", "rollout label accuracy (train)"),
            ("frac_reward_zero_std", "zero-advantage fraction"),
            ("eval_hard_accuracy", "hard accuracy (greedy, no hints)")]
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.6))
    for ax, (key, title) in zip(axes, keys):
        for method, by_seed in histories.items():
            color = f"C{list(histories).index(method)}"
            for k, (_seed, history) in enumerate(sorted(by_seed.items())):
                points = [(h["step"], h[key]) for h in history if key in h and "step" in h and "train_runtime" not in h]
                if points:
                    xs, ys = zip(*points)
                    ax.plot(xs, ys, marker=".", label=LABELS.get(method, method) if k == 0 else None,
                            color=color, alpha=0.9 if k == 0 else 0.5)
                before = [(h["step"], h["replay/zero_adv_frac_before"]) for h in history
                          if key == "frac_reward_zero_std" and "replay/zero_adv_frac_before" in h]
                if before:
                    xs, ys = zip(*before)
                    ax.plot(xs, ys, linestyle="--", color=color, alpha=0.6,
                            label=f"{LABELS.get(method, method)} before replay" if k == 0 else None)
        ax.set_title(title)
        ax.set_xlabel("step")
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def write_report(out: Path, summary: Mapping, results: Mapping, histories: Mapping, title: str, command: str,
                 seconds: float, extra: Mapping | None = None) -> None:
    out.mkdir(parents=True, exist_ok=True)
    _plot_accuracy(summary, out / "accuracy.png")
    _plot_per_rule(results, out / "per_rule.png")
    if histories:
        _plot_curves(histories, out / "training_curves.png")
    stability = training_stability(histories) if histories else {}
    text = table(summary)
    atomic_write_text(out / "table.md", text)
    lines = [f"# {title}", "", f"Command: `{command}` ({seconds / 60:.1f} min).", "",
             "Accuracy and macro-F1 in %, mean ± std over seeds where there are several. Greedy decoding, no hints.",
             "", text, "![accuracy](accuracy.png)", "", "![per-rule accuracy](per_rule.png)", ""]
    if stability:
        lines += ["## Training stability", "",
                  "| method | reward std over steps | zero-advantage fraction | entropy | final hard acc (100 ex.) |",
                  "|---|---|---|---|---|"]
        for method, s in stability.items():
            lines.append(f"| {LABELS.get(method, method)} | {_fmt(s['reward_std_over_steps'], False)} | "
                         f"{_fmt(s['zero_adv_frac'], False)} | {_fmt(s['entropy'], False)} | "
                         f"{_fmt(s['final_hard_accuracy'])} |")
        lines += ["", "![training curves](training_curves.png)", ""]
    lines += ["## Per deciding rule (b_eval accuracy, %)", ""]
    rules = sorted({rule for by_seed in results.values() for r in by_seed.values()
                    for rule in r.get("b_eval", {}).get("per_rule", {})})
    lines.append("| method | " + " | ".join(rules) + " |")
    lines.append("|" + "---|" * (len(rules) + 1))
    for method, by_seed in results.items():
        cells = []
        for rule in rules:
            vals = [r["b_eval"]["per_rule"][rule]["accuracy"] for r in by_seed.values()
                    if rule in r.get("b_eval", {}).get("per_rule", {})]
            cells.append(f"{100 * statistics.fmean(vals):.0f}" if vals else "n/a")
        lines.append(f"| {LABELS.get(method, method)} | " + " | ".join(cells) + " |")
    if extra:
        lines += ["", "## Notes", ""] + [f"- {k}: {v}" for k, v in extra.items()]
    atomic_write_text(out / "report.md", "\n".join(lines) + "\n")
