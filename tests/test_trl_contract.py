"""Contract with the pinned TRL: fails loudly if the internals AGRLTrainer overrides move.

AGRLTrainer relies on (TRL 1.16): `_generate(prompts)` returning an 8-tuple that
`_generate_and_score_completions(inputs)` unpacks; prompts repeated `num_generations` times in a
row; reward functions receiving dataset columns as kwargs; `_compute_loss` accepting (B, T)
advantages and a `tool_mask`; `_save_checkpoint` / `_load_optimizer_and_scheduler` for extra state.

Checked by signature and by calling TRL on a tiny real trainer (one layer, built from scratch),
never by reading TRL's source: a refactor that keeps the behaviour passes, one that changes it fails.
"""

import inspect
from types import SimpleNamespace

import pytest
import torch
import trl
from datasets import Dataset
from transformers import GenerationConfig
from trl import GRPOConfig, GRPOTrainer

from agrl.models.tiny import build_model, build_tokenizer
from agrl.train.agrl_trainer import AGRLTrainer

QUERIES = ["red running shoes", "blue steel kettle"]
G = 2  # num_generations
GENERATE_RESULT = (
    "prompt_ids",
    "completion_ids",
    "tool_mask",
    "completions",
    "logprobs",
    "extra_fields",
    "images",
    "tool_images",
)


@pytest.fixture(scope="module")
def trainer(tmp_path_factory):
    """A GRPOTrainer on a 1-layer model; its reward records the keyword arguments TRL passes."""
    torch.manual_seed(0)
    tokenizer = build_tokenizer(QUERIES + ["<answer> 3 </answer>"])
    model = build_model(tokenizer, hidden=32, layers=1, heads=2, intermediate=64)
    dataset = Dataset.from_dict(
        {"prompt": [[{"role": "user", "content": q}] for q in QUERIES], "label": [3, 1]}
    )
    calls: list[dict] = []

    def reward(completions, **kwargs):
        calls.append(kwargs)
        return [
            float(len(c[0]["content"])) for c in completions
        ]  # differs by completion: non-zero advantages

    args = GRPOConfig(
        output_dir=str(tmp_path_factory.mktemp("grpo")),
        per_device_train_batch_size=2 * G,
        num_generations=G,
        max_completion_length=6,
        report_to="none",
        bf16=False,
        gradient_checkpointing=False,
        disable_tqdm=True,
        seed=0,
    )
    trainer = GRPOTrainer(
        model=model, reward_funcs=reward, args=args, train_dataset=dataset, processing_class=tokenizer
    )
    trainer.reward_calls = calls
    trainer.model.train()
    return trainer


def _inputs(trainer) -> list[dict]:
    rows = [trainer.train_dataset[i] for i in range(len(QUERIES))]
    return [dict(row) for row in rows for _ in range(G)]


def _fake_generate(trainer, seen: list):
    """A stand-in for `_generate` with a known tool_mask: what AGRLTrainer's override returns."""
    completion_ids = [[5, 6, 7], [5, 6], [7], [5, 6, 7, 8]]
    tool_mask = [[1, 0, 1], [1, 1], [0], [1, 1, 1, 1]]

    def generate(prompts):
        seen.append(prompts)
        prompt_ids = [
            trainer.processing_class.apply_chat_template(
                p, add_generation_prompt=True, tokenize=True, return_dict=True
            )["input_ids"]
            for p in prompts
        ]
        texts = trainer.processing_class.batch_decode(completion_ids, skip_special_tokens=True)
        completions = [[{"role": "assistant", "content": t}] for t in texts]
        return prompt_ids, completion_ids, tool_mask, completions, None, {}, None, []

    return generate, tool_mask


def test_pinned_version():
    assert trl.__version__ == "1.16.0", "AGRLTrainer was written against TRL 1.16.0: re-check the hooks below"


def test_generate_signature_and_return_tuple(trainer):
    assert list(inspect.signature(GRPOTrainer._generate).parameters) == ["self", "prompts"]
    prompts = [row["prompt"] for row in _inputs(trainer)]
    result = trainer._generate(prompts)
    assert isinstance(result, tuple) and len(result) == len(GENERATE_RESULT)
    named = dict(zip(GENERATE_RESULT, result))
    assert (
        len(named["prompt_ids"]) == len(named["completion_ids"]) == len(named["completions"]) == len(prompts)
    )
    assert all(isinstance(t, int) for ids in named["prompt_ids"] + named["completion_ids"] for t in ids)
    texts = trainer.processing_class.batch_decode(named["completion_ids"], skip_special_tokens=True)
    assert named["completions"] == [[{"role": "assistant", "content": t}] for t in texts]
    assert named["tool_mask"] is None and named["logprobs"] is None and named["extra_fields"] == {}
    assert named["images"] is None and named["tool_images"] == []


def test_generate_and_score_unpacks_generate_and_uses_tool_mask(trainer, monkeypatch):
    assert list(inspect.signature(GRPOTrainer._generate_and_score_completions).parameters) == [
        "self",
        "inputs",
    ]
    seen: list = []
    generate, tool_mask = _fake_generate(trainer, seen)
    monkeypatch.setattr(trainer, "_generate", generate)  # TRL must call self._generate(prompts)
    inputs = _inputs(trainer)
    trainer.reward_calls.clear()
    output = trainer._generate_and_score_completions(inputs)
    assert seen == [[x["prompt"] for x in inputs]]
    # Reward functions get the dataset columns as keyword arguments, row-aligned with the completions.
    assert [call["label"] for call in trainer.reward_calls] == [[x["label"] for x in inputs]]
    completion_mask = output["completion_mask"]
    assert output["tool_mask"].shape == completion_mask.shape
    assert output["tool_mask"][0, :3].tolist() == tool_mask[0]
    # The loss counts the tokens of completion_mask * tool_mask.
    assert int(output["num_items_in_batch"]) == int((completion_mask * output["tool_mask"]).sum()) == 8
    assert output["advantages"].shape == (len(inputs),) and output["advantages"].abs().sum() > 0


def test_loss_accepts_per_token_advantages_and_tool_mask(trainer, monkeypatch):
    generate, _ = _fake_generate(trainer, [])
    monkeypatch.setattr(trainer, "_generate", generate)
    monkeypatch.setattr(trainer, "current_gradient_accumulation_steps", 1, raising=False)  # set by train()
    output = trainer._generate_and_score_completions(_inputs(trainer))
    width = output["completion_ids"].shape[1]

    def loss(advantages: torch.Tensor) -> float:
        return trainer._compute_loss(trainer.model, {**output, "advantages": advantages}).item()

    per_row = output["advantages"]
    per_token = per_row.unsqueeze(1).expand(-1, width).clone()
    assert loss(per_token) == pytest.approx(loss(per_row))  # (B, T) accepted, and means what (B,) means
    masked_out, kept = per_token.clone(), per_token.clone()
    masked_out[0, 1] += 100.0  # tool_mask[0][1] == 0: this token carries no loss
    kept[0, 0] += 100.0
    assert loss(masked_out) == pytest.approx(loss(per_token))
    assert loss(kept) != pytest.approx(loss(per_token))  # and per-token advantages reach the loss


def test_sampler_repeats_each_prompt_in_consecutive_groups(trainer):
    order = list(trainer._get_train_sampler())
    assert order and len(order) % G == 0
    groups = [order[i : i + G] for i in range(0, len(order), G)]
    assert all(len(set(group)) == 1 for group in groups)
    assert {group[0] for group in groups} == set(range(len(QUERIES)))


def test_checkpoint_hooks_exist_with_expected_signatures():
    assert list(inspect.signature(GRPOTrainer._save_checkpoint).parameters)[:3] == ["self", "model", "trial"]
    assert list(inspect.signature(GRPOTrainer._load_optimizer_and_scheduler).parameters)[:2] == [
        "self",
        "checkpoint",
    ]


def test_agrl_overrides_only_these_methods():
    own = {name for name in vars(AGRLTrainer) if name in dir(GRPOTrainer) and not name.startswith("__")}
    assert own == {
        "_generate",
        "_generate_and_score_completions",
        "_save_checkpoint",
        "_load_optimizer_and_scheduler",
        "compute_loss",
    }


def test_compute_loss_signature_the_rehearsal_term_calls():
    params = list(inspect.signature(GRPOTrainer.compute_loss).parameters)
    assert params == ["self", "model", "inputs", "return_outputs", "num_items_in_batch"]


def test_generation_path_used_by_guided_rollouts(trainer):
    from trl.models import unwrap_model_for_generation

    params = set(inspect.signature(unwrap_model_for_generation).parameters)
    assert {
        "model",
        "accelerator",
        "gather_deepspeed3_params",
        "generation_kwargs",
        "gradient_checkpointing_kwargs",
    } <= params
    GenerationConfig(**trainer.generation_kwargs)  # the sampling settings, as GenerationConfig kwargs
    # AGRLTrainer's guided rollouts, run on a plain GRPOTrainer: every TRL attribute they read must exist.
    tokenizer = trainer.processing_class
    prompt = [{"role": "user", "content": QUERIES[0]}]
    prompt_ids = tokenizer.apply_chat_template(prompt, add_generation_prompt=True, return_dict=True)[
        "input_ids"
    ]
    prefixed = SimpleNamespace(prefix="<answer>", has_prefix=True, hint=None)
    hinted = SimpleNamespace(prefix="", has_prefix=False, hint="the grade is 3")
    (ids, prefix_len, none), (_, _, hint_ids) = AGRLTrainer._guided_rollouts(
        trainer, [(prompt, prompt_ids, prefixed), (prompt, prompt_ids, hinted)]
    )
    assert ids[:prefix_len] == tokenizer("<answer>", add_special_tokens=False)["input_ids"] and none is None
    assert len(ids) <= trainer.max_completion_length and len(hint_ids) > len(prompt_ids)
