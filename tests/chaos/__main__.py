"""`make chaos`: every fault on SQLite and on PostgreSQL, then the table. Exit 1 on any loss."""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

from tests.chaos import harness
from tests.chaos.node import unavailable_reason

ALL = list(harness.FAULTS)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.chaos", description=__doc__)
    parser.add_argument("--scenarios", default=",".join(ALL),
                        help=f"comma-separated, of: {', '.join(ALL)}")
    parser.add_argument("--databases", default="sqlite,postgres")
    parser.add_argument("--leads", type=int, default=3000, help="leads per scenario")
    parser.add_argument("--concurrency", type=int, default=8)
    args = parser.parse_args(argv)
    reason = unavailable_reason()
    if reason:
        print(f"chaos: cannot run: {reason}", file=sys.stderr)
        return 2
    outcomes: list[harness.Outcome] = []
    for database in args.databases.split(","):
        if database == "postgres" and (problem := harness.postgres_problem()):
            print(f"chaos: skipping PostgreSQL: {problem}", file=sys.stderr)
            continue
        with tempfile.TemporaryDirectory(prefix="crm-chaos-") as base, \
                harness.ChaosSystem.running(Path(base), database) as chaos:
            for scenario in args.scenarios.split(","):
                outcome = harness.run_cycle(chaos, scenario, args.leads, args.concurrency)
                outcomes.append(outcome)
                print(harness.table([outcome]), flush=True)
                for line in [*outcome.details[:20], *outcome.diagnostics]:
                    print("   ", line)
    print()
    print(harness.table(outcomes))
    return 0 if outcomes and all(o.passed for o in outcomes) else 1


if __name__ == "__main__":
    sys.exit(main())
