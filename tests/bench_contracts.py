"""Bench: a 200-line quote rendered to PDF from the default print template (p50, p99).

Also a 2-page quote (40 lines), the issue's "well under a second" figure, and which font
subsetter WeasyPrint uses (HarfBuzz's libharfbuzz-subset, or the slow pure-Python fontTools).
`python -m tests.bench_contracts` or `BENCH_ONLY=contracts make bench`; prints JSON. Then the
numbers' collection and aging reports on PostgreSQL (tests/bench_contracts_numbers.py;
BENCH_CONTRACTS_NUMBERS=0 leaves them out).
"""

from __future__ import annotations

import json
import os
import statistics
import time
from typing import Any

from services.contracts.printing import DEFAULT_TEMPLATE, render_pdf, sample_quote

COMPANY = {"name": "示例软件有限公司", "address": "上海市浦东新区世纪大道1号"}


def _figures(lines: int, rounds: int) -> dict[str, Any]:
    quote = sample_quote(lines)
    times = []
    size = 0
    for _ in range(rounds):
        started = time.perf_counter()
        size = len(render_pdf(DEFAULT_TEMPLATE, quote, COMPANY))
        times.append(time.perf_counter() - started)
    times.sort()
    return {"lines": lines, "rounds": rounds, "pdf_bytes": size,
            "p50_ms": round(statistics.median(times) * 1000, 1),
            "p99_ms": round(times[min(len(times) - 1, int(len(times) * 0.99))] * 1000, 1)}


def run(rounds: int | None = None) -> dict[str, Any]:
    from weasyprint.pdf import fonts
    from weasyprint.text.ffi import harfbuzz

    rounds = rounds or int(os.environ.get("BENCH_PDF_ROUNDS", "20"))
    render_pdf(DEFAULT_TEMPLATE, sample_quote(3), COMPANY)  # warm: fontconfig, imports
    subsetter = ("harfbuzz" if fonts.harfbuzz_subset and harfbuzz.hb_version_atleast(4, 1, 0)
                 else "fonttools")
    results = {"font_subsetter": subsetter, "quote_2_pages": _figures(40, rounds),
               "quote_200_lines": _figures(200, rounds), "cores": os.cpu_count()}
    # -- numbers: collection and aging over 100,000 contracts / 1,000,000 receipts ----
    if os.environ.get("BENCH_CONTRACTS_NUMBERS", "1") != "0":
        from tests import bench_contracts_numbers

        results["numbers"] = bench_contracts_numbers.run()
    return results


def main() -> None:
    print(json.dumps(run(), indent=2, ensure_ascii=False))


if __name__ == "__main__":
    main()
