"""`make chaos`: every fault on SQLite and on PostgreSQL, then the table; on each database also
the service desk's mail cycle (kill -9 during mail intake and during sending, tests/chaos/mail.py),
as the pytest suite runs it. Exit 1 on any loss."""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

from tests.chaos import harness, mail
from tests.chaos.node import unavailable_reason

ALL = list(harness.FAULTS)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.chaos", description=__doc__)
    parser.add_argument("--scenarios", default=",".join(ALL),
                        help=f"comma-separated, of: {', '.join(ALL)}")
    parser.add_argument("--databases", default="sqlite,postgres")
    parser.add_argument("--leads", type=int, default=3000, help="leads per scenario")
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--mails", type=int, default=300,
                        help="mails of the service desk's mail cycle per database (0: none)")
    args = parser.parse_args(argv)
    reason = unavailable_reason()
    if reason:
        print(f"chaos: cannot run: {reason}", file=sys.stderr)
        return 2
    outcomes: list[harness.Outcome] = []
    mail_outcomes: list[tuple[str, mail.MailOutcome]] = []
    for database in args.databases.split(","):
        if database == "postgres" and (problem := harness.postgres_problem()):
            print(f"chaos: skipping PostgreSQL: {problem}", file=sys.stderr)
            continue
        with tempfile.TemporaryDirectory(prefix="crm-chaos-") as base, \
                harness.ChaosSystem.running(Path(base), database) as chaos:
            for scenario in [name for name in args.scenarios.split(",") if name]:
                outcome = harness.run_cycle(chaos, scenario, args.leads, args.concurrency)
                outcomes.append(outcome)
                print(harness.table([outcome]), flush=True)
                for line in [*outcome.details[:20], *outcome.diagnostics]:
                    print("   ", line)
            if args.mails > 0:
                mailed = mail.run_mail_cycle(chaos, args.mails, concurrency=4)
                mail_outcomes.append((database, mailed))
                print(mail_summary(database, mailed), flush=True)
                for line in mailed.details[:20]:
                    print("   ", line)
    print()
    print(harness.table(outcomes))
    for database, mailed in mail_outcomes:
        print(mail_summary(database, mailed))
    passed = all(o.passed for o in outcomes) and all(m.passed for _, m in mail_outcomes)
    return 0 if (outcomes or mail_outcomes) and passed else 1


def mail_summary(database: str, outcome: mail.MailOutcome) -> str:
    return f"{database}: {outcome.summary()}  {'ok' if outcome.passed else 'FAIL'}"


if __name__ == "__main__":
    sys.exit(main())
