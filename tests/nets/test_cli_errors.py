"""The error-input table of the command line (issue 11, requirement 2): every option of every subcommand with bad
values (types, ranges, paths, devices, combinations, sizes that cannot fit) exits with code 2 and one line that
names the option and the value — no traceback, nothing computed — and ``--debug`` shows the traceback.

A second test makes the table complete: every option of ``COVERED`` commands (``grda``'s studies count as commands
of their own) must have a row (a new option without one fails it).
"""

from __future__ import annotations

import argparse

import pytest
import torch

from nets.cli import build_parser, main

#: commands whose every option must appear in the table
COVERED = ("limit", "spectrum", "prune", "geometry", "grda", "grda calibrate", "grda pretrained", "grda stopping",
           "grda masks", "grda frontier", "grda valley", "experiment")
#: the options every torch subcommand shares through nets.cli.limit.add_model_arguments
MODEL_COMMANDS = ("limit", "spectrum", "prune")
TINY = ["--hidden", "8", "--epochs", "1", "--no-progress"]
#: tiny settings added to every row (those of the row's own options dropped), so that a row the command wrongly
#: accepted would still end in seconds
EXTRA: dict[str, list[str]] = {
    **{c: TINY for c in MODEL_COMMANDS},
    "grda": ["--hidden", "4", "--epochs", "1", "--no-progress"],
    "grda calibrate": ["--hidden", "4", "--epochs", "1", "--targets", "0.5", "--schedules", "constant", "--data",
                       "digits", "--no-rerun", "--no-progress"],
    "grda pretrained": ["--hidden", "4", "--epochs", "1", "--targets", "0.5", "--finetune-epochs", "1",
                        "--no-progress"],
    "grda stopping": ["--hidden", "4", "--epochs", "3", "--window", "2", "--seeds", "0", "--no-progress"],
    "grda masks": ["--hidden", "4", "--epochs", "1", "--seeds", "0", "--schedules", "constant", "--no-progress"],
    "grda frontier": ["--epochs", "1", "--widths", "4", "--variants", "grda-constant", "--targets", "0.5",
                      "--no-progress"],
    "grda valley": ["--seeds", "0", "--times", "2", "--lams", "0.3", "--replicates", "2", "--no-progress"],
    "experiment": ["--scale", "tiny", "--quiet"],
}

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

#: ``prunelimit grda`` and its studies (except valley): data, model, training, run
GRDA_SHARED: list[tuple[list[str], str, str]] = [
    (["--data", "imagenet"], "--data", "imagenet"),
    (["--data", "cifar10"], "--data", "cifar10"),  # without --data-root
    (["--data-root", "/nonexistent/c10", "--data", "cifar10"], "--data-root", "/nonexistent/c10"),
    (["--data-root", "{tmp}"], "--data-root", "digits"),  # the built-in dataset takes none
    (["--model", "foo"], "--model", "foo"),
    (["--model", "vgg16"], "--model", "vgg16"),  # needs 32x32 images, digits are 64 features
    (["--hidden", "0"], "--hidden", "0"),
    (["--hidden", "x"], "--hidden", "'x'"),
    (["--hidden", "8", "--model", "cnn"], "--hidden", "cnn"),
    (["--hidden", "1000000000"], "--hidden", "1000000000"),  # 7.5e10 parameters: refused before allocating
    (["--epochs", "0"], "--epochs", "0"),
    (["--epochs", "1.5"], "--epochs", "'1.5'"),
    (["--batch-size", "0"], "--batch-size", "0"),
    (["--batch-size", "x"], "--batch-size", "'x'"),
    (["--lr", "0"], "--lr", "0"),
    (["--lr", "nan"], "--lr", "nan"),
    (["--schedule", "linear"], "--schedule", "'linear'"),
    (["--schedule", "step", "--epochs", "1"], "--epochs", "1"),  # no epoch to drop the rate at
    (["--lr-drop-epoch", "0"], "--lr-drop-epoch", "0"),
    (["--lr-drop-epoch", "5", "--epochs", "3"], "--lr-drop-epoch", "5"),
    (["--momentum", "1"], "--momentum", "1"),
    (["--momentum", "-0.5"], "--momentum", "-0.5"),
    (["--weight-decay", "-1"], "--weight-decay", "-1"),
    (["--weight-decay", "inf"], "--weight-decay", "inf"),
    (["--mu", "0"], "--mu", "0"),
    (["--mu", "2"], "--mu", "(0.5, 1)"),  # the threshold outgrows every dual sum: chance accuracy
    (["--mu", "1"], "--mu", "1"),
    (["--mu", "nan"], "--mu", "nan"),
    (["--seed", "-5"], "--seed", "-5"),
    (["--seed", "x"], "--seed", "'x'"),
    (["--seed", "4294967296"], "--seed", "4294967296"),  # beyond scikit-learn's random_state
    (["--device", "foo"], "--device", "foo"),
    (["--device", "cuda:7"], "--device", "cuda:7"),
    (["--device", "cpu:x"], "--device", "cpu:x"),
    (["--device", "cuda:99" if torch.cuda.is_available() else "cuda"], "--device", "cuda"),
    (["--threads", "0"], "--threads", "0"),
    (["--threads", "two"], "--threads", "'two'"),
    (["--out", "{file}"], "--out", "{file}"),
    (["--out", "{file}/sub"], "--out", "{file}/sub"),
    (["--out", "/proc/prunelimit-out"], "--out", "/proc/prunelimit-out"),
    (["--no-progress=1"], "--no-progress", "'1'"),
]
#: the calibration options of the studies that calibrate c
CALIBRATION: list[tuple[list[str], str, str]] = [
    (["--tolerance", "0"], "--tolerance", "0"),
    (["--tolerance", "0.7"], "--tolerance", "0.7"),  # above CalibrationConfig's 0.5
    (["--max-runs", "0"], "--max-runs", "0"),
]
GRDA_STUDIES = ("calibrate", "pretrained", "stopping", "masks", "frontier")
TABLE.update({
    "grda": [
        (["--c", "-1"], "--c", "-1"),
        (["--c", "nan"], "--c", "nan"),
        (["--c", "1e6"], "--c", "1e+06"),  # the first threshold zeroes every weight: refused with c* named
        (["--lr", "1e6"], "--lr", "1e+06"),  # the SGD partner diverges in the first epoch: the epoch is named
        (["--c", "0", "--lr", "1e4"], "--lr", "epoch 1"),
        (["--target-sparsity", "1"], "--target-sparsity", "1"),
        (["--target-sparsity", "0"], "--target-sparsity", "0"),
        (["--target-sparsity", "0.5", "--c", "0.1"], "--c", "0.1"),  # c is calibrated: --c would be ignored
        *CALIBRATION,
        (["--tolerance", "0.02"], "--tolerance", "--target-sparsity"),  # a calibration setting without calibration
        (["--max-runs", "3"], "--max-runs", "--target-sparsity"),
        (["--top-k", "0"], "--top-k", "0"),
        (["--top-k", "5000"], "--top-k", "5000"),  # D = 310 parameters with --hidden 4
        (["--hessian", "exact"], "--hessian", "'exact'"),
        (["--hessian", "dense", "--hidden", "100000"], "--hessian", "100000"),  # a 2.7 PB dense Hessian
        (["--dense-limit", "0"], "--dense-limit", "0"),
        (["--dense-limit", "10", "--hessian", "dense"], "--dense-limit", "10"),  # used by --hessian auto only
        (["--diagnostic-samples", "0"], "--diagnostic-samples", "0"),
        (["--diagnostic-samples", "1e9"], "--diagnostic-samples", "'1e9'"),
        (["--path-points", "1"], "--path-points", "1"),
        (["--bezier-steps", "-1"], "--bezier-steps", "-1"),
        (["--no-compensation=1"], "--no-compensation", "'1'"),
        (["--compensation-steps", "-1"], "--compensation-steps", "-1"),
        (["--compensation-steps", "5", "--no-compensation"], "--compensation-steps", "5"),
        (["--no-directional=1"], "--no-directional", "'1'"),
        (["--no-diagnostics=1"], "--no-diagnostics", "'1'"),
        (["--no-diagnostics", "--top-k", "3"], "--top-k", "--no-diagnostics"),
        (["--stopping-window", "1"], "--stopping-window", "1"),
        (["--stopping-window", "x"], "--stopping-window", "'x'"),
        (["--epochs", "5", "calibrate"], "--epochs", "5"),  # before the study name: the study would not see it
    ],
    "grda calibrate": [
        (["--data", "digits", "imagenet"], "--data", "imagenet"),
        (["--targets", "0"], "--targets", "0"),
        (["--targets", "0.5", "x"], "--targets", "'x'"),
        (["--schedules", "linear"], "--schedules", "'linear'"),
        (["--schedules", "step", "--epochs", "1"], "--epochs", "1"),
        (["--schedule", "step"], "--schedule", "step"),  # the study runs --schedules
        (["--no-rerun=1"], "--no-rerun", "'1'"),
        *CALIBRATION,
    ],
    "grda pretrained": [
        (["--targets", "1.5"], "--targets", "1.5"),
        (["--finetune-epochs", "0"], "--finetune-epochs", "0"),
        (["--finetune-lr", "0"], "--finetune-lr", "0"),
        (["--finetune-lr", "nan"], "--finetune-lr", "nan"),
        (["--finetune-schedule", "linear"], "--finetune-schedule", "'linear'"),
        (["--finetune-schedule", "step", "--finetune-epochs", "1"], "--finetune-epochs", "1"),
        (["--reopt-steps", "-1"], "--reopt-steps", "-1"),
        *CALIBRATION,
    ],
    "grda stopping": [
        (["--c", "-1"], "--c", "-1"),
        (["--c", "1e6"], "--c", "1e+06"),
        (["--seeds", "-1"], "--seeds", "-1"),
        (["--seeds", "0", "0"], "--seeds", "0 0"),
        (["--window", "1"], "--window", "1"),
        (["--window", "5", "--epochs", "3"], "--window", "5"),  # the rule could never fire
        (["--sparsity-tol", "-1"], "--sparsity-tol", "-1"),
        (["--sparsity-tol", "2"], "--sparsity-tol", "2"),
        (["--loss-tol", "-1"], "--loss-tol", "-1"),
        (["--loss-tol", "inf"], "--loss-tol", "inf"),
    ],
    "grda masks": [
        (["--target-sparsity", "1"], "--target-sparsity", "1"),
        (["--seeds", "0", "0"], "--seeds", "0 0"),
        (["--seeds", "x"], "--seeds", "'x'"),
        (["--schedules", "linear"], "--schedules", "'linear'"),
        (["--schedules", "step", "--epochs", "1"], "--epochs", "1"),
        (["--schedule", "step"], "--schedule", "step"),
        *CALIBRATION,
    ],
    "grda frontier": [
        (["--widths", "0"], "--widths", "0"),
        (["--widths", "1000000000"], "--widths", "1000000000"),
        (["--variants", "adam"], "--variants", "'adam'"),
        (["--targets", "1"], "--targets", "1"),
        (["--model", "cnn"], "--model", "cnn"),  # the frontier varies MLP widths
        (["--hidden", "8"], "--hidden", "8"),  # --widths set the MLP
        (["--schedule", "step"], "--schedule", "step"),  # each variant sets its schedule
        *CALIBRATION,
    ],
    "grda valley": [
        (["--seeds", "-1"], "--seeds", "-1"),
        (["--seeds", "0", "0"], "--seeds", "0 0"),
        (["--times", "0"], "--times", "0"),
        (["--times", "1e9"], "--times", "1e+09"),  # 10^12 steps per run
        (["--times", "0.0001"], "--times", "0.0001"),  # shorter than one step
        (["--dim", "3"], "--dim", "3"),
        (["--dim", "1000000"], "--dim", "1000000"),  # 80 TB of d x d matrices
        (["--lams", "0"], "--lams", "0"),
        (["--gamma", "0"], "--gamma", "0"),
        (["--gamma", "1e-12"], "--gamma", "1e-12"),
        (["--noise", "-1"], "--noise", "-1"),
        (["--noise-gamma", "0"], "--noise-gamma", "0"),
        (["--replicates", "0"], "--replicates", "0"),
        (["--replicates", "1000000000000"], "--replicates", "1000000000000"),
        (["--threads", "0"], "--threads", "0"),
        (["--out", "{file}"], "--out", "{file}"),
        (["--no-progress=1"], "--no-progress", "'1'"),
    ],
    "experiment": [
        (["foo"], "NAME", "'foo'"),
        (["--list=1"], "--list", "'1'"),
        (["--scale", "huge"], "--scale", "'huge'"),
        (["--scale", "paper"], "--data-root", "paper"),  # reads CIFAR/TinyImageNet from a local folder
        (["--models", "resnet18"], "--models", "resnet18"),
        (["--models", "mlp-ts", "mlp-ts"], "--models", "mlp-ts"),
        (["--seeds", "0"], "--seeds", "0"),
        (["tv-distance", "--seeds", "1"], "--seeds", "1"),  # compares independent runs
        (["--out", "{file}"], "--out", "{file}"),
        (["--out", "/proc/prunelimit-out"], "--out", "/proc/prunelimit-out"),
        (["--data-root", "/nonexistent/dir", "--scale", "paper"], "--data-root", "/nonexistent/dir"),
        (["--data-root", "{tmp}"], "--data-root", "tiny"),  # the tiny scale trains on bundled data
        (["--device", "foo"], "--device", "foo"),
        (["--device", "cuda:99" if torch.cuda.is_available() else "cuda"], "--device", "cuda"),
        (["--jobs", "0"], "--jobs", "0"),
        (["--jobs", "2"], "--jobs", "2"),  # shares the networks of 'all' only
        (["--quiet=1"], "--quiet", "'1'"),
        (["--threads", "0"], "--threads", "0"),
    ],
})
#: rows of GRDA_SHARED that read otherwise in a study (the study refuses an earlier option first)
_STUDY_SHARED_SKIP = {"frontier": {("--hidden", "8", "--model", "cnn"), ("--schedule", "step", "--epochs", "1")},
                      "calibrate": {("--schedule", "step", "--epochs", "1")},
                      "masks": {("--schedule", "step", "--epochs", "1")}}
TABLE["grda"] = [*GRDA_SHARED, *TABLE["grda"]]
# the studies parse the shared options with the same code (nets.cli.grda._add_common) and check them with the same
# preflight: one row per option there (the first of GRDA_SHARED's), to keep the table fast
_FIRST_ROWS = [r for i, r in enumerate(GRDA_SHARED) if r[0][0] not in {q[0][0] for q in GRDA_SHARED[:i]}]
for _study in GRDA_STUDIES:
    skip = _STUDY_SHARED_SKIP.get(_study, set())
    TABLE[f"grda {_study}"] = [*(r for r in _FIRST_ROWS if tuple(r[0]) not in skip), *TABLE[f"grda {_study}"]]

#: rows whose value depends on the command's own defaults (prune needs --kept-fraction to get past argparse)
REQUIRED = {"prune": ["--kept-fraction", "0.5"]}


def _subparser(parser: argparse.ArgumentParser, name: str) -> argparse.ArgumentParser:
    return next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction)).choices[name]


def _options(command: str) -> set[str]:
    """The options of ``command`` (``"grda calibrate"``: of the study's own parser)."""
    words = command.split()
    sub = build_parser(words[0])
    for w in words:
        sub = _subparser(sub, w)
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
    from nets.experiments import EXPERIMENTS

    argv = _fill(argv, paths)
    value = value.format(**paths)
    out = ["--out", str(tmp_path / "out")] if command != "geometry" and "--out" not in argv else []
    base = EXTRA.get(command, [])
    given = {a.split("=")[0] for a in argv if a.startswith("--")}
    # the tiny settings' own values must not mask the row's
    extra = [x for i, x in enumerate(base) if not (x in given or (i > 0 and base[i - 1] in given))]
    if command in MODEL_COMMANDS:
        if "--checkpoint" in argv:
            extra = [x for x in extra if x not in ("--epochs", "1")]
        if "--model" in argv and argv[argv.index("--model") + 1] != "mlp" and "--hidden" not in argv:
            extra = [x for x in extra if x not in ("--hidden", "8")]
    if command.startswith("grda") and "--model" in argv and "--hidden" not in argv and "--hidden" in extra:
        i = extra.index("--hidden")
        extra = extra[:i] + extra[i + 2:]
    required = [x for x in REQUIRED.get(command, []) if x not in argv and not any(a.startswith(x) for a in argv)]
    if command == "experiment" and not any(a in EXPERIMENTS or a == "foo" for a in argv):
        required = ["bound-gap"]
    threads = torch.get_num_threads()
    rc = main([*command.split(), *argv, *out, *extra, *required])
    err = capsys.readouterr().err
    assert torch.get_num_threads() == threads
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert rc == 2, err
    assert len(lines) == 1, err
    assert "Traceback" not in err
    line = lines[0]
    study = next((a for a in argv if command == "grda" and a in GRDA_STUDIES), None)  # a row naming a study
    assert line.startswith(f"prunelimit {command}{' ' + study if study else ''}: error: "), line
    assert option in line and value in line, line
    # nothing was computed: no training checkpoint, no result
    outdir = tmp_path / "out"
    assert not (outdir / "train" / "checkpoint.pt").exists() or "--lr" in argv
    assert not any(outdir.glob("*.json")) or all(p.name == "run.json" for p in outdir.glob("*.json"))
    if command.startswith(("grda", "experiment")):  # not even a cell or a plot
        assert not [p for p in outdir.rglob("*") if p.is_file()]


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
