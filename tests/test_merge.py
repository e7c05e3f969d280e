"""Weight interpolation (`agrl merge`): the pure core by property, the command on real tiny models."""

from __future__ import annotations

import json

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from safetensors.torch import load_file

from agrl.cli import main
from agrl.contract import PromptContract, load_contract, save_contract
from agrl.models import load_model
from agrl.models.tiny import build_model, build_tokenizer
from agrl.train.merge import MERGE_FILE, interpolate

finite = st.floats(-1e3, 1e3, allow_nan=False, allow_infinity=False, width=32)


@settings(max_examples=60, deadline=None)
@given(
    base=st.lists(finite, min_size=1, max_size=12),
    shift=st.lists(finite, min_size=12, max_size=12),
    alpha=st.floats(0.0, 1.0),
)
def test_interpolation_is_the_straight_line_between_the_models(base, shift, alpha):
    b = torch.tensor(base)
    t = b + torch.tensor(shift[: len(base)])
    counts = torch.arange(3)  # an integer buffer, equal in both
    merged = interpolate({"w": b, "n": counts}, {"w": t, "n": counts}, alpha)
    assert torch.allclose(merged["w"], (1 - alpha) * b + alpha * t, rtol=1e-5, atol=1e-3)
    assert torch.equal(interpolate({"w": b}, {"w": t}, 0.0)["w"], b)
    assert torch.equal(interpolate({"w": b}, {"w": t}, 1.0)["w"], t)
    assert merged["w"].dtype == t.dtype and torch.equal(merged["n"], counts)


@pytest.mark.parametrize(
    ("base", "tuned", "alpha", "message"),
    [
        ({"w": torch.zeros(2)}, {"w": torch.ones(2)}, 1.5, "alpha 1.5"),
        ({"w": torch.zeros(2)}, {"w": torch.ones(2)}, float("nan"), "alpha nan"),
        ({"w": torch.zeros(2)}, {"v": torch.ones(2)}, 0.5, "differ in name"),
        ({"w": torch.zeros(2)}, {"w": torch.ones(3)}, 0.5, "weight w: shape (2,)"),
        (
            {"n": torch.zeros(2, dtype=torch.long)},
            {"n": torch.ones(2, dtype=torch.long)},
            0.5,
            "non-floating",
        ),
    ],
)
def test_interpolation_refuses_what_it_cannot_mean(base, tuned, alpha, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        interpolate(base, tuned, alpha)


@pytest.fixture(scope="module")
def two_models(tmp_path_factory, shoprules):
    """Two tiny models of one architecture and tokenizer (different initialisations), saved as agrl does."""
    root = tmp_path_factory.mktemp("merge")
    tokenizer = build_tokenizer([r["reference"] for r in shoprules["sft"][:50]])
    folders = []
    for seed in (0, 1):
        folder = root / f"m{seed}"
        build_model(tokenizer, hidden=32, layers=1, heads=2, intermediate=64, seed=seed).save_pretrained(
            folder
        )
        tokenizer.save_pretrained(folder)
        save_contract(folder, PromptContract(reasoning_format="label_first"))
        folders.append(folder)
    return folders


def test_merge_writes_the_interpolated_model_with_its_contract(two_models, tmp_path, capsys, shoprules):
    base, tuned = two_models
    out = tmp_path / "merged"
    assert (
        main(["merge", "--base", str(base), "--model", str(tuned), "--alpha", "0.25", "--out", str(out)]) == 0
    )
    assert json.loads(capsys.readouterr().out) == {"output_dir": str(out), "alpha": 0.25}
    b, t, m = (load_file(f / "model.safetensors") for f in (base, tuned, out))
    assert set(m) == set(t)
    for name in m:
        assert torch.allclose(m[name], 0.75 * b[name] + 0.25 * t[name], atol=1e-6), name
    assert load_contract(out).reasoning_format == "label_first"
    assert json.loads((out / MERGE_FILE).read_text()) == {
        "base": str(base),
        "tuned": str(tuned),
        "alpha": 0.25,
    }
    model, tokenizer = load_model(str(out))  # a model folder like any other
    ids = tokenizer(shoprules["dev"][0]["query"], return_tensors="pt")["input_ids"]
    assert model(ids).logits.shape[-1] == len(tokenizer)
    assert not (tmp_path / "merged.partial").exists()


def test_merge_errors_are_one_line_and_leave_nothing(two_models, tmp_path, capsys):
    base, tuned = two_models
    out = tmp_path / "merged"
    argv = ["merge", "--base", str(base), "--model", str(tuned), "--out", str(out)]
    assert main([*argv, "--alpha", "2"]) == 2
    assert "alpha 2.0: expected a weight in [0, 1]" in capsys.readouterr().err
    assert main([*argv[:4], str(tmp_path / "nope"), *argv[5:], "--alpha", "0.5"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("agrl: error: --model") and "nope: not a model folder" in err
    save_contract(other := tmp_path / "other", PromptContract(reasoning_format="think_first"))
    for name in ("config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json"):
        (other / name).write_bytes((tuned / name).read_bytes())
    assert main([*argv[:4], str(other), *argv[5:], "--alpha", "0.5"]) == 2
    assert "prompt contracts differ in `reasoning_format`" in capsys.readouterr().err
    assert not out.exists() and not (tmp_path / "merged.partial").exists()
    out.mkdir()
    (out / "keep.txt").write_text("x")
    assert main([*argv, "--alpha", "0.5"]) == 2
    assert "exists and is not empty" in capsys.readouterr().err
    assert sorted(p.name for p in out.iterdir()) == ["keep.txt"]
