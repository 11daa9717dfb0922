"""The numbers' rows (`ticket_sla_outcomes`) of every ticket that has none, by hand:

    python -m services.service_desk.backfill_outcomes [--again] [--batch 200]

The service does the same by itself after an upgrade past migration 0011n (its timer, in
batches, usecases/outcomes_backfill.py); this runs the job to its end now, printing its
progress, and may run while the service runs (they take turns) or be stopped at any point
(a re-run goes on). `--again` looks at every ticket without rows once more from the start
(after a calendar's missing year was entered, say). Database: SERVICE_DESK_DATABASE_URL.
"""

from __future__ import annotations

import argparse
import sys
import time

from sqlalchemy.orm import sessionmaker

from services.service_desk.usecases import outcomes_backfill
from shared import config
from shared.db import DatabaseAccess, get_engine


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m services.service_desk.backfill_outcomes",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("--again", action="store_true",
                        help="look at every ticket without rows again, from the start")
    parser.add_argument("--batch", type=int, default=outcomes_backfill.BATCH,
                        help="tickets per transaction (default %(default)s)")
    args = parser.parse_args(argv)
    db = DatabaseAccess(sessionmaker(get_engine(config.database_url("service_desk")),
                                     expire_on_commit=False))
    with db.begin() as session:
        if args.again:
            outcomes_backfill.request(session)
        elif not outcomes_backfill.pending(session):
            print("ticket_sla_outcomes backfill: nothing to do (done; --again to look at the "
                  "tickets without rows once more)")
            return 0
        left = outcomes_backfill.without_rows(session)
    print(f"ticket_sla_outcomes backfill: {left} tickets without rows", flush=True)
    total = outcomes_backfill.Progress()
    started = time.monotonic()
    while True:
        progress = outcomes_backfill.step(db, max(1, args.batch))
        total.add(progress)
        if not progress.looked_at and not progress.done:
            time.sleep(0.5)  # the service has the batch: its turn
            continue
        print(f"  {total.looked_at}/{left} looked at, {total.written} written, "
              f"{total.no_policy} without a policy, {total.failed} failed, "
              f"{time.monotonic() - started:.1f} s", flush=True)
        if progress.done:
            break
    if total.failed_ids:
        print("not computable (see the log; --again once fixed): "
              + ", ".join(total.failed_ids[:20]) + (" ..." if total.failed > 20 else ""))
    return 1 if total.failed else 0


if __name__ == "__main__":
    sys.exit(main())
