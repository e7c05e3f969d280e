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
