"""How much ground truth replay put into each tuned AGRL run, beside what the run learnt.

Reads the trainer logs of `scripts/tune_dev.py`'s runs (`WORK/agrl_<point>_s<seed>/trainer_state.json`)
and the rows of its `--out` file, and writes, per point (mean ± SD over seeds): the share of prompt
groups replayed (`replay/triggered_frac`), the guided rollouts a run generated (triggered groups x k:
the gold-bearing sequences it trained on), the guided success, and dev tail solved and head
accuracy. Across every run (point x seed), and within seed (each run less its seed's mean), it gives
the Spearman correlation of guided rollouts with tail solved, head and natural-mix accuracy
(`scipy.stats.spearmanr`): whether more gold per run goes with
more tail learnt, which is the diagnosis behind the gold-exposure levers (the control sees every
prompt's gold reference).

    .venv/bin/python scripts/replay_exposure.py --work runs/agrl_seeds/tuning \\
        --rows results/tuning/current/agrl_seeds.json --points shipped_recheck2 tau1 tau2 k6 \\
        --out results/tuning/current/agrl_exposure
"""

from __future__ import annotations

import argparse
import json
import re
import shlex
import statistics
from pathlib import Path

import yaml
from scipy.stats import spearmanr

from agrl.configs import config_path
from agrl.data.io import atomic_write_text, write_json
from agrl.experiments.runner import RunInfo
from agrl.render import markdown_table
from agrl.report import replay_summary
from agrl.stats import sample_sd


def replay_k(flags: str, default: int) -> int:
    """The guided rollouts per stagnant group a point's flags set (`--replay_k N`), else the config's."""
    tokens = shlex.split(flags)
    for i, token in enumerate(tokens):
        if token == "--replay_k":
            return int(tokens[i + 1])
        if match := re.fullmatch(r"--replay_k=(\d+)", token):
            return int(match.group(1))
    return default


def exposure(work: Path, rows: list[dict], points: list[str]) -> tuple[list[dict], dict]:
    """Per-run rows (point, seed, triggered share, guided rollouts, tail, head) and the correlations."""
    shipped = yaml.safe_load(config_path("agrl_tiny.yaml").read_text())
    groups_per_step = shipped["per_device_train_batch_size"] // shipped["num_generations"]
    scored = {(r["setting"], int(r.get("seed", 100))): r for r in rows}  # no seed: tune_dev's TUNING_SEED
    runs = []
    for (name, seed), row in sorted(scored.items()):
        if name not in points:
            continue
        info = RunInfo.read(name, work / f"agrl_{name}_s{seed}")
        if not info.log_history:
            raise SystemExit(f"{info.path}: no trainer_state.json (the run was not kept)")
        counters = replay_summary({name: {seed: info.log_history}})[name]
        triggered = counters["replay/triggered_frac"]["mean"]
        k = replay_k(row.get("flags", ""), shipped["replay_k"])
        runs.append({
            "point": name, "seed": seed, "steps": info.steps, "k": k, "triggered_frac": triggered,
            "guided_rollouts": triggered * groups_per_step * info.steps * k,
            "guided_success": (counters.get("replay/guided_success") or {}).get("mean"),
            "tail_solved": row["tail_solved"], "head_accuracy": row["head_accuracy"],
            "natural_accuracy": row["natural_accuracy"],
        })  # fmt: skip
    if len(runs) < 3:
        raise SystemExit(f"{len(runs)} runs of {points} found: too few to correlate")

    def within_seed(key: str) -> list[float]:  # the run's value less its seed's mean over points
        means = {
            s: statistics.fmean(r[key] for r in runs if r["seed"] == s) for s in {r["seed"] for r in runs}
        }
        return [r[key] - means[r["seed"]] for r in runs]

    correlations = {}
    for key in ("tail_solved", "head_accuracy", "natural_accuracy"):
        across = spearmanr([r["guided_rollouts"] for r in runs], [r[key] for r in runs])
        within = spearmanr(within_seed("guided_rollouts"), within_seed(key))
        correlations[key] = {"rho": float(across[0]), "p": float(across[1]),
                             "rho_within_seed": float(within[0]), "p_within_seed": float(within[1])}  # fmt: skip
    return runs, correlations


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, required=True, help="tune_dev.py's --work folder")
    parser.add_argument("--rows", type=Path, required=True, help="tune_dev.py's --out file")
    parser.add_argument("--points", nargs="+", required=True)
    parser.add_argument("--out", type=Path, required=True, help="writes OUT.json and OUT.md")
    args = parser.parse_args()
    runs, correlations = exposure(args.work, json.loads(args.rows.read_text())["rows"], args.points)

    def cell(values: list[float], scale: float = 100.0, digits: int = 1) -> str:
        values = [v for v in values if v is not None]
        if not values:
            return "n/a"
        sd = sample_sd(values)
        mean = f"{scale * statistics.fmean(values):.{digits}f}"
        return mean if sd is None else f"{mean} ± {scale * sd:.{digits}f}"

    table = []
    for point in args.points:
        mine = [r for r in runs if r["point"] == point]
        if mine:
            table.append([point, len(mine), mine[0]["k"],
                          *(cell([r[k] for r in mine]) for k in ("triggered_frac", "guided_success")),
                          cell([r["guided_rollouts"] for r in mine], 1.0, 0),
                          *(cell([r[k] for r in mine]) for k in ("tail_solved", "head_accuracy", "natural_accuracy"))])  # fmt: skip
    text = (
        f"# Ground truth replay gave each run (`scripts/replay_exposure.py`, rows of `{args.rows}`)\n\n"
        "Mean ± SD over seeds. triggered = share of prompt groups replayed (no rollout right, or at most "
        "tau of them); guided rollouts = triggered groups × k over the run (gold-bearing sequences "
        "trained on); guided success = share of guided rollouts with the right label.\n\n"
        + markdown_table(
            [
                "point",
                "seeds",
                "k",
                "triggered %",
                "guided success %",
                "guided rollouts",
                "tail solved",
                "head acc",
                "natural-mix acc",
            ],
            table,
        )  # fmt: skip
        + f"\n\nSpearman correlation over the {len(runs)} runs of guided rollouts with: "
        + "; ".join(f"{k} ρ = {c['rho']:+.2f} (p = {c['p']:.3f})" for k, c in correlations.items())
        + ". Within seed (each run less its seed's mean over the points, so that the seed's own "
        "spread, the largest, drops out): "
        + "; ".join(
            f"{k} ρ = {c['rho_within_seed']:+.2f} (p = {c['p_within_seed']:.3f})"
            for k, c in correlations.items()
        )
        + ".\n"
    )
    write_json(args.out.with_suffix(".json"), {"runs": runs, "spearman_vs_guided_rollouts": correlations})
    atomic_write_text(args.out.with_suffix(".md"), text)
    print(text)


if __name__ == "__main__":
    main()
