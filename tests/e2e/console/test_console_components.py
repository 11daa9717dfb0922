"""The console's Vitest component tests, run inside `make test` (a failure fails the suite)."""

from __future__ import annotations

import subprocess

import pytest

from services.gateway.console import build


def test_vitest_component_tests_pass() -> None:
    try:
        build.ensure_dependencies(print)
    except build.ConsoleBuildError as exc:
        pytest.fail(str(exc), pytrace=False)
    result = subprocess.run(["npm", "test", "--", "--reporter=dot"], cwd=build.CONSOLE_DIR,
                            capture_output=True, text=True, timeout=600)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-6000:]
    assert " passed" in output and " failed" not in output, output[-3000:]
