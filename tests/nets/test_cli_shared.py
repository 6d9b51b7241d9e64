"""nets.cli._shared: the argparse value types and the torch thread guard shared by the subcommands."""

from __future__ import annotations

import argparse

import pytest
import torch

from nets.cli._shared import add_threads_argument, fraction, nonneg_float, positive, run_with_threads


def _parse(argv):
    p = argparse.ArgumentParser()
    add_threads_argument(p)
    p.add_argument("--data", default="digits")
    return p.parse_args(argv)


@pytest.mark.parametrize(
    "argv,expected",
    [([], 1), (["--data", "teacher_student"], 1), (["--threads", "2"], 2), (["--data", "cifar10"], None)],
)
def test_thread_guard_sets_and_restores(argv, expected):
    before = torch.get_num_threads()
    seen = []
    assert run_with_threads(_parse(argv), lambda a: seen.append(torch.get_num_threads()) or 7) == 7
    assert seen == [before if expected is None else expected]
    assert torch.get_num_threads() == before


def test_thread_guard_restores_after_an_exception():
    before = torch.get_num_threads()

    def boom(_):
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        run_with_threads(_parse(["--threads", "1"]), boom)
    assert torch.get_num_threads() == before


@pytest.mark.parametrize(
    "parse,text,match",
    [
        (positive(int), "0", "must be > 0, got 0"),
        (positive(int), "1.5", "expected a int, got '1.5'"),
        (positive(float), "inf", "must be > 0, got inf"),
        (nonneg_float, "-1", "must be a finite number >= 0, got -1"),
        (nonneg_float, "x", "expected a float, got 'x'"),
        (fraction, "1.5", r"must lie in \[0, 1\], got 1.5"),
    ],
)
def test_value_types_reject_bad_values(parse, text, match):
    with pytest.raises(argparse.ArgumentTypeError, match=match):
        parse(text)


def test_value_types_accept_good_values():
    assert positive(int)("3") == 3 and positive(float)("0.5") == 0.5
    assert nonneg_float("0") == 0.0 and fraction("1") == 1.0


def test_version_flag(capsys):
    import pytest

    from nets.cli import main
    from nets.io import package_version

    with pytest.raises(SystemExit) as info:
        main(["--version"])
    assert info.value.code == 0
    assert capsys.readouterr().out.strip() == f"prunelimit {package_version()}"
