"""Experiments: arms declared on one runner, with budgets and provenance in one place.

| module | what it owns |
|---|---|
| `runner` | `Arm` (method + shipped config + field values), `train_arm` -> `RunInfo`, the methods registry |
| `budgets` | what each experiment spends (dataclasses, command-line flags through `HfArgumentParser`) |
| `provenance` | commit, clean tree, package versions of a result |
| `shoprules` | `agrl demo` and `agrl reproduce`: warm start, gate, arms over seeds, report |
| `esci` | `agrl esci`: SmolLM2 judges beside the peers on real data |

The heavy modules (`runner`, `shoprules`, `esci`) import torch; import them by name.
"""
