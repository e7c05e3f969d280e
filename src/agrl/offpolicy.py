"""Off-policy weightings of guided tokens: a registry of pure functions on per-token log-probs.

A guided rollout was not sampled from the policy on the unguided prompt: its forced-prefix tokens
had probability 1 under the guidance, and in hint mode every token was sampled on the hinted
prompt. A weighting turns the policy's log-probs of those tokens (and their behaviour log-probs)
into per-token multipliers of the advantage; tokens that are on-policy keep weight 1.

Adding one is one decorated function here::

    @register_weighting("my_weighting")
    def my_weighting(logp, behaviour, offpolicy, args):
        return torch.where(offpolicy, ..., torch.ones_like(logp))
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from agrl.registry import Registry

Weighting = Callable[[torch.Tensor, torch.Tensor, torch.Tensor, object], torch.Tensor]
# none: every guided token keeps weight 1
WEIGHTINGS = Registry("off-policy weighting", {"none": None})


def register_weighting(name: str) -> Callable[[Weighting], Weighting]:
    return WEIGHTINGS.register(name)


def get_weighting(name: str) -> Weighting | None:
    return WEIGHTINGS.lookup(name)


@register_weighting("shaping")
def policy_shaping(
    logp: torch.Tensor, behaviour: torch.Tensor, offpolicy: torch.Tensor, args
) -> torch.Tensor:
    """LUFFY-style policy shaping: d/dθ [π/(π+γ)] = γπ/(π+γ)² ∇log π, scaled so the largest weight is 1."""
    pi = logp.exp()
    gamma = args.shaping_gamma
    return torch.where(offpolicy, 4 * gamma * pi / (pi + gamma) ** 2, torch.ones_like(pi))


@register_weighting("clip")
def clipped_ratio(logp: torch.Tensor, behaviour: torch.Tensor, offpolicy: torch.Tensor, args) -> torch.Tensor:
    """The importance ratio π / behaviour, clipped above at `offpolicy_clip`."""
    ratio = (logp - behaviour).exp().clamp(max=args.offpolicy_clip)
    return torch.where(offpolicy, ratio, torch.ones_like(logp))
