#!/usr/bin/env bash
# Issue 15 item 3: the same grid for every arm on dev (tuning seed 100, one SFT checkpoint: warm start
# 0 of `agrl reproduce`), then the selection rule (`tune_dev.py --choose`). Points already in a grid
# file are kept, so a killed sweep resumes by running this again.
#   scripts/equal_grids.sh [SFT_DIR] [DATA_DIR]
set -euo pipefail
SFT=${1:-results/reproduce/runs/models/sft}
DATA=${2:-runs/reproduce_data}
OUT=results/tuning/current
PY=.venv/bin/python
if [ ! -f "$DATA/dev.jsonl" ]; then  # the reproduce's warm start 0 data: ShopRules seed 0, default scale
  $PY -c "from agrl.data.shoprules import generate; generate('$DATA', seed=0, scale='default', progress=False)"
fi
rl_points=()
for b in 0.0 0.1; do for lr in 5e-5 1e-4 2e-4; do
  rl_points+=(--point "lr${lr}_b${b}=--learning_rate ${lr} --beta ${b}")
done; done
for m in grpo_pr agrl replay_only grpo; do
  $PY scripts/tune_dev.py --sft "$SFT" --data "$DATA" --method $m --out $OUT/grid_$m.json "${rl_points[@]}"
done
# The control gets the RL arms' compute at 700 steps (control_step_factor 3.5 x 200); 200 steps is
# the prompt-matched reference, not eligible (tune_dev.ELIGIBLE).
gold_points=()
for steps in 700 200; do for lr in 5e-5 1e-4 2e-4; do
  gold_points+=(--point "lr${lr}_steps${steps}=--learning_rate ${lr} --max_steps ${steps}")
done; done
$PY scripts/tune_dev.py --sft "$SFT" --data "$DATA" --method sft_gold --out $OUT/grid_sft_gold.json "${gold_points[@]}"
dpo_points=()
for lr in 1e-5 3e-5 1e-4; do
  dpo_points+=(--point "lr${lr}_sigmoid=--learning_rate ${lr} --loss_type sigmoid --loss_weights 1.0")
  dpo_points+=(--point "lr${lr}_sigmoid+sft=--learning_rate ${lr} --loss_type sigmoid sft --loss_weights 1.0 1.0")
done
$PY scripts/tune_dev.py --sft "$SFT" --data "$DATA" --method dpo --out $OUT/grid_dpo.json "${dpo_points[@]}"
$PY scripts/tune_dev.py --choose --out $OUT/grid_agrl.json
