"""Off-policy weightings: the registry and each weighting's numbers."""

from types import SimpleNamespace

import pytest
import torch

from agrl.offpolicy import WEIGHTINGS, clipped_ratio, get_weighting, policy_shaping, register_weighting
from agrl.train.config import AGRLConfig, load_config

ARGS = SimpleNamespace(shaping_gamma=0.1, offpolicy_clip=2.0)
LOGP = torch.log(torch.tensor([[0.1, 0.5, 0.9, 0.01]]))
BEHAVIOUR = torch.log(torch.tensor([[1.0, 0.1, 0.9, 0.5]]))
OFF = torch.tensor([[True, True, False, True]])


def test_shaping_peaks_at_gamma_and_leaves_on_policy_tokens_alone():
    w = policy_shaping(LOGP, BEHAVIOUR, OFF, ARGS)
    assert w[0, 0] == pytest.approx(1.0)  # pi == gamma: the largest weight
    assert 0 < w[0, 1] < 1 and 0 < w[0, 3] < 1
    assert w[0, 2] == 1.0  # on-policy


def test_clipped_ratio():
    w = clipped_ratio(LOGP, BEHAVIOUR, OFF, ARGS)
    assert w[0, 0] == pytest.approx(0.1) and w[0, 1] == pytest.approx(2.0)  # 0.5 / 0.1 = 5, clipped at 2
    assert w[0, 2] == 1.0 and w[0, 3] == pytest.approx(0.02)


def test_registry_lists_known_names_and_accepts_new_ones(monkeypatch):
    monkeypatch.setattr("agrl.offpolicy.WEIGHTINGS", WEIGHTINGS.copy())
    monkeypatch.setattr("agrl.train.config.WEIGHTINGS", __import__("agrl.offpolicy").offpolicy.WEIGHTINGS)
    assert get_weighting("none") is None
    with pytest.raises(ValueError, match="known: clip, none, shaping"):
        get_weighting("bogus")

    @register_weighting("half")
    def half(logp, behaviour, offpolicy, args):
        return torch.where(offpolicy, torch.full_like(logp, 0.5), torch.ones_like(logp))

    assert get_weighting("half")(LOGP, BEHAVIOUR, OFF, ARGS).tolist() == [[0.5, 0.5, 1.0, 0.5]]
    assert (
        load_config(
            AGRLConfig, None, ["--output_dir", "o", "--offpolicy_weighting", "half"]
        ).offpolicy_weighting
        == "half"
    )
    with pytest.raises(ValueError, match="known: clip, half, none, shaping"):
        load_config(AGRLConfig, None, ["--output_dir", "o", "--offpolicy_weighting", "bogus"])
