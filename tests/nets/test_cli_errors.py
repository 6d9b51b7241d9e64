"""The error-input table of the command line (issue 11, requirement 2): every option of every subcommand with bad
values (types, ranges, paths, devices, combinations, sizes that cannot fit) exits with code 2 and one line that
names the option and the value — no traceback, nothing computed — and ``--debug`` shows the traceback.

A second test makes the table complete: every option of ``COVERED`` commands must have a row (a new option
without one fails it). ``prunelimit grda`` and ``prunelimit experiment`` belong to other branches: add their
rows to ``TABLE`` and their names to ``COVERED`` there.
"""

from __future__ import annotations

import argparse

import pytest
import torch

from nets.cli import build_parser, main

#: commands whose every option must appear in the table
COVERED = ("limit", "spectrum", "prune", "geometry")
#: the options every torch subcommand shares through nets.cli.limit.add_model_arguments
MODEL_COMMANDS = ("limit", "spectrum", "prune")
TINY = ["--hidden", "8", "--epochs", "1", "--no-progress"]

# (argv, option that must be named, value that must be named); "{tmp}" is the test's tmp_path, "{ckpt}" a
# state_dict of the digits MLP with 8 hidden units, "{garbage}" a file that is not a checkpoint.
SHARED: list[tuple[list[str], str, str]] = [
    (["--model", "foo"], "--model", "foo"),
    (["--model", "vgg16"], "--model", "vgg16"),  # needs 32x32 images, digits are 64 features
    (["--model", "resnet18", "--data", "synthetic-cifar", "--epochs", "1"], "--epochs", "1"),  # warm-up 5 >= 1
    (["--hidden", "0"], "--hidden", "0"),
    (["--hidden", "x"], "--hidden", "'x'"),
    (["--hidden", "8", "--model", "cnn"], "--hidden", "cnn"),
    (["--hidden", "1000000000"], "--hidden", "1000000000"),  # 6.4e10 parameters: refused before allocating
    (["--data", "imagenet"], "--data", "imagenet"),
    (["--data", "cifar10"], "--data", "cifar10"),  # without --data-root
    (["--data-root", "/nonexistent/c10", "--data", "cifar10"], "--data-root", "/nonexistent/c10"),
    (["--data-root", "{tmp}"], "--data-root", "digits"),  # the built-in dataset takes none
    (["--checkpoint", "/nonexistent/ckpt.pt"], "--checkpoint", "/nonexistent/ckpt.pt"),
    (["--checkpoint", "{tmp}"], "--checkpoint", "{tmp}"),  # a directory
    (["--checkpoint", "{garbage}"], "--checkpoint", "{garbage}"),  # not a checkpoint
    (["--checkpoint", "{ckpt}", "--hidden", "9"], "--checkpoint", "{ckpt}"),  # another architecture
    (["--epochs", "0"], "--epochs", "0"),
    (["--epochs", "1.5"], "--epochs", "'1.5'"),
    (["--lr", "0"], "--lr", "0"),
    (["--lr", "nan"], "--lr", "nan"),
    (["--lr", "1e6"], "--lr", "1e+06"),  # diverges in the first epoch: the epoch is named
    (["--l1", "-1"], "--l1", "-1"),
    (["--l1", "inf"], "--l1", "inf"),
    (["--warmup-epochs", "-1"], "--warmup-epochs", "-1"),
    (["--warmup-epochs", "3", "--model", "resnet18", "--data", "synthetic-cifar", "--epochs", "3"],
     "--warmup-epochs", "3"),
    (["--device", "foo"], "--device", "foo"),
    (["--device", "cuda:7"], "--device", "cuda:7"),
    (["--device", "cpu:x"], "--device", "cpu:x"),
    (["--seed", "-5"], "--seed", "-5"),
    (["--seed", "x"], "--seed", "'x'"),
    (["--threads", "0"], "--threads", "0"),
    (["--threads", "two"], "--threads", "'two'"),
    (["--out", "{file}"], "--out", "{file}"),  # an existing file
    (["--out", "{file}/sub"], "--out", "{file}/sub"),  # under a file
    (["--out", "/proc/prunelimit-out"], "--out", "/proc/prunelimit-out"),  # cannot be created
    (["--overwrite=1"], "--overwrite", "'1'"),
    (["--no-progress=1"], "--no-progress", "'1'"),
]
if torch.cuda.is_available():  # the CPU-build message is the row below; with CUDA, cuda:7 covers the index
    SHARED.append((["--device", "cuda:99"], "--device", "cuda:99"))
else:
    SHARED.append((["--device", "cuda"], "--device", "cuda"))

#: the SLQ options of limit and spectrum
SPECTRUM: list[tuple[list[str], str, str]] = [
    (["--slq-steps", "0"], "--slq-steps", "0"),
    (["--slq-steps", "x"], "--slq-steps", "'x'"),
    (["--slq-probes", "0"], "--slq-probes", "0"),
    (["--slq-probes", "1000000000"], "--slq-probes", "--slq-steps"),  # the Lanczos vectors cannot fit
    (["--deflate", "0"], "--deflate", "0"),
    (["--deflate", "592"], "--deflate", "592"),  # N = 64*8 + 8*10 = 592 prunable weights
    (["--hessian-batch-size", "0"], "--hessian-batch-size", "0"),
    (["--hessian-samples", "0"], "--hessian-samples", "0"),
    (["--hessian-samples", "1e9"], "--hessian-samples", "'1e9'"),
]

TABLE: dict[str, list[tuple[list[str], str, str]]] = {
    "limit": [
        (["--eps", "0"], "--eps", "0"),
        (["--eps", "-1"], "--eps", "-1"),
        (["--eps", "nan"], "--eps", "nan"),
        (["--method", "exact"], "--method", "'exact'"),
        (["--magnitude-method", "obs"], "--magnitude-method", "'obs'"),
        (["--accuracy-tolerance", "2"], "--accuracy-tolerance", "2"),
        (["--accuracy-tolerance", "-0.1"], "--accuracy-tolerance", "-0.1"),
        (["--sweep-step", "0"], "--sweep-step", "0"),
        (["--sweep-step", "1e-9"], "--sweep-step", "1e-9"),  # more than 10 001 levels
        (["--sweep-step", "2"], "--sweep-step", "2"),
        (["--compensation-steps", "-1"], "--compensation-steps", "-1"),
        (["--compensation-steps", "1.5"], "--compensation-steps", "'1.5'"),
        (["--no-compensated=yes"], "--no-compensated", "'yes'"),
        (["--objective-l1", "-1"], "--objective-l1", "-1"),
        (["--objective-l1", "inf"], "--objective-l1", "inf"),
        (["--exact", "maybe"], "--exact", "'maybe'"),
        (["--exact", "on", "--hidden", "4000"], "--exact on", "296000"),  # a 2.6 TB dense Hessian
    ],
    "spectrum": [],
    "prune": [
        (["--kept-fraction", "1.5"], "--kept-fraction", "1.5"),
        (["--kept-fraction", "x"], "--kept-fraction", "'x'"),
        (["--compensate=1"], "--compensate", "'1'"),
        (["--compensation-steps", "-2"], "--compensation-steps", "-2"),
        (["--objective-l1", "-1"], "--objective-l1", "-1"),
    ],
    "geometry": [
        (["--samples", "1"], "--samples", "1"),
        (["--samples", "1e12"], "--samples", "'1e12'"),
        (["--samples", "1000000000000"], "--samples", "1000000000000"),  # 7.3 TiB of per-sample values
        (["--cvxpy-samples", "1"], "--cvxpy-samples", "1"),
        (["--cvxpy-samples", "-1"], "--cvxpy-samples", "-1"),
        (["--seed", "-1"], "--seed", "-1"),
        (["--json", "/nonexistent-dir/x.json"], "--json", "/nonexistent-dir/x.json"),
        (["--json", "{tmp}"], "--json", "{tmp}"),  # a directory
        (["--quick=1"], "--quick", "'1'"),
    ],
}
for _cmd in MODEL_COMMANDS:
    TABLE[_cmd] = [*SHARED, *(SPECTRUM if _cmd != "prune" else []), *TABLE[_cmd]]

#: rows whose value depends on the command's own defaults (prune needs --kept-fraction to get past argparse)
REQUIRED = {"prune": ["--kept-fraction", "0.5"]}


def _options(command: str) -> set[str]:
    parser = build_parser(command)
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction)).choices[command]
    return {o for a in sub._actions for o in a.option_strings
            if o.startswith("--") and o not in ("--help", "--debug")}


@pytest.fixture(scope="module")
def paths(tmp_path_factory):
    d = tmp_path_factory.mktemp("errors")
    f = d / "a-file"
    f.write_text("not a directory")
    garbage = d / "garbage.pt"
    garbage.write_bytes(b"\x00not a checkpoint")
    from nets.models import build_model

    ckpt = d / "mlp8.pt"
    torch.save(build_model("mlp", 10, (64,), hidden=(8,)).state_dict(), ckpt)
    return {"tmp": str(d), "file": str(f), "garbage": str(garbage), "ckpt": str(ckpt)}


def _fill(items, paths):
    return [x.format(**paths) for x in items]


@pytest.mark.parametrize("command", COVERED)
def test_the_table_covers_every_option(command):
    rows = TABLE[command]
    covered = {opt.split()[0] for argv, opt, _ in rows}
    covered |= {a.split("=")[0] for argv, _, _ in rows for a in argv[:1] if a.startswith("--")}
    missing = sorted(_options(command) - covered)
    assert not missing, f"prunelimit {command}: no error-table row for {missing}"


CASES = [(cmd, argv, opt, val) for cmd in COVERED for argv, opt, val in TABLE[cmd]]


@pytest.mark.parametrize("command, argv, option, value", CASES,
                         ids=[f"{c}:{' '.join(a)}" for c, a, _, _ in CASES])
def test_error_input_exits_2_with_one_line(command, argv, option, value, paths, capsys, tmp_path):
    argv = _fill(argv, paths)
    value = value.format(**paths)
    out = ["--out", str(tmp_path / "out")] if command in MODEL_COMMANDS and "--out" not in argv else []
    extra = TINY if command in MODEL_COMMANDS else []
    if command in MODEL_COMMANDS:  # TINY's own values must not mask the row's
        given = {a for a in argv if a.startswith("--")}
        extra = [x for i, x in enumerate(TINY) if not (x in given or (i > 0 and TINY[i - 1] in given))]
        if "--checkpoint" in argv:
            extra = [x for x in extra if x not in ("--epochs", "1")]
        if "--model" in argv and argv[argv.index("--model") + 1] != "mlp" and "--hidden" not in argv:
            extra = [x for x in extra if x not in ("--hidden", "8")]
    required = [x for x in REQUIRED.get(command, []) if x not in argv and not any(a.startswith(x) for a in argv)]
    threads = torch.get_num_threads()
    rc = main([command, *argv, *out, *extra, *required])
    err = capsys.readouterr().err
    assert torch.get_num_threads() == threads
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert rc == 2, err
    assert len(lines) == 1, err
    assert "Traceback" not in err
    line = lines[0]
    assert line.startswith(f"prunelimit {command}: error: "), line
    assert option in line and value in line, line
    # nothing was computed: no training checkpoint, no result
    outdir = tmp_path / "out"
    assert not (outdir / "train" / "checkpoint.pt").exists() or "--lr" in argv
    assert not any(outdir.glob("*.json")) or all(p.name == "run.json" for p in outdir.glob("*.json"))


def test_debug_shows_the_traceback(tmp_path, capsys):
    rc = main(["limit", "--debug", "--model", "foo", "--out", str(tmp_path), *TINY])
    err = capsys.readouterr().err
    assert rc == 2 and "Traceback (most recent call last)" in err
    assert err.strip().splitlines()[-1].startswith("prunelimit limit: error: --model foo")
    rc = main(["--debug", "limit", "--device", "foo", "--out", str(tmp_path), *TINY])  # before the command too
    assert rc == 2 and "Traceback" in capsys.readouterr().err


def test_an_unexpected_exception_is_one_line_with_exit_1(tmp_path, capsys, monkeypatch):
    import nets.limit

    def boom(*a, **k):
        raise RuntimeError("something internal\nsecond line")

    monkeypatch.setattr(nets.limit, "estimate_pruning_limit", boom)
    rc = main(["limit", "--out", str(tmp_path), *TINY])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 1
    assert err[-1] == ("prunelimit limit: error: unexpected RuntimeError: something internal (rerun with --debug for "
                       "the traceback)")


def test_help_and_no_command(capsys):
    assert main(["limit", "--help"]) == 0
    assert "--warmup-epochs" in capsys.readouterr().out
    assert main([]) == 2
