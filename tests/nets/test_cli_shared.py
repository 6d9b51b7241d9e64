"""nets.cli._shared: the argparse value types and the torch thread guard shared by the subcommands."""

from __future__ import annotations

import argparse

import pytest
import torch

from nets.cli._shared import add_threads_argument, bounded, fraction, nonneg_float, positive, run_with_threads


def _parse(argv):
    p = argparse.ArgumentParser()
    add_threads_argument(p)
    p.add_argument("--data", default="digits")
    return p.parse_args(argv)


@pytest.mark.parametrize(
    "argv,expected",
    [([], 1), (["--data", "teacher_student"], 1), (["--threads", "2"], 2), (["--data", "cifar10"], "rule")],
)
def test_thread_guard_sets_and_restores(argv, expected, monkeypatch):
    from nets.resources import choose_threads

    for name in ("OMP_NUM_THREADS", "PRUNELIMIT_THREADS", "LOCAL_WORLD_SIZE"):
        monkeypatch.delenv(name, raising=False)
    before = torch.get_num_threads()
    seen = []
    assert run_with_threads(_parse(argv), lambda a: seen.append(torch.get_num_threads()) or 7) == 7
    assert seen == [choose_threads().threads if expected == "rule" else expected]
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
        (bounded(float, 1e-4, 1.0), "1e-9", r"must lie in \[0.0001, 1\], got 1e-9"),
        (bounded(int, 2), "1", "must be >= 2, got 1"),
        (bounded(float, 0.0, open_lo=True), "nan", "must be a finite number, got nan"),
        (bounded(int, 2), "1.5", "expected a int, got '1.5'"),
    ],
)
def test_value_types_reject_bad_values(parse, text, match):
    with pytest.raises(argparse.ArgumentTypeError, match=match):
        parse(text)


def test_value_types_accept_good_values():
    assert positive(int)("3") == 3 and positive(float)("0.5") == 0.5
    assert nonneg_float("0") == 0.0 and fraction("1") == 1.0
    assert bounded(float, 1e-4, 1.0)("1e-4") == 1e-4 and bounded(int, 2)("2") == 2


def test_version_flag(capsys):
    from nets.cli import main
    from nets.io import package_version

    assert main(["--version"]) == 0  # main returns exit codes; it never raises SystemExit
    assert capsys.readouterr().out.strip() == f"prunelimit {package_version()}"
