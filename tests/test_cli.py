"""The command line: every subcommand's help renders (argparse expands % in help texts)."""

from __future__ import annotations

import argparse

import pytest

from agrl.cli import build_parser


def _parsers(parser: argparse.ArgumentParser):
    yield parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for child in action.choices.values():
                yield from _parsers(child)


def test_every_subcommand_help_renders():
    parsers = list(_parsers(build_parser()))
    assert len(parsers) > 10
    for parser in parsers:
        text = parser.format_help()
        assert text.startswith("usage:"), parser.prog


def test_reproduce_takes_the_rehearsal_and_prompt_mix_flags():
    args, _ = build_parser().parse_known_args(["reproduce", "--ptx_coef", "1.0", "--rl_tail_share", "0.3"])
    assert args.ptx_coef == 1.0 and args.rl_tail_share == 0.3
    with pytest.raises(SystemExit):
        build_parser().parse_args(["reproduce", "--ptx_coef", "x"])


def test_train_fields_lists_trl_and_agrl_fields_with_defaults(capsys):
    from agrl.cli import main

    assert main(["train", "agrl", "--fields"]) == 0
    text = capsys.readouterr().out
    for field in (
        "--learning_rate",
        "--replay_k",
        "--ptx_coef",
        "--reward_component_weights",
        "--save_steps",
    ):
        assert field in text, field
    assert "(default: 0.0)" in text


def test_a_missing_config_says_no_such_file(capsys, tmp_path):
    from agrl.cli import main

    assert main(["train", "agrl", "--config", "nope.yaml"]) == 2
    assert "nope.yaml: no such file" in capsys.readouterr().err
    assert main(["train", "sft", "--config", str(tmp_path / "x.yaml")]) == 2
    assert "x.yaml: no such file" in capsys.readouterr().err
    assert not any(tmp_path.iterdir())  # nothing created


def test_a_failed_run_leaves_no_output_folder_unless_it_holds_a_checkpoint(tmp_path):
    from agrl.train.common import removed_on_failure

    fresh = tmp_path / "fresh"
    with pytest.raises(RuntimeError), removed_on_failure(fresh):
        (fresh / "runs").mkdir(parents=True)  # what a trainer writes before it fails (logs)
        raise RuntimeError("training failed")
    assert not fresh.exists()
    resumable = tmp_path / "resumable"
    with pytest.raises(KeyboardInterrupt), removed_on_failure(resumable):
        (resumable / "checkpoint-50").mkdir(parents=True)
        raise KeyboardInterrupt  # killed after a checkpoint: kept, for --resume_from_checkpoint true
    assert (resumable / "checkpoint-50").is_dir()
    existing = tmp_path / "existing"
    existing.mkdir()
    with pytest.raises(ValueError), removed_on_failure(existing):
        raise ValueError("bad field")
    assert existing.is_dir()  # a folder the user had is never removed
    with removed_on_failure(tmp_path / "ok"):
        (tmp_path / "ok").mkdir()
    assert (tmp_path / "ok").is_dir()
