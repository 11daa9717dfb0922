"""docs/adding-a-service.md, followed to the letter: a throw-away service built from the page's
code blocks (its folder, its registry entry, its gateway resource module), and nothing else
edited, is started by devctl, appears in the generated deployment files and in the event
catalogue, and is reachable through the gateway over a real RPC.

The blocks are written into a temp package instead of services/ (the registry entry gets
`package=` for that) and the entry is added with CRM_EXTRA_SERVICES, so the tree stays as it is.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import urllib.parse
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests

from deploy import devctl, generate
from shared import catalogue, registry
from tests.e2e.system import free_port

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "adding-a-service.md"
SERVICE_FOLDER = "services/greetings/"
RESOURCE = "services/gateway/resources/greetings.py"
REGISTRY = "shared/registry.py"

ENTRIES_MODULE = '''\
"""The registry entry of docs/adding-a-service.md, placed in a temp package."""

import dataclasses

from shared.registry import RecordType, RuleCommand, Service  # noqa: F401 - the entry uses them

SERVICES = tuple(
    dataclasses.replace(entry, package={package!r}) for entry in (
{entry}
    )
)
'''


def doc_blocks() -> dict[str, str]:
    """The page's python blocks by the path on their first line (`# <path>[: note]`)."""
    blocks: dict[str, str] = {}
    for code in re.findall(r"```python\n(.*?)```", DOC.read_text(encoding="utf-8"), re.S):
        first_line = code.split("\n", 1)[0]
        assert first_line.startswith("# "), f"a block without its path: {first_line!r}"
        blocks[first_line[2:].split(":")[0].strip()] = code
    return blocks


@dataclass
class Throwaway:
    name: str
    package: str  # where the service's folder went
    source_root: Path  # on sys.path and PYTHONPATH
    env: dict[str, str]  # CRM_EXTRA_SERVICES and PYTHONPATH, for devctl's processes


@pytest.fixture
def throwaway(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Throwaway:
    blocks = doc_blocks()
    assert {p for p in blocks if not p.startswith(SERVICE_FOLDER)} == {RESOURCE, REGISTRY}
    top = f"crm_throwaway_{secrets.token_hex(4)}"
    package, resource = f"{top}.greetings", f"{top}.greetings_resource"

    def placed(code: str) -> str:
        return code.replace("services.gateway.resources.greetings", resource).replace(
            "services.greetings", package)

    source_root = tmp_path / "src"
    folder = source_root / top / "greetings"
    folder.mkdir(parents=True)
    (source_root / top / "__init__.py").write_text("")
    for path, code in blocks.items():
        if path.startswith(SERVICE_FOLDER):
            (folder / path.removeprefix(SERVICE_FOLDER)).write_text(placed(code))
    (source_root / top / "greetings_resource.py").write_text(placed(blocks[RESOURCE]))
    entry = "\n".join("        " + line for line in placed(blocks[REGISTRY]).splitlines())
    (source_root / top / "entries.py").write_text(
        ENTRIES_MODULE.format(package=package, entry=entry))

    env = {
        registry.EXTRA_SERVICES_ENV: f"{top}.entries",
        "PYTHONPATH": os.pathsep.join(filter(None, [str(source_root),
                                                    os.environ.get("PYTHONPATH")])),
    }
    monkeypatch.syspath_prepend(str(source_root))
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    return Throwaway("greetings", package, source_root, env)


def test_devctl_the_generated_files_and_the_catalogue_pick_it_up(
    throwaway: Throwaway, tmp_path: Path
) -> None:
    target = f"{throwaway.package}.service:GreetingsService"
    entry = registry.get("greetings")
    assert (entry.target, entry.port, entry.planned) == (target, 8106, False)
    assert registry.is_declared("greetings", "greet")

    env = dict(os.environ)
    assert "greetings" in devctl.selected_services(env)
    spec = next(s for s in devctl.plan(env, tmp_path, ["greetings"]) if s.name == "greetings")
    assert spec.argv[-1] == target
    assert spec.address == "127.0.0.1:8106"

    files = generate.rendered()
    manifest = files[generate.K8S / "greetings.yaml"]
    assert f'"{target}"' in manifest
    assert 'prometheus.io/port: "8106"' in manifest
    assert "  - greetings.yaml\n" in files[generate.K8S / "kustomization.yaml"]
    assert (f"greetings: WEB_SERVER_ADDRESS=127.0.0.1:8106 .venv/bin/nameko run --config "
            f"deploy/nameko.yaml {target}\n") in files[generate.DEPLOY / "Procfile"]
    # no database, so nothing to migrate
    assert "shared.migrations, leads, sales, service_desk, contracts, rules, gateway]" in files[
        generate.K8S / "migrate-job.yaml"]
    assert f"| greetings | `... {target}` | 127.0.0.1:8106 |" in files[generate.README]

    channels = catalogue.build()["channels"]
    assert channels["greetings.events/greeting_sent"]["description"] == "Someone was greeted."


def test_the_gateway_reaches_it_over_rpc(
    throwaway: Throwaway, amqp_uri: str, tmp_path: Path
) -> None:
    env = {
        k: v for k, v in os.environ.items()
        if not k.endswith(("_DATABASE_URL", "_WEB_ADDRESS"))
        and k not in ("PROMETHEUS_MULTIPROC_DIR", "CRM_SECRET_KEY", "CRM_SERVICES")
    }
    env.update(
        throwaway.env,
        AMQP_URI=amqp_uri,
        CRM_DATA_DIR=str(tmp_path / "data"),
        CRM_GATEWAY_BIND=f"127.0.0.1:{free_port()}",
        CRM_GREETINGS_WEB_ADDRESS=f"127.0.0.1:{free_port()}",
    )
    run_dir = tmp_path / "run"
    info = devctl.start_system(env, run_dir, ["greetings"], start_broker=False,
                               log=lambda _: None)
    try:
        assert [s.name for s in info.specs] == ["greetings", devctl.GATEWAY]
        assert {row["name"]: row["health"] for row in devctl.status(run_dir)} == {
            "greetings": "ok", devctl.GATEWAY: "ok"}
        key = info.users["admin"]["api_key"]
        response = requests.get(f"{info.url}/greetings/{urllib.parse.quote('王伟')}",
                                headers={"Authorization": f"Bearer {key}"}, timeout=30)
        assert response.status_code == 200, response.text
        assert response.json() == {"greeting": "你好, 王伟!"}
        unsigned = requests.get(f"{info.url}/greetings/x", timeout=30)
        assert unsigned.status_code == 401
        document = requests.get(f"{info.url}/openapi.json", timeout=30).json()
        assert "/greetings/{name}" in document["paths"]
    finally:
        devctl.stop_system(run_dir, log=lambda _: None)
    assert json.loads((run_dir / "specs.json").read_text())[0]["argv"][-1] == (
        f"{throwaway.package}.service:GreetingsService")
