"""``python -m proofs_check [NAME ...]``: run the derivation checks, print a table, exit 1 on failure."""

from __future__ import annotations

import sys

from proofs_check.registry import run_all


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    outcomes = run_all(argv or None)
    if not outcomes:
        print("no checks selected", file=sys.stderr)
        return 2
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
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
