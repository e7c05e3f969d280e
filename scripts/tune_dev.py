"""Tune an RL arm on the `dev` split (never on a reported split): one run per grid point.

Every point trains the arm from one SFT checkpoint on the tuning seed's prompts (`rl_prompts`, the
same code path as `agrl reproduce`) and is scored on `dev`: tail solved (luck-proof tail records),
head accuracy, the natural-mix accuracy (dev's per-rule accuracy re-weighted to ShopRules' natural
scenario weights, the mix `w_eval` is drawn from: the tuning proxy for the deployed traffic), and
faithfulness (grounded adherence given solved and self-consistency, head and tail apart).

A point is a name and its config flags; `--rl_tail_share X` / `--rl_head_mix natural` among them
set the prompt mix. Points already in `--out` are kept (a killed sweep resumes); the winner goes
into the arm's config (or the budget's defaults) by hand.

`--seeds 100 101 ...` trains every point at every seed (its RL seed and prompt order; one SFT
checkpoint) and `--base NAME` adds the paired comparison: each point's mean and sample SD over seeds,
its difference from the base point paired by seed with the seed-level 95 % t-interval
(`paired_rows`; `.md` beside `--out`).

`--jobs 2` trains the points side by side in two worker processes with the cores shared out
(`agrl.experiments.parallel`, as `agrl reproduce --jobs`); a point's numbers depend on its torch
thread count, not on which worker ran it.

`--merge 0.8 0.9` also scores every trained point merged with the SFT start
(`(1 - alpha) * SFT + alpha * point`, `agrl.train.merge`; rows `NAME@0.8`), with no further training.

    .venv/bin/python scripts/tune_dev.py --sft S/runs/models/sft --data S/runs/data --out results/tuning/agrl_head.json \\
        --point default= --point beta0.2="--beta 0.2" --point mix30="--rl_tail_share 0.3"
"""

from __future__ import annotations

import argparse
import json
import shlex
import statistics
import tempfile
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from agrl.constant import constant_completions
from agrl.data.io import atomic_write_text, read_records, write_json
from agrl.data.shoprules import HEAD_RULES, NATURAL, SCENARIOS
from agrl.evaluate import evaluate
from agrl.experiments.budgets import ComparisonBudget
from agrl.experiments.parallel import map_jobs, worker_pool
from agrl.experiments.provenance import provenance
from agrl.experiments.runner import train_arm
from agrl.experiments.shoprules import comparison_arms, rl_prompts, train_dpo
from agrl.models import load_model
from agrl.models.generate import generate_completions
from agrl.render import markdown_table, pyplot
from agrl.rules import default_rulebook
from agrl.stats import sample_sd, seed_interval
from agrl.train.merge import merge_models

TUNING_SEED = 100  # not one of the reported seeds
FLOORS = ("sft", "constant")  # rows that are not grid points: the SFT start and the best constant answer
FIELDS = ("tail_solved", "head_accuracy", "accuracy", "format_valid", "grounded_solved_head",
          "grounded_solved_tail", "self_consistency_head", "self_consistency_tail")  # fmt: skip


def score_completions(records: list[dict], completions: Mapping[str, str]) -> dict:
    """The grid's fields of `completions` ({id: text}) on `records`, with the natural-mix accuracy."""
    m = evaluate(records, completions, head_rules=HEAD_RULES)
    weights = {SCENARIOS[s].rule: w for s, w in NATURAL.items()}
    natural = sum(weights[r] * row["accuracy"] for r, row in m.per_rule.items()) / sum(
        weights[r] for r in m.per_rule
    )
    return (
        {k: m.get(k) for k in FIELDS}
        | {"natural_accuracy": natural}
        | {f"accuracy_{rule}": round(row["accuracy"], 3) for rule, row in m.per_rule.items()}
    )


def score(model_dir: Path, records: list[dict]) -> dict:
    model, tokenizer = load_model(str(model_dir))
    texts = generate_completions(model, tokenizer, records, progress=False)
    return score_completions(records, {r["id"]: t[0] for r, t in zip(records, texts)})


def constant_scores(records: list[dict]) -> dict:
    """Each field at its best constant answer on `records` (the best grade per field, `agrl.constant`):
    the floor beside the grid's points."""
    by_grade = [score_completions(records, c)
                for c in constant_completions(records, default_rulebook(), HEAD_RULES).values()]  # fmt: skip
    best = {}
    for key in by_grade[0]:
        values = [row[key] for row in by_grade if row.get(key) is not None]
        best[key] = max(values) if values else None
    return best


def score_merged(sft: Path, model_dir: Path, alpha: float, records: list[dict]) -> dict:
    """`score` of the model merged with its SFT start at `alpha`; the merged folder is not kept."""
    with tempfile.TemporaryDirectory() as tmp:
        return score(merge_models(sft, model_dir, alpha, Path(tmp) / "merged"), records)


PROMPT_FLAGS = {"--rl_tail_share": float, "--rl_head_mix": str}  # budget fields that set the prompt mix


def choose(
    rows: list[dict], min_tail: float = 0.5, tie: float = 0.005, min_format: float = 0.99, eligible: str = ""
) -> dict | None:
    """The selection rule every arm gets, declared before the grids ran: among points with dev
    format validity >= `min_format` (and whose name contains `eligible`), those with tail solved >=
    `min_tail` if any (else all of them); the highest natural-mix accuracy, points within `tie` of it
    going to more tail solved."""  # fmt: skip
    points = [r for r in rows if r["setting"] not in FLOORS and eligible in r["setting"]
              and (r.get("format_valid") or 0) >= min_format]  # fmt: skip
    if not points:
        return None
    tailed = [r for r in points if (r.get("tail_solved") or 0) >= min_tail] or points
    best = max(r["natural_accuracy"] for r in tailed)
    return max(
        (r for r in tailed if r["natural_accuracy"] >= best - tie), key=lambda r: r["tail_solved"] or 0
    )


# arm -> the points its choice is made among: the control must get the RL arms' compute
ELIGIBLE = {"sft_gold": "steps700"}

PAIRED = ("tail_solved", "head_accuracy", "natural_accuracy", "grounded_solved_head", "grounded_solved_tail",
          "self_consistency_head", "self_consistency_tail")  # fmt: skip


def row_seed(row: dict) -> int:
    return int(row.get("seed", TUNING_SEED))  # rows of single-seed grids ran at the tuning seed


def paired_rows(rows: list[dict], base: str, fields: tuple[str, ...] = PAIRED) -> list[dict]:
    """Per point (other than SFT): for each field its mean and sample SD over the seeds it ran at,
    and the difference from `base` paired by seed (the seeds both ran at) with its seed-level 95 %
    t-interval (None with fewer than two pairs). A field a row lacks (None) leaves that seed out."""
    by_point: dict[str, dict[int, dict]] = {}
    for r in rows:
        if r["setting"] not in FLOORS:
            by_point.setdefault(r["setting"], {})[row_seed(r)] = r
    if base not in by_point:
        raise ValueError(f"--base {base!r}: no such point (points: {', '.join(by_point) or 'none'})")
    out = []
    for name, seeds in by_point.items():
        row: dict = {"setting": name, "seeds": sorted(seeds)}
        for key in fields:
            values = [seeds[s][key] for s in sorted(seeds) if seeds[s].get(key) is not None]
            pairs = [(seeds[s][key], by_point[base][s][key]) for s in sorted(seeds)
                     if s in by_point[base] and seeds[s].get(key) is not None
                     and by_point[base][s].get(key) is not None]  # fmt: skip
            diffs = [a - b for a, b in pairs]
            row[key] = {
                "mean": statistics.fmean(values) if values else None,
                "sd": sample_sd(values),
                "n": len(values),
                "diff": statistics.fmean(diffs) if diffs else None,
                "diff_ci95": seed_interval(diffs),
                "pairs": len(diffs),
            }
        out.append(row)
    return out


def paired_markdown(table: dict, base: str) -> str:
    """The paired comparison as a table: mean ± SD over seeds, and (not the base) the paired
    difference from `base` with its seed-level t-interval, in points."""

    def cell(stat: dict, name: str) -> str:
        if stat["mean"] is None:
            return "n/a"
        text = f"{100 * stat['mean']:.1f} ± {100 * stat['sd']:.1f}"
        if name != base and stat["diff"] is not None:
            ci = stat["diff_ci95"]
            text += f" ({100 * stat['diff']:+.1f}" + (
                f" [{100 * ci[0]:+.1f}, {100 * ci[1]:+.1f}])" if ci else ")"
            )
        return text

    rows = paired_rows(table["rows"], base)
    return (
        f"## Paired by seed against `{base}` (seeds {', '.join(map(str, sorted({s for r in rows for s in r['seeds']})))})\n\n"
        "Cells: mean ± sample SD over seeds, in %; for the other points (their difference from "
        f"`{base}` paired by seed [seed-level 95 % t-interval]).\n\n"
        + markdown_table(
            ["point", "seeds", *(title for key, title in SHOWN if key in PAIRED)],
            [
                [
                    r["setting"],
                    len(r["seeds"]),
                    *(cell(r[key], r["setting"]) for key, _ in SHOWN if key in PAIRED),
                ]
                for r in rows
            ],
        )  # fmt: skip
        + "\n"
    )


def summarize_grids(folder: Path) -> None:
    """results/tuning/grids.{md,json}: every arm's grid (`grid_<arm>.json`) and the point the rule chose."""
    chosen, lines = (
        {},
        [
            "# Equal grids on dev: every arm, the same selection rule (`scripts/tune_dev.py --choose`)",
            "",
            "One seed (tuning seed 100) per point, 200 RL steps from one SFT checkpoint, scored on `dev`. "
            "Rule (declared before the grids ran): format valid >= 99 %; among points with tail solved "
            ">= 50 % if any, else all, the highest natural-mix accuracy, ties within 0.5 to more tail "
            "solved; the control chooses among its compute-matched points only. *minutes*: wall "
            "time on the shared 2-core machine, not a timing. `constant`: what a constant answer scores on "
            "the same rows, best grade per column.",
            "",
        ],  # fmt: skip
    )
    for path in sorted(folder.glob("grid_*.json")):
        table = json.loads(path.read_text())
        arm = table["method"]
        pick = choose(table["rows"], eligible=ELIGIBLE.get(arm, ""))
        chosen[arm] = None if pick is None else {"setting": pick["setting"], "flags": pick.get("flags"),
                                                 "commit": pick.get("commit")}  # fmt: skip
        rows = sorted(table["rows"], key=lambda r: r["setting"] not in FLOORS)  # the floors first
        points = sum(r["setting"] not in FLOORS for r in rows)
        lines += [f"## {arm} ({points} points): chosen **{pick['setting'] if pick else 'none'}**", "",
                  markdown_table(["point", "tail solved", "head acc", "natural-mix acc", "format valid", "minutes"],
                                 [[r["setting"], *(f"{100 * r[k]:.1f}" if r.get(k) is not None else "n/a"
                                                   for k in ("tail_solved", "head_accuracy", "natural_accuracy",
                                                             "format_valid")), r.get("minutes", "")]
                                  for r in rows]), ""]  # fmt: skip
    write_json(folder / "grids.json", chosen)
    atomic_write_text(folder / "grids.md", "\n".join(lines))


def split_budget(flags: list[str], steps: int) -> tuple[ComparisonBudget, list[str]]:
    """The prompt-mix flags go to the budget, the rest to the arm's config."""
    mix, rest, tokens = {}, [], iter(flags)
    for token in tokens:  # config flags may take several values (--loss_type sigmoid sft)
        if token in PROMPT_FLAGS:
            mix[token.removeprefix("--")] = PROMPT_FLAGS[token](next(tokens))
        else:
            rest.append(token)
    return ComparisonBudget(rl_steps=steps, curve_every=0, **mix), rest


SHOWN = (("tail_solved", "tail solved"), ("head_accuracy", "head acc"), ("natural_accuracy", "natural-mix acc"),
         ("accuracy_R07", "R07 acc"), ("accuracy_R12", "R12 acc"), ("grounded_solved_head", "grounded given solved, head"),
         ("grounded_solved_tail", "grounded given solved, tail"), ("self_consistency_head", "self-cons. head"),
         ("self_consistency_tail", "self-cons. tail"))  # fmt: skip


def point_label(row: dict, method: str) -> str:
    """The point's name, with its arm when another arm than the file's trained it."""
    other = row.get("method", method)
    return row["setting"] if other == method else f"{row['setting']} ({other})"


def render(out: Path, table: dict) -> None:
    """`out` with .md (the grid as a table, the floors first) and .png (tail solved against
    natural-mix accuracy; the constant answer, far below every point, is left off the plot)."""
    rows = sorted(table["rows"], key=lambda r: r["setting"] not in FLOORS)

    def cell(value: float | None) -> str:
        return "n/a" if value is None else f"{100 * value:.1f}"

    seeds = sorted({row_seed(r) for r in rows if r["setting"] not in FLOORS}) or [table["seed"]]
    text = markdown_table(
        ["point", "seed", "flags", *(title for _, title in SHOWN)],
        [[point_label(r, table["method"]), "" if r["setting"] in FLOORS else row_seed(r), f"`{r.get('flags', '')}`",
          *(cell(r.get(k)) for k, _ in SHOWN)] for r in rows],
    )  # fmt: skip
    head = (f"# {table['method']} on dev ({table['steps']} steps, seed(s) {', '.join(map(str, seeds))}, one SFT checkpoint)\n\n"
            "natural-mix acc = dev per-rule accuracy weighted by the natural scenario mix (the mix of w_eval). "
            "constant = what a constant answer scores on the same rows, best grade per column (`agrl.constant`).\n\n")  # fmt: skip
    paired = "\n" + paired_markdown(table, table["base"]) if table.get("base") else ""
    atomic_write_text(out.with_suffix(".md"), head + text + "\n" + paired)
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6, 4.5))
    points: dict[str, list[dict]] = {}
    for r in rows:  # one marker per point: its mean over seeds, the bars one sample SD
        if r["setting"] != "constant":
            points.setdefault(r["setting"], []).append(r)
    for name, runs in points.items():
        tail = [100 * (r["tail_solved"] or 0.0) for r in runs]
        natural = [100 * r["natural_accuracy"] for r in runs]
        x, y = statistics.fmean(tail), statistics.fmean(natural)
        ax.errorbar(x, y, xerr=sample_sd(tail) or 0.0, yerr=sample_sd(natural) or 0.0, fmt="o",
                    color="tab:red" if name == "sft" else "tab:blue", ecolor="0.7", elinewidth=0.8)  # fmt: skip
        ax.annotate(name, (x, y), fontsize=7)
    ax.set_xlabel("dev tail solved (%)")
    ax.set_ylabel("dev natural-mix accuracy (%)")
    ax.set_title(f"{table['method']}: tail against natural traffic (mean ± SD over seeds)")
    fig.tight_layout()
    fig.savefig(out.with_suffix(".png"), dpi=110)
    plt.close(fig)


@dataclass(frozen=True)
class PointJob:
    """One grid point at one seed: train it (unless `train` is False: trained by an earlier sweep)
    and score it, and its merges with the SFT start, on dev."""

    name: str
    flags: str
    seed: int
    train: bool
    merges: tuple[float, ...]
    method: str
    sft: Path
    data: Path
    out: Path
    work: Path
    steps: int
    commit: str | None
    clean: bool | None


def run_point(job: PointJob) -> list[dict]:
    """The rows of `job`: the trained point's (if it trained) and one per merge weight. A
    module-level function of its argument, so `--jobs N` can run it in a worker process."""
    dev = read_records(job.data / "dev.jsonl")
    stamp = {
        "seed": job.seed,
        "method": job.method,
        "flags": job.flags,
        "commit": job.commit,
        "clean": job.clean,
    }
    rows = []
    if job.train:
        started = time.perf_counter()
        budget, flags = split_budget(shlex.split(job.flags), job.steps)
        prompts = rl_prompts(job.data, job.seed, budget)
        arm = comparison_arms(job.sft, job.data, prompts, job.work, job.seed, budget)[job.method]
        arm = arm.with_fields(output_dir=str(job.out), disable_tqdm=True)
        if job.method == "dpo":
            train_dpo(arm, job.sft, prompts, flags)
        else:
            train_arm(arm, flags)
        minutes = round((time.perf_counter() - started) / 60, 1)
        rows.append({"setting": job.name, **stamp, "minutes": minutes, **score(job.out, dev)})
    for alpha in job.merges:  # the trained point merged with its SFT start (agrl.train.merge)
        merged = {"setting": f"{job.name}@{alpha:g}", **stamp, "merge_alpha": alpha}
        rows.append(merged | score_merged(job.sft, job.out, alpha, dev))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sft", type=Path)
    parser.add_argument("--data", type=Path)
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument(
        "--method", default="agrl", help="a reproduce arm: grpo, grpo_pr, replay_only, agrl, sft_gold, dpo"
    )
    parser.add_argument("--point", action="append", default=[], metavar="NAME=FLAGS",
                        help="a grid point: its name and config flags (repeatable)")  # fmt: skip
    parser.add_argument("--seeds", type=int, nargs="+", default=[TUNING_SEED],
                        help="train every point at each of these seeds (never a reported seed: 0-4)")  # fmt: skip
    parser.add_argument(
        "--base", help="a point: add the comparison of every other point with it, paired by seed"
    )
    parser.add_argument("--merge", type=float, nargs="+", default=[], metavar="ALPHA",
                        help="also score every point merged with the SFT start at these weights "
                        "((1 - alpha) * SFT + alpha * point; rows NAME@ALPHA)")  # fmt: skip
    parser.add_argument("--work", type=Path, default=Path("runs/tuning"))
    parser.add_argument("--jobs", type=int, default=1,
                        help="grid points trained side by side in this many worker processes, the cores "
                        "shared out (agrl.experiments.parallel); 1: one after another in this process")  # fmt: skip
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--render", action="store_true",
                        help="only write --out's table and plot again (with --data: adding the constant "
                        "answer's row where the file has none)")  # fmt: skip
    parser.add_argument("--choose", action="store_true",
                        help="only apply the selection rule to every grid_*.json beside --out (grids.md/.json)")  # fmt: skip
    args = parser.parse_args()
    if args.choose:
        summarize_grids(args.out.parent)
        return
    if args.render:
        table = json.loads(args.out.read_text())
        if args.data is not None and not any(r["setting"] == "constant" for r in table["rows"]):
            table["rows"].append(
                {"setting": "constant", **constant_scores(read_records(args.data / "dev.jsonl"))}
            )
            write_json(args.out, table)
        render(args.out, table)
        return
    if args.sft is None or args.data is None:
        parser.error("--sft and --data are required to train grid points")
    if args.jobs < 1:
        parser.error(f"--jobs {args.jobs}: expected at least 1")
    if set(args.seeds) & set(range(5)):
        parser.error(f"--seeds {args.seeds}: 0-4 are the reported seeds of agrl reproduce; tune at others")
    dev = read_records(args.data / "dev.jsonl")
    previous = json.loads(args.out.read_text()) if args.out.exists() else {"rows": []}
    # rows of an older file carry the file's commit; a row without a seed ran at the tuning seed
    rows = {
        (r["setting"], row_seed(r)): {"commit": previous.get("commit"), "clean": previous.get("clean"), **r}
        for r in previous["rows"]
    }
    if ("sft", TUNING_SEED) not in rows:
        rows["sft", TUNING_SEED] = {"setting": "sft", **score(args.sft, dev)}
    if ("constant", TUNING_SEED) not in rows:
        rows["constant", TUNING_SEED] = {"setting": "constant", **constant_scores(dev)}
    origin = provenance()
    # the file's method is its first run's; a point trained by another arm carries its own (`method`)
    table = {"method": previous.get("method", args.method), "steps": args.steps, "seed": args.seeds[0], "split": "dev",
             "base": args.base or previous.get("base"), "rows": list(rows.values())}  # fmt: skip
    units, order = [], list(rows)
    named: set[tuple[str, int]] = set()
    mixes: dict[int, dict[str, ComparisonBudget | None]] = {}
    for seed in args.seeds:
        for point in args.point:
            name, _, text = point.partition("=")
            out = args.work / f"{args.method}_{name}_s{seed}"
            if (name, seed) in named:  # two units would train into one folder
                parser.error(f"--point {name}: named twice")
            named.add((name, seed))
            train = (name, seed) not in rows
            merges = tuple(dict.fromkeys(a for a in args.merge if (f"{name}@{a:g}", seed) not in rows))
            if not train and merges and not (out / "config.json").is_file():
                parser.error(f"--merge: {out} holds no model to merge (trained elsewhere or removed)")
            if train or merges:
                order += [(name, seed)] * train + [(f"{name}@{a:g}", seed) for a in merges]
                mixes.setdefault(seed, {})[name] = (
                    split_budget(shlex.split(text), args.steps)[0] if train else None
                )
                units.append(PointJob(name, text, seed, train, merges, args.method, args.sft, args.data,
                                      out, args.work, args.steps, origin["commit"], origin["clean"]))  # fmt: skip
    for seed, by_name in mixes.items():  # the seed's prompts are one file: data/rl_s{seed}.jsonl
        budgets = {name: b for name, b in by_name.items() if b is not None}
        if args.jobs > 1 and len({repr(b) for b in budgets.values()}) > 1:
            parser.error(f"--jobs {args.jobs}: the points at seed {seed} set different prompt mixes "
                         f"({', '.join(budgets)}), which share one prompts file; run them with --jobs 1 "
                         "or in separate sweeps")  # fmt: skip
    position = {key: i for i, key in enumerate(order)}
    # the file keeps the points' declared order whichever worker finishes first
    with worker_pool(args.jobs) as pool:
        for _, done in map_jobs(run_point, units, pool, desc="grid points"):
            for row in done:
                rows[row["setting"], row["seed"]] = row
                print(row, flush=True)
            table["rows"] = [rows[key] for key in sorted(rows, key=lambda k: position.get(k, len(position)))]
            write_json(args.out, table)
            render(args.out, table)
    if table.get("base"):  # points read back from --out: the paired table is written even if none ran
        render(args.out, table)


if __name__ == "__main__":
    main()
