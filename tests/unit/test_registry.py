"""shared/registry.py agrees with itself, with the code and with the generated files.

Every hop between services is checked here: a call in the code that the registry does not
declare, or a declared command that no service class has, fails a test.
"""

from __future__ import annotations

import ast
import importlib
import inspect
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from nameko.extensions import ENTRYPOINT_EXTENSIONS_ATTR
from nameko.rpc import Rpc, RpcProxy

from deploy import devctl, generate
from shared import registry
from shared.registry import RecordType, RegistryError, RuleCommand, Service

ROOT = Path(__file__).resolve().parents[2]
SERVICES_DIR = ROOT / "services"

# Hops whose service or command is a variable, by (the service whose code makes it, function),
# and how each is checked instead. A new one must be added here with its check.
DYNAMIC_HOPS = {
    # a rule's `call` action: its targets are ALLOWED_CALLS, built from the registry
    ("rules", "_call"),
    # a record a body refers to: RECORD_READS, checked in test_record_reads_are_declared
    ("gateway", "read_reference"),
}


# --------------------------------------------------------------------------- the entries


def test_the_registry_agrees_with_itself() -> None:
    registry.check(registry.services())
    assert registry.start_order() == ("rules", "leads", "sales", "service_desk", "contracts")
    assert registry.ports() == {"leads": 8101, "sales": 8102, "service_desk": 8104,
                                "contracts": 8103, "rules": 8105}


@pytest.mark.parametrize("entries, complaint", [
    ((Service("a", 9001), Service("b", 9001)), "port 9001 is a's"),
    ((Service("a", 9001), Service("a", 9002)), "declared twice"),
    ((Service("gateway", 9001),), "declared twice"),
    ((Service("a", 9001, commands=("x",), rule_commands={"y": RuleCommand("r")},
              records=(RecordType("r"),)),), "a.y: a rule command must be a command"),
    ((Service("a", 9001, commands=("x",), rule_commands={"x": RuleCommand("lead")}),),
     "acts on lead, which a does not own"),
    ((Service("a", 9001, records=(RecordType("r", "r_id"),)),
      Service("b", 9002, records=(RecordType("r"),))), "record type r: owned twice"),
    ((Service("a", 9001, planned=True, commands=("x",)),), "planned, so it has no commands"),
    ((Service("a", 9001, commands=("x",), rule_commands={"x": RuleCommand("r", ("command_id",))},
              records=(RecordType("r"),)),), "command_id is not a rule's argument"),
    ((Service("Bad-Name", 9001),), "a lower-case identifier"),
])
def test_contradictions_are_refused(entries: tuple[Service, ...], complaint: str) -> None:
    with pytest.raises(RegistryError, match=complaint):
        registry.check(entries)


def test_planned_services_have_no_folder_and_present_ones_have() -> None:
    for entry in registry.services():
        folder = SERVICES_DIR / entry.name
        assert folder.is_dir() != entry.planned, (
            f"{entry.name}: planned={entry.planned} but {folder} "
            f"{'exists' if folder.is_dir() else 'does not exist'}")
        if not entry.planned:
            assert (folder / "migrations").is_dir() == entry.database, entry.name
            if entry.events_module:
                importlib.import_module(entry.events_module)
            if entry.seed:
                importlib.import_module(entry.seed)


def test_what_the_rules_service_reads_is_what_it_had() -> None:
    from services.rules.domain import records, rules

    assert rules.ALLOWED_CALLS == {
        "leads.release_lead": ("lead", ("reason",)),
        "leads.change_status": ("lead", ("status", "reason")),
        "leads.assign_lead": ("lead", ("owner_id",)),
        "sales.move_opportunity": ("opportunity", ("stage_id", "reason")),
        "sales.assign_customer": ("customer", ("owner_id",)),
        # service desk groups: routing and assignment of tickets
        "service_desk.route_ticket": ("ticket", ()),
        "service_desk.assign_ticket": ("ticket", ("assignee_id",)),
        "service_desk.check_sla": ("ticket", ("now",)),
        "service_desk.escalate_ticket": ("ticket", ("priority", "reason")),
        "contracts.escalate_approval_step": ("approval", ("step",)),
    }
    assert records.RECORD_TYPES == (
        "lead", "customer", "contact", "opportunity", "followup", "ticket", "contract", "quote",
        "order", "instalment", "approval", "task",
    )
    assert list(records.LINK_FIELDS.items()) == [
        ("lead_id", "lead"), ("customer_id", "customer"), ("contact_id", "contact"),
        ("opportunity_id", "opportunity"), ("ticket_id", "ticket"), ("contract_id", "contract"),
        ("quote_id", "quote"), ("order_id", "order"), ("instalment_id", "instalment"),
        ("approval_id", "approval")]
    assert records.OWNER_FIELDS == {"ticket": "assignee_id"}


def test_every_rule_command_takes_a_command_id_as_its_rpc_method_says() -> None:
    """A rule's `call` (and `assign`) is exactly once: the rules service passes `command_id`
    to the commands that say they take it, so each of them must have the parameter."""
    from services.rules.domain import rules

    assert rules.EXACTLY_ONCE_CALLS == set(rules.ALLOWED_CALLS)
    for entry in registry.present():
        if not entry.rule_commands:
            continue
        module_name, class_name = entry.target.split(":")
        service_cls = getattr(importlib.import_module(module_name), class_name)
        for command, spec in entry.rule_commands.items():
            parameters = inspect.signature(getattr(service_cls, command)).parameters
            assert ("command_id" in parameters) == spec.takes_command_id, (
                f"{entry.name}.{command}")
            if spec.takes_command_id:
                assert parameters["command_id"].default is None, "optional: None changes nothing"


def test_the_rules_service_has_one_client_per_service_with_rule_commands() -> None:
    from services.rules.service import RulesService

    proxies = {name: member.target_service
               for name, member in inspect.getmembers(RulesService)
               if isinstance(member, RpcProxy)}
    assert proxies == {name: name for name in registry.rule_callable_services()}
    assert set(registry.rule_callable_services()) == {"leads", "sales", "service_desk",
                                                     "contracts"}


def test_the_gateway_registers_the_registry_resources() -> None:
    modules = registry.gateway_resource_modules()
    assert modules[:2] == ("services.gateway.resources.system",
                           "services.gateway.identity.resources")
    # then each present service's own modules, in registry order, named after the service
    assert modules[2:] == tuple(m for s in registry.present() for m in s.gateway_resources)
    for entry in registry.present():
        for module in entry.gateway_resources:
            name = module.rsplit(".", 1)[1]
            assert name == entry.name or name.startswith(entry.name + "_"), module
    assert "services.gateway.resources.contracts_quotes" in modules
    assert "services.gateway.resources.service_desk_kb" in modules
    for module in registry.gateway_resource_modules():
        assert hasattr(importlib.import_module(module), "blp"), module


def test_the_runtime_check_refuses_undeclared_calls() -> None:
    registry.check_call("leads", "create_lead")
    with pytest.raises(registry.UndeclaredCall, match="leads.create_leads"):
        registry.check_call("leads", "create_leads")
    with pytest.raises(registry.UndeclaredCall, match="billing.ping"):
        registry.check_call("billing", "ping")  # no such service


# --------------------------------------------------------------------------- commands vs code


def rpc_methods(service_cls: type) -> set[str]:
    return {name for name, member in inspect.getmembers(service_cls)
            if any(isinstance(ext, Rpc) for ext in getattr(member, ENTRYPOINT_EXTENSIONS_ATTR, ()))}


@pytest.mark.parametrize("name", registry.names())
def test_declared_commands_are_exactly_the_rpc_methods(name: str) -> None:
    entry = registry.get(name)
    module_name, class_name = entry.target.split(":")
    service_cls = getattr(importlib.import_module(module_name), class_name)
    assert service_cls.name == name
    methods = rpc_methods(service_cls)
    assert sorted(set(entry.commands) - methods) == [], "declared, but no such @rpc method"
    assert sorted(methods - set(entry.commands)) == [], "@rpc methods missing from the registry"


# --------------------------------------------------------------------------- hops in the code


@dataclass(frozen=True)
class Hop:
    service: str
    command: str
    where: str  # file:line


@dataclass
class Found:
    hops: list[Hop]
    dynamic: set[tuple[str, str]]  # (the calling service, function)


def _is_hop_call(node: ast.Call) -> bool:
    """The gateway's `rpc_call(...)` and the rules engine's `ports.call(...)`."""
    func = node.func
    name = func.id if isinstance(func, ast.Name) else getattr(func, "attr", None)
    if name == "rpc_call":
        return True
    if name == "call" and isinstance(func, ast.Attribute):
        owner = func.value
        return getattr(owner, "attr", getattr(owner, "id", None)) == "ports"
    return False


def _literal(node: ast.AST) -> str | None:
    return node.value if isinstance(node, ast.Constant) and isinstance(node.value, str) else None


def _functions(tree: ast.AST) -> Iterator[ast.FunctionDef]:
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            yield node  # type: ignore[misc]


def scan_hops(root: Path = ROOT) -> Found:
    """Every hop in services/: literal calls, calls through a one-level wrapper
    (`_report("funnel", ...)` where `_report(method, ...)` calls `rpc_call("sales", method)`),
    `self.<proxy>.<command>` of an `rpc_proxy("<service>")` class attribute; and the places
    whose service or command is a variable."""
    found = Found([], set())
    for path in sorted((root / "services").rglob("*.py")):
        if "migrations" in path.parts:
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"))
        relative = path.relative_to(root)
        caller = relative.parts[1]
        wrappers: dict[str, tuple[str, int]] = {}  # function -> (service, index of command)
        for function in _functions(tree):
            params = [a.arg for a in function.args.args]
            for node in ast.walk(function):
                if not (isinstance(node, ast.Call) and _is_hop_call(node)):
                    continue
                if function.name == "rpc_call":
                    continue  # the gateway's definition itself
                service, command = (_literal(a) for a in (node.args + [None, None])[:2]
                                    ) if len(node.args) >= 2 else (None, None)
                where = f"{relative}:{node.lineno}"
                if service and command:
                    found.hops.append(Hop(service, command, where))
                elif (service and isinstance(node.args[1], ast.Name)
                      and node.args[1].id in params):
                    wrappers[function.name] = (service, params.index(node.args[1].id))
                else:
                    found.dynamic.add((caller, function.name))
        for node in ast.walk(tree):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and (
                    node.func.id in wrappers):
                service, index = wrappers[node.func.id]
                command = _literal(node.args[index]) if len(node.args) > index else None
                if command:
                    found.hops.append(Hop(service, command, f"{relative}:{node.lineno}"))
                else:
                    found.dynamic.add((caller, node.func.id))
        for cls in (n for n in ast.walk(tree) if isinstance(n, ast.ClassDef)):
            proxies = {}
            for statement in cls.body:
                if (isinstance(statement, ast.Assign) and isinstance(statement.value, ast.Call)
                        and getattr(statement.value.func, "id", None) == "rpc_proxy"):
                    service = _literal(statement.value.args[0])
                    for target in statement.targets:
                        if isinstance(target, ast.Name) and service:
                            proxies[target.id] = service
            for node in ast.walk(cls):
                if (isinstance(node, ast.Attribute) and isinstance(node.value, ast.Attribute)
                        and getattr(node.value.value, "id", None) == "self"
                        and node.value.attr in proxies):
                    found.hops.append(Hop(proxies[node.value.attr], node.attr,
                                          f"{relative}:{node.lineno}"))
    return found


@pytest.fixture(scope="module")
def found() -> Found:
    return scan_hops()


def test_every_hop_in_the_code_is_declared(found: Found) -> None:
    undeclared = [h for h in found.hops if not registry.is_declared(h.service, h.command)]
    assert undeclared == [], "calls the registry does not declare (add them or fix the call)"
    services_called = {h.service for h in found.hops}
    # the scanner still sees the gateway's calls and the rules engine's (a rename would hide them)
    assert {"leads", "sales", "rules"} <= services_called
    assert Hop("leads", "assign_lead", "") in {Hop(h.service, h.command, "") for h in found.hops
                                               if h.where.startswith("services/rules/")}
    assert Hop("sales", "funnel", "") in {Hop(h.service, h.command, "") for h in found.hops}


def test_every_hop_of_the_rules_service_has_a_client(found: Found) -> None:
    rules_hops = {h.service for h in found.hops if h.where.startswith("services/rules/")}
    assert rules_hops <= set(registry.rule_callable_services())


def test_hops_with_a_variable_target_are_known(found: Found) -> None:
    assert found.dynamic == DYNAMIC_HOPS, (
        "a hop whose service or command is a variable: make it a literal, or add it to "
        "DYNAMIC_HOPS with the test that checks its targets")


def test_record_reads_are_declared() -> None:
    from services.gateway import references

    for record_type, (service, command, _) in references.RECORD_READS.items():
        assert registry.is_declared(service, command), record_type


def test_the_scanner_sees_what_it_must(tmp_path: Path) -> None:
    """The scanner itself: a literal call, a wrapper's call and a proxy's method."""
    source = '''
class Thing:
    leads = rpc_proxy("leads")

    def go(self):
        self.leads.no_such_command()
        rpc_call("sales", "nope")
        self.ports.call("rules", "missing")
        report("also_not")

def report(method):
    return rpc_call("sales", method)
'''
    module = ast.parse(source)
    calls = [n for n in ast.walk(module) if isinstance(n, ast.Call) and _is_hop_call(n)]
    assert len(calls) == 3
    folder = tmp_path / "services" / "demo"
    folder.mkdir(parents=True)
    (folder / "thing.py").write_text(source)
    seen = {(h.service, h.command) for h in scan_hops(tmp_path).hops}
    assert seen == {("leads", "no_such_command"), ("sales", "nope"), ("rules", "missing"),
                    ("sales", "also_not")}


# --------------------------------------------------------------------------- generated files


def test_the_generated_deployment_files_are_current() -> None:
    stale = [str(p.relative_to(ROOT)) for p in generate.stale()]
    assert stale == [], "stale: run `make generate` and commit what it wrote"


def test_devctl_lists_what_the_registry_says(tmp_path: Path) -> None:
    assert devctl.SERVICES == registry.start_order()
    env = {"CRM_DATA_DIR": str(tmp_path)}
    specs = devctl.plan(env, tmp_path, list(devctl.selected_services(env)))
    assert [(s.name, s.address, s.argv[-1]) for s in specs[:-1]] == [
        ("rules", "127.0.0.1:8105", "services.rules.service:RulesService"),
        ("leads", "127.0.0.1:8101", "services.leads.service:LeadsService"),
        ("sales", "127.0.0.1:8102", "services.sales.service:SalesService"),
        ("service_desk", "127.0.0.1:8104", "services.service_desk.service:ServiceDeskService"),
        ("contracts", "127.0.0.1:8103", "services.contracts.service:ContractsService"),
    ]
    with pytest.raises(devctl.DevctlError, match="unknown service.*billing"):
        devctl.selected_services(env, ["billing"])


@pytest.mark.parametrize("argv", [
    ["deploy/devctl.py", "--help"],
    ["-m", "deploy.generate", "--check"],
])
def test_devctl_and_the_generator_need_no_virtualenv(argv: list[str]) -> None:
    """`-S`: no site-packages, so only the standard library (and the project) can be imported."""
    result = subprocess.run([sys.executable, "-S", *argv], cwd=ROOT, capture_output=True,
                            text=True, timeout=60)
    assert result.returncode == 0, result.stderr + result.stdout
