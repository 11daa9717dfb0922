"""README.md's walkthrough, run as written: the ```sh blocks of "Walkthrough with curl" in one
bash, against the running system, from a directory with the system's `var/run/seed.json`.

Only G (the gateway) and HOOK_URL (a local receiver instead of an ERP) come from outside, as
the README says they may. `curl` is wrapped to write each call's status to stderr (the blocks
themselves are not changed); every call must answer the status its `# -> NNN` comment shows,
or a 2xx when it shows none. `set -euo pipefail`: an unset variable or a failed step fails.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.e2e.system import ROOT, System

pytestmark = pytest.mark.e2e

SECTION = "## Walkthrough with curl"
STATUS_MARK = "CURL-STATUS"
WRITE_OUT = f"%{{stderr}}{STATUS_MARK} %{{http_code}} %{{method}} %{{url_effective}}\\n"
PREAMBLE = f"""set -euo pipefail
curl() {{ command curl -w '{WRITE_OUT}' "$@"; }}
"""
EXPECTED = re.compile(r"^#\s*->\s*(\d{3})\b")
CURL = re.compile(r"(?<![\w./-])curl\s")


@dataclass
class Call:
    line: str
    expected: int | None = None  # None: any 2xx


def walkthrough_blocks(readme: str) -> list[str]:
    start = readme.index(SECTION) + len(SECTION)
    end = readme.find("\n## ", start)
    section = readme[start:end if end != -1 else None]
    return re.findall(r"^```sh\n(.*?)^```", section, flags=re.S | re.M)


def expected_calls(blocks: list[str]) -> list[Call]:
    """Every curl call in order, with the status of the `# -> NNN` comment after it."""
    calls: list[Call] = []
    for block in blocks:
        for raw in block.splitlines():
            line = raw.strip()
            if line.startswith("#"):
                match = EXPECTED.match(line)
                if match and calls and calls[-1].expected is None:
                    calls[-1].expected = int(match.group(1))
                continue
            code = line.split(" # ", 1)[0]
            calls += [Call(line) for _ in CURL.finditer(code)]
    return calls


def test_the_parser_reads_statuses():
    blocks = ["X=$(curl -s a | python3 -c 'x')\n# -> 201 {...}\n#    more\ncurl b  # note\n"
              "curl c\n# -> 412 {\n"]
    assert [c.expected for c in expected_calls(blocks)] == [201, None, 412]


def test_readme_walkthrough_runs_as_written(system: System, tmp_path: Path, webhook_receiver):
    blocks = walkthrough_blocks((ROOT / "README.md").read_text(encoding="utf-8"))
    assert len(blocks) == 5, (
        "the walkthrough's five blocks (leads, sales, rules, contracts, service desk)")
    calls = expected_calls(blocks)
    assert len(calls) > 30, len(calls)
    (tmp_path / "var" / "run").mkdir(parents=True)
    shutil.copy(system.run_dir / "seed.json", tmp_path / "var" / "run" / "seed.json")
    script = PREAMBLE + "\n".join(blocks)
    env = {**os.environ, "G": system.url, "HOOK_URL": webhook_receiver.url}
    for name in ("http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY"):
        env.pop(name, None)
    result = subprocess.run(["bash", "-c", script], cwd=tmp_path, env=env, capture_output=True,
                            text=True, timeout=300)
    statuses = [line.split(" ", 3)[1:] for line in result.stderr.splitlines()
                if line.startswith(STATUS_MARK)]
    report = "\n".join(f"{c.expected or '2xx'} <- {s[0] if s else '?'} {' '.join(s[1:])}"
                       for c, s in zip(calls, statuses + [[]] * len(calls), strict=False))
    assert result.returncode == 0, (
        f"the walkthrough stopped ({result.returncode}) after {len(statuses)} calls:\n"
        f"{result.stderr[-3000:]}\n{report}")
    assert len(statuses) == len(calls), f"{len(statuses)} calls made, {len(calls)} in README"
    wrong = [(call.line, call.expected, status)
             for call, status in zip(calls, statuses, strict=True)
             if (call.expected is None and not 200 <= int(status[0]) < 300)
             or (call.expected is not None and int(status[0]) != call.expected)]
    assert not wrong, "calls that did not answer what the README shows:\n" + "\n".join(
        f"{line}\n    README {expected or '2xx'}, got {' '.join(status)}"
        for line, expected, status in wrong)
