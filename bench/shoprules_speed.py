"""ShopRules generation and record-reading speed at the default scale (>= 50k records).

Peers measured in the same run, on the same records:
- generation against plain serialisation (`json.dumps` of every record, written to one file): what
  sampling, labelling by the rulebook and rendering the reasoning cost on top of writing the text;
- `agrl.data.io.read_records` (parse + validate + duplicate-id check) against plain `json.loads`
  of every line: what validation costs on top of parsing.

The default scale used to be timed by a test (`< 120 s`); the budget is reported here instead.

    .venv/bin/python bench/shoprules_speed.py [--scale default] [--out FILE]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from pathlib import Path

from agrl.data.io import read_records
from agrl.data.shoprules import SCALES, SPLITS, generate

ROOT = Path(__file__).resolve().parents[1]
BUDGET_S = 120.0  # the old test's bound for generating the default scale


def _timed(fn):
    started = time.perf_counter()
    value = fn()
    return value, time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--scale", default="default", choices=sorted(SCALES))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, help="default: results/bench/shoprules_speed[_<scale>].json")
    args = parser.parse_args()
    if args.out is None:
        suffix = "" if args.scale == "default" else f"_{args.scale}"
        args.out = ROOT / "results" / "bench" / f"shoprules_speed{suffix}.json"
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "shoprules"
        stats, gen_s = _timed(lambda: generate(folder, seed=args.seed, scale=args.scale, progress=False))
        files = [folder / f"{split}.jsonl" for split in SPLITS]
        n = sum(stats["splits"][s]["n"] for s in SPLITS)
        lines = sum(1 for f in files for _ in f.open(encoding="utf-8"))
        if lines != n:
            raise SystemExit(f"generate wrote {lines} lines for {n} records")

        plain, loads_s = _timed(
            lambda: [json.loads(line) for f in files for line in f.read_text("utf-8").splitlines()]
        )
        validated, read_s = _timed(lambda: [r for f in files for r in read_records(f)])
        if len(plain) != n or len(validated) != n:
            raise SystemExit(f"read back {len(plain)} / {len(validated)} records for {n}")

        def serialise() -> None:
            text = "".join(json.dumps(r, ensure_ascii=False, sort_keys=True) + "\n" for r in plain)
            (Path(tmp) / "copy.jsonl").write_text(text, encoding="utf-8")

        _, dumps_s = _timed(serialise)

    figures = {
        "scale": args.scale,
        "seed": args.seed,
        "records": n,
        "generate": {"seconds": round(gen_s, 3), "records_per_s": round(n / gen_s, 1)},
        "json_dumps_write": {"seconds": round(dumps_s, 3), "records_per_s": round(n / dumps_s, 1)},
        "read_records": {"seconds": round(read_s, 3), "records_per_s": round(n / read_s, 1)},
        "json_loads": {"seconds": round(loads_s, 3), "records_per_s": round(n / loads_s, 1)},
        "ratio_generate_vs_json_dumps": round(gen_s / dumps_s, 2),
        "ratio_read_records_vs_json_loads": round(read_s / loads_s, 2),
        "budget_s": BUDGET_S,
        "within_budget": gen_s < BUDGET_S,
        "machine": {"python": platform.python_version(), "arch": platform.machine(), "cpus": os.cpu_count()},
    }
    for name in ("generate", "json_dumps_write", "read_records", "json_loads"):
        f = figures[name]
        print(f"{name:>16}: {n} records in {f['seconds']:.2f} s -> {f['records_per_s']:,.0f} records/s")
    print(
        f"ratio generate / json.dumps+write time: {figures['ratio_generate_vs_json_dumps']:.2f}; "
        f"read_records / json.loads time: {figures['ratio_read_records_vs_json_loads']:.2f}"
    )
    print(f"generation {'within' if figures['within_budget'] else 'OVER'} the {BUDGET_S:.0f} s budget")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(figures, indent=2) + "\n", encoding="utf-8")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
