"""Contract with the pinned TRL: fails loudly if the internals AGRLTrainer overrides move.

AGRLTrainer relies on (TRL 1.16): `_generate(prompts)` returning an 8-tuple that
`_generate_and_score_completions(inputs)` unpacks; prompts repeated `num_generations` times in a
row; reward functions receiving dataset columns as kwargs; `_compute_loss` accepting (B, T)
advantages and a `tool_mask`; `_save_checkpoint` / `_load_optimizer_and_scheduler` for extra state.
"""

import inspect

import trl
from trl import GRPOTrainer
from trl.trainer import grpo_trainer

from agrl.train.agrl_trainer import AGRLTrainer


def test_pinned_version():
    assert trl.__version__ == "1.16.0", "AGRLTrainer was written against TRL 1.16.0: re-check the hooks below"


def test_generate_signature_and_return_tuple():
    assert list(inspect.signature(GRPOTrainer._generate).parameters) == ["self", "prompts"]
    source = inspect.getsource(GRPOTrainer._generate)
    assert "return prompt_ids, completion_ids, tool_mask, completions, logprobs, extra_fields, images, tool_images" in source


def test_generate_and_score_unpacks_generate_and_uses_tool_mask():
    assert list(inspect.signature(GRPOTrainer._generate_and_score_completions).parameters) == ["self", "inputs"]
    source = inspect.getsource(GRPOTrainer._generate_and_score_completions)
    assert "= self._generate(prompts)" in source
    assert 'prompts = [x["prompt"] for x in inputs]' in source
    assert "loss_mask = completion_mask if tool_mask is None else completion_mask * tool_mask" in source
    assert '"advantages": advantages' in source


def test_loss_accepts_per_token_advantages_and_tool_mask():
    source = inspect.getsource(GRPOTrainer._compute_loss)
    assert "if advantages.dim() == 1:" in source
    assert 'completion_mask * inputs["tool_mask"]' in source


def test_sampler_repeats_each_prompt_in_consecutive_groups():
    source = inspect.getsource(grpo_trainer.GRPOTrainer._get_train_sampler)
    assert "mini_repeat_count=self.num_generations" in source


def test_checkpoint_hooks_exist_with_expected_signatures():
    assert list(inspect.signature(GRPOTrainer._save_checkpoint).parameters)[:3] == ["self", "model", "trial"]
    assert list(inspect.signature(GRPOTrainer._load_optimizer_and_scheduler).parameters)[:2] == ["self", "checkpoint"]


def test_agrl_overrides_only_these_methods():
    own = {name for name in vars(AGRLTrainer) if name in dir(GRPOTrainer) and not name.startswith("__")}
    assert own == {"_generate", "_generate_and_score_completions", "_save_checkpoint", "_load_optimizer_and_scheduler"}


def test_generation_path_used_by_guided_rollouts():
    from trl.models import unwrap_model_for_generation

    params = set(inspect.signature(unwrap_model_for_generation).parameters)
    assert {"model", "accelerator", "gather_deepspeed3_params", "generation_kwargs",
            "gradient_checkpointing_kwargs"} <= params
    init = inspect.getsource(GRPOTrainer.__init__)
    assert "self.generation_kwargs = generation_kwargs" in init and "self._dist = " in init
