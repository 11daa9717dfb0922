"""The console's TypeScript type check (vue-tsc) and its Vitest component tests, run inside
`make test`: a type error or a failed component test fails the suite."""

from __future__ import annotations

import subprocess

import pytest

from services.gateway.console import build


@pytest.fixture(scope="module")
def node_modules() -> None:
    try:
        build.ensure_dependencies(print)
    except build.ConsoleBuildError as exc:
        pytest.fail(str(exc), pytrace=False)


def _npm(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["npm", *args], cwd=build.CONSOLE_DIR, capture_output=True, text=True,
                          timeout=600)


def test_typescript_type_check_passes(node_modules: None) -> None:
    result = _npm("run", "typecheck")
    assert result.returncode == 0, (result.stdout + result.stderr)[-6000:]


def test_vitest_component_tests_pass(node_modules: None) -> None:
    result = _npm("test", "--", "--reporter=dot")
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-6000:]
    assert " passed" in output and " failed" not in output, output[-3000:]
