"""``python -m proofs_check [NAME ...] [--coverage [--markdown] [--by-check]] [--json PATH] [--list]``.

Without options: run the derivation checks (all, or the NAMEs given), print a table, verify that every
library formula is covered (:mod:`proofs_check.formulas`), and exit 1 on any failure or gap.
``--coverage`` prints which checks cover each formula instead of running them (``--markdown`` as a table
for docs/math.md, ``--by-check`` one row per check) and exits 1 if the coverage is incomplete. ``--json PATH`` also writes the outcomes.
``--list`` prints the check names.
"""

from __future__ import annotations

import argparse
import sys

from proofs_check.coverage import coverage_problems, coverage_rows, render_by_check, render_markdown, render_text
from proofs_check.registry import all_checks, run_all


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m proofs_check", description=__doc__.split("\n\n")[1])
    parser.add_argument("names", nargs="*", help="checks to run (default: all)")
    parser.add_argument("--coverage", action="store_true", help="print formula -> checks instead of running")
    parser.add_argument("--markdown", action="store_true", help="with --coverage: a markdown table")
    parser.add_argument("--by-check", action="store_true", help="with --coverage: one row per check instead")
    parser.add_argument("--json", metavar="PATH", help="also write the outcomes as JSON")
    parser.add_argument("--list", action="store_true", help="print the check names and exit")
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)

    checks = all_checks()
    if args.list:
        print("\n".join(c.name for c in checks))
        return 0
    problems = coverage_problems(checks)
    if args.coverage:
        if args.by_check:
            print(render_by_check(checks, markdown=args.markdown))
        else:
            rows = coverage_rows(checks)
            print(render_markdown(rows) if args.markdown else render_text(rows))
        for p in problems:
            print(f"COVERAGE: {p}", file=sys.stderr)
        return 1 if problems else 0

    unknown = sorted(set(args.names) - {c.name for c in checks})
    if unknown:
        print(f"unknown check names: {', '.join(unknown)} (see --list)", file=sys.stderr)
        return 2
    outcomes = run_all(args.names or None)
    w_name = max(len(o.check.name) for o in outcomes)
    w_eq = min(60, max(len(o.check.equation) for o in outcomes))
    print(f"{'check':<{w_name}}  {'equation':<{w_eq}}  {'status':<6}  {'time':>7}  detail")
    for o in outcomes:
        status = "PASS" if o.result.passed else "FAIL"
        eq = o.check.equation if len(o.check.equation) <= w_eq else o.check.equation[: w_eq - 1] + "…"
        print(f"{o.check.name:<{w_name}}  {eq:<{w_eq}}  {status:<6}  {o.seconds:6.2f}s  {o.result.detail}")
        if o.error:
            print(o.error)
    failed = [o for o in outcomes if not o.result.passed]
    print(f"{len(outcomes) - len(failed)} passed, {len(failed)} failed")
    for p in problems:
        print(f"COVERAGE: {p}")
    if problems:
        print(f"coverage incomplete: {len(problems)} problem(s) (python -m proofs_check --coverage)")
    if args.json:
        record = {
            "checks": [
                {"name": o.check.name, "passed": bool(o.result.passed), "detail": o.result.detail,
                 "seconds": o.seconds, "covers": list(o.check.covers), "error": o.error}
                for o in outcomes
            ],
            "coverage_problems": problems,
        }
        from nets.io import atomic_write_json

        atomic_write_json(args.json, record, indent=1)
    return 1 if failed or problems else 0


if __name__ == "__main__":
    sys.exit(main())
