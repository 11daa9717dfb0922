#!/usr/bin/env python3
"""Run the CRM on one machine: broker check, migrations, one process per service, the gateway.

    .venv/bin/python deploy/devctl.py start            # what `make run` does
    .venv/bin/python deploy/devctl.py status
    .venv/bin/python deploy/devctl.py stop
    .venv/bin/python deploy/devctl.py ensure-broker    # what `make test` does before pytest

The same is importable (`start_system`, `stop_system`, `status`, `ensure_broker`) for the e2e
fixture. Only the standard library is imported at module level, so `stop` and `status` work even
without the virtualenv; kombu is used for the broker check when it is installed.

State lives in the run directory (`CRM_RUN_DIR`, default `var/run`): `<name>.pid`,
`logs/<name>.log`, `specs.json` (how each process was started, so one can be restarted),
`seed.json` (the demo organisation's keys) and `broker.json` (present only when devctl started
the broker itself, so `stop` knows it may stop it).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # run as a script, only deploy/ is on the path
    sys.path.insert(0, str(ROOT))

from shared import registry  # noqa: E402 - standard library only, like this module

# The nameko services started by `make run`, the e2e fixture, status and stop, in start order
# (rules first: its queue receives every event): the present services of shared/registry.py.
# Each runs as `nameko run --config deploy/nameko.yaml <service_target(name)>` with its own HTTP
# port (WEB_SERVER_ADDRESS) for /health and /metrics.
SERVICES: tuple[str, ...] = registry.start_order()


def service_target(name: str, env: Mapping[str, str] | None = None) -> str:
    """What `nameko run` runs: `services.<name>.service:<Name>Service` (e.g. ServiceDeskService).

    The class is named because a bare module would also pick up imported mixins with entrypoints.
    """
    return registry.get(name, env).target


GATEWAY = "gateway"
DEFAULT_AMQP_URI = "amqp://guest:guest@127.0.0.1:5672/"
DEFAULT_GATEWAY_BIND = "127.0.0.1:8000"
# The service desk's inbound SMTP listener under `make run` (services/service_desk/README.md).
SMTP_LISTEN_ENV = "SERVICE_DESK_SMTP_LISTEN"
DEFAULT_SMTP_LISTEN = "127.0.0.1:2525"
NAMEKO_CONFIG = ROOT / "deploy" / "nameko.yaml"
GUNICORN_CONFIG = ROOT / "services" / "gateway" / "gunicorn_conf.py"
DEFINITIONS = ROOT / "deploy" / "rabbitmq" / "definitions.json"
STOP_TIMEOUT = 15.0
LOCAL_HOSTS = {"127.0.0.1", "localhost", "::1", ""}
EXTRA_SBIN = ("/usr/sbin", "/usr/local/sbin", "/opt/homebrew/sbin", "/usr/local/opt/rabbitmq/sbin")

Log = Callable[[str], None]

# Children started by this interpreter: polled so that a dead child is reaped, not a zombie.
_children: dict[int, subprocess.Popen] = {}


class DevctlError(RuntimeError):
    """A failure with a message meant for the person at the terminal."""


# --------------------------------------------------------------------------- configuration


def venv_bin() -> Path:
    here = Path(sys.executable).parent
    if (here / "nameko").exists():
        return here
    return ROOT / ".venv" / "bin"


def python_exe() -> str:
    candidate = venv_bin() / "python"
    return str(candidate) if candidate.exists() else sys.executable


def default_run_dir(env: Mapping[str, str] | None = None) -> Path:
    env = os.environ if env is None else env
    return Path(env.get("CRM_RUN_DIR") or ROOT / "var" / "run").resolve()


def default_data_dir(env: Mapping[str, str]) -> Path:
    return Path(env.get("CRM_DATA_DIR") or ROOT / "var" / "data").resolve()


def selected_services(env: Mapping[str, str], services: Iterable[str] | None = None) -> list[str]:
    if services is None:
        raw = env.get("CRM_SERVICES", "")
        services = [s.strip() for s in raw.replace(" ", ",").split(",") if s.strip()] or (
            registry.start_order(env))
    chosen = list(dict.fromkeys(services))
    known = registry.names(env)
    unknown = [s for s in chosen if s not in known]
    if unknown:
        raise DevctlError(
            f"unknown service(s): {', '.join(unknown)} (known: {', '.join(known)})"
        )
    return chosen


def service_address(name: str, env: Mapping[str, str]) -> str:
    """`CRM_<NAME>_WEB_ADDRESS` or 127.0.0.1 and the service's fixed port."""
    override = env.get(f"CRM_{name.upper()}_WEB_ADDRESS")
    if override:
        return override
    port = registry.ports(env).get(name)
    if port is None:
        raise DevctlError(f"no port for {name}: add it to shared/registry.py "
                          f"or set CRM_{name.upper()}_WEB_ADDRESS")
    return f"127.0.0.1:{port}"


def mask_uri(uri: str) -> str:
    parts = urllib.parse.urlsplit(uri)
    if parts.password:
        netloc = parts.netloc.replace(f":{parts.password}@", ":***@")
        return urllib.parse.urlunsplit(parts._replace(netloc=netloc))
    return uri


def amqp_endpoint(uri: str) -> tuple[str, int, str]:
    """Host, port and vhost of an AMQP URI."""
    parts = urllib.parse.urlsplit(uri)
    vhost = urllib.parse.unquote(parts.path[1:]) if len(parts.path) > 1 else "/"
    return parts.hostname or "127.0.0.1", parts.port or 5672, vhost


def with_vhost(uri: str, vhost: str) -> str:
    parts = urllib.parse.urlsplit(uri)
    return urllib.parse.urlunsplit(parts._replace(path="/" + urllib.parse.quote(vhost, safe="")))


def http_get(url: str, timeout: float = 2.0) -> tuple[int, bytes]:
    """GET bypassing any HTTP proxy from the environment (everything here is local)."""
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(url, timeout=timeout) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


# --------------------------------------------------------------------------- broker


def broker_problem(uri: str, timeout: float = 5.0) -> str | None:
    """None when an AMQP connection to `uri` works, else why not."""
    host, port, _ = amqp_endpoint(uri)
    try:
        with socket.create_connection((host, port), timeout=timeout):
            pass
    except OSError as exc:
        return f"nothing accepts connections at {host}:{port} ({exc})"
    try:
        import kombu
    except ImportError:
        return None  # TCP is all we can check without the virtualenv
    try:
        with kombu.Connection(uri, connect_timeout=timeout) as connection:
            connection.ensure_connection(max_retries=1)
    except Exception as exc:  # noqa: BLE001 - any failure is reported as the reason
        return f"{host}:{port} accepts TCP but an AMQP connection failed: {exc!r}"
    return None


def find_tool(name: str) -> str | None:
    path = os.pathsep.join([os.environ.get("PATH", ""), *EXTRA_SBIN])
    return shutil.which(name, path=path)


def broker_instructions(uri: str, reason: str) -> str:
    return f"""No RabbitMQ broker is reachable at {mask_uri(uri)}: {reason}.
Do one of these, then run the command again:
  Debian/Ubuntu:  sudo apt-get install -y rabbitmq-server && sudo rabbitmq-server -detached
                  (or: sudo systemctl enable --now rabbitmq-server)
  macOS:          brew install rabbitmq && brew services start rabbitmq
  Docker:         docker run -d --name crm-rabbitmq -p 5672:5672 rabbitmq:3.13
  Elsewhere:      export AMQP_URI=amqp://USER:PASSWORD@HOST:5672/VHOST"""


def wait_for_broker(uri: str, timeout: float, log: Log) -> None:
    deadline = time.monotonic() + timeout
    next_note = time.monotonic() + 10
    while True:
        problem = broker_problem(uri, timeout=3)
        if problem is None:
            return
        if time.monotonic() > deadline:
            raise DevctlError(f"RabbitMQ did not come up within {timeout:.0f}s: {problem}")
        if time.monotonic() > next_note:
            log("  ... still waiting for RabbitMQ")
            next_note = time.monotonic() + 10
        time.sleep(1)


def install_rabbitmq(log: Log) -> None:
    log("RabbitMQ is not installed; installing the Debian package rabbitmq-server (apt-get) ...")
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    for argv in (
        ["apt-get", "update"],
        ["apt-get", "install", "-y", "--no-install-recommends", "rabbitmq-server"],
    ):
        log("  $ " + " ".join(argv))
        result = subprocess.run(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        if result.returncode != 0:
            tail = "\n".join(result.stdout.decode(errors="replace").splitlines()[-20:])
            raise DevctlError(f"`{' '.join(argv)}` failed ({result.returncode}):\n{tail}")


# OS packages the contracts service needs to render quote PDFs with WeasyPrint: Pango (text
# layout), HarfBuzz's subsetting library (without it CJK font subsetting falls back to pure
# Python fontTools: 15-25 s per document over a 17 MB CJK font instead of milliseconds) and a
# CJK font (WenQuanYi Zen Hei) so Chinese text is embedded, never shown as boxes.
PDF_OS_PACKAGES = ("libpango-1.0-0", "libpangoft2-1.0-0", "libharfbuzz-subset0",
                   "fonts-wqy-zenhei")


def missing_os_packages(packages: Iterable[str]) -> list[str]:
    """The Debian packages of `packages` not installed (all of them when dpkg is absent)."""
    if not shutil.which("dpkg-query"):
        return list(packages)
    missing = []
    for package in packages:
        result = subprocess.run(["dpkg-query", "-W", "-f=${Status}", package],
                                stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        if result.returncode != 0 or b"install ok installed" not in result.stdout:
            missing.append(package)
    return missing


def apt_install(packages: list[str], log: Log) -> None:
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    for argv in (
        ["apt-get", "update"],
        ["apt-get", "install", "-y", "--no-install-recommends", *packages],
    ):
        log("  $ " + " ".join(argv))
        result = subprocess.run(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        if result.returncode != 0:
            tail = "\n".join(result.stdout.decode(errors="replace").splitlines()[-20:])
            raise DevctlError(f"`{' '.join(argv)}` failed ({result.returncode}):\n{tail}")


def ensure_pdf_packages(log: Log = print, install: bool = True) -> list[str]:
    """Install (apt-get, as root) the OS packages PDF rendering needs; answer what was missing.

    Not root or no apt-get: raises DevctlError naming the packages and the command to run.
    """
    missing = missing_os_packages(PDF_OS_PACKAGES)
    if not missing:
        return []
    if install and hasattr(os, "geteuid") and os.geteuid() == 0 and shutil.which("apt-get"):
        log(f"PDF rendering needs OS packages {', '.join(missing)}; installing (apt-get) ...")
        apt_install(missing, log)
        return missing
    raise DevctlError("PDF rendering (contracts) needs the OS packages " + " ".join(missing)
                      + ":\n  Debian/Ubuntu:  sudo apt-get install -y " + " ".join(missing))


def ensure_broker(
    uri: str | None = None, run_dir: Path | None = None, log: Log = print, install: bool = True
) -> str:
    """Make sure a broker answers at `uri`; start (and install) a local one if we can.

    Returns the URI. Raises DevctlError with instructions when there is nothing we can do.
    """
    uri = uri or os.environ.get("AMQP_URI") or DEFAULT_AMQP_URI
    run_dir = run_dir or default_run_dir()
    problem = broker_problem(uri)
    if problem is None:
        return uri
    host, _, _ = amqp_endpoint(uri)
    if host not in LOCAL_HOSTS or "accepts TCP" in problem:
        # remote, or something listens but refuses us (credentials, vhost): starting another
        # broker would not help
        raise DevctlError(broker_instructions(uri, problem))
    server = find_tool("rabbitmq-server")
    if server is None:
        if install and hasattr(os, "geteuid") and os.geteuid() == 0 and shutil.which("apt-get"):
            install_rabbitmq(log)
            if broker_problem(uri) is None:  # the package's own service start brought it up
                return uri
            server = find_tool("rabbitmq-server")
        if server is None:
            reason = problem + "; rabbitmq-server is not installed"
            raise DevctlError(broker_instructions(uri, reason))
    log(f"Starting RabbitMQ ({server} -detached) ...")
    # Output to a file, not a pipe: the detached node may inherit it and never close it.
    start_log = run_dir / "logs" / "rabbitmq-start.log"
    start_log.parent.mkdir(parents=True, exist_ok=True)
    with open(start_log, "wb") as output:
        returncode = subprocess.call(
            [server, "-detached"], stdin=subprocess.DEVNULL, stdout=output,
            stderr=subprocess.STDOUT, timeout=120,
        )
    if returncode != 0:
        reason = f"`rabbitmq-server -detached` failed: {log_tail(start_log, 15)}"
        raise DevctlError(broker_instructions(uri, reason))
    (run_dir / "broker.json").write_text(
        json.dumps({"started_by": "devctl", "server": server, "at": time.time()}) + "\n"
    )
    wait_for_broker(uri, timeout=120, log=log)
    log(f"RabbitMQ is up at {mask_uri(uri)}")
    return uri


def stop_broker_if_ours(run_dir: Path, log: Log = print) -> None:
    marker = run_dir / "broker.json"
    if not marker.exists():
        return
    ctl = find_tool("rabbitmqctl")
    if ctl is None:
        log("RabbitMQ was started by devctl but rabbitmqctl is not found; leaving it running")
        return
    log("Stopping the RabbitMQ broker devctl started ...")
    result = subprocess.run([ctl, "shutdown"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    if result.returncode == 0:
        marker.unlink()
    else:
        log(result.stdout.decode(errors="replace").strip())


def _rabbitmqctl(*args: str) -> None:
    ctl = find_tool("rabbitmqctl")
    if ctl is None:
        raise FileNotFoundError("rabbitmqctl")
    subprocess.run(
        [ctl, *args], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=60, check=True
    )


@contextlib.contextmanager
def temporary_vhost(base_uri: str, log: Log = print) -> Iterator[str]:
    """A fresh vhost `crm-test-<hex>` on a local broker, deleted afterwards, so tests and
    benchmarks never meet the queues of a running system. Without rabbitmqctl (a remote
    broker, not root) it yields `base_uri` itself."""
    user = urllib.parse.urlsplit(base_uri).username or "guest"
    vhost = f"crm-test-{secrets.token_hex(4)}"
    created = False
    if amqp_endpoint(base_uri)[0] in LOCAL_HOSTS and find_tool("rabbitmqctl"):
        try:
            _rabbitmqctl("add_vhost", vhost)
            created = True
            _rabbitmqctl("set_permissions", "-p", vhost, user, ".*", ".*", ".*")
        except (OSError, subprocess.SubprocessError) as exc:
            log(f"warning: no separate vhost ({exc}); using {base_uri}")
            if created:
                _rabbitmqctl("delete_vhost", vhost)
            created = False
    uri = with_vhost(base_uri, vhost) if created else base_uri
    if created:
        try:
            apply_definitions(uri, log=lambda _: None)
        except Exception as exc:  # noqa: BLE001 - the topology is a convenience here
            log(f"warning: RabbitMQ definitions not applied to {vhost}: {exc!r}")
    try:
        yield uri
    finally:
        if created:
            try:
                _rabbitmqctl("delete_vhost", vhost)
            except (OSError, subprocess.SubprocessError) as exc:
                log(f"warning: could not delete vhost {vhost}: {exc}")


def apply_definitions(uri: str, log: Log = print, path: Path = DEFINITIONS,
                      node: str | None = None) -> None:
    """Declare deploy/rabbitmq/definitions.json's exchanges, queues and bindings in `uri`'s vhost
    over AMQP, and its policies with rabbitmqctl when that is usable (a local broker, as root or
    the rabbitmq user). `node` (default $CRM_RABBITMQ_NODENAME) is the node rabbitmqctl talks
    to, when it is not the machine's default one. Idempotent."""
    import kombu

    definitions = json.loads(path.read_text())
    _, _, vhost = amqp_endpoint(uri)
    with kombu.Connection(uri, connect_timeout=5) as connection:
        channel = connection.default_channel
        for ex in definitions.get("exchanges", []):
            kombu.Exchange(
                ex["name"], type=ex["type"], durable=ex.get("durable", True),
                auto_delete=ex.get("auto_delete", False), arguments=ex.get("arguments") or None,
            )(channel).declare()
        for q in definitions.get("queues", []):
            kombu.Queue(
                q["name"], durable=q.get("durable", True), auto_delete=q.get("auto_delete", False),
                queue_arguments=q.get("arguments") or None,
            )(channel).declare()
        for b in definitions.get("bindings", []):
            if b.get("destination_type", "queue") == "queue":
                channel.queue_bind(b["destination"], b["source"], b.get("routing_key", ""))
            else:
                channel.exchange_bind(b["destination"], b["source"], b.get("routing_key", ""))
    host, _, _ = amqp_endpoint(uri)
    ctl = find_tool("rabbitmqctl")
    policies = definitions.get("policies", [])
    if not policies:
        return
    if ctl is None or host not in LOCAL_HOSTS:
        log(f"note: policies of {path.name} not applied (needs rabbitmqctl on the broker's host)")
        return
    node = node or os.environ.get("CRM_RABBITMQ_NODENAME")
    for policy in policies:
        argv = [
            ctl, *(["-n", node] if node else []), "set_policy", "-p", vhost,
            "--priority", str(policy.get("priority", 0)),
            "--apply-to", policy.get("apply-to", "queues"),
            policy["name"], policy["pattern"], json.dumps(policy["definition"]),
        ]
        result = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        if result.returncode != 0:
            log(f"note: policy {policy['name']} not applied: "
                f"{result.stdout.decode(errors='replace').strip()[-300:]}")


# --------------------------------------------------------------------------- processes


@dataclass
class ProcessSpec:
    name: str
    argv: list[str]
    env: dict[str, str]  # the complete environment of the process
    address: str  # host:port of its HTTP server
    log: str
    fresh_dirs: list[str] = field(default_factory=list)  # emptied before every launch

    @property
    def health_url(self) -> str:
        return f"http://{self.address}/health"


def plan(
    env: Mapping[str, str],
    run_dir: Path,
    services: list[str],
    process_env: Mapping[str, Mapping[str, str]] | None = None,
) -> list[ProcessSpec]:
    """How to start every process: the services in order, then the gateway.

    `process_env` adds variables: key "*" for every process, or a process name.
    """
    process_env = process_env or {}
    base = dict(env)
    base.update(
        AMQP_URI=base.get("AMQP_URI") or DEFAULT_AMQP_URI,
        CRM_DATA_DIR=str(default_data_dir(env)),
        CRM_RUN_DIR=str(run_dir),
        PYTHONUNBUFFERED="1",
        PYTHONPATH=os.pathsep.join(p for p in (str(ROOT), base.get("PYTHONPATH", "")) if p),
    )
    base.setdefault("PSYCOPG_WAIT_FUNC", "wait_select")
    base.update(process_env.get("*", {}))
    bin_dir = venv_bin()
    logs = run_dir / "logs"
    specs = []
    for name in services:
        address = service_address(name, env)
        proc_env = dict(base, WEB_SERVER_ADDRESS=address, CRM_SERVICE_NAME=name)
        proc_env.pop("PROMETHEUS_MULTIPROC_DIR", None)  # one process per service: no multiproc
        proc_env.update(process_env.get(name, {}))
        argv = [str(bin_dir / "nameko"), "run", "--config", str(NAMEKO_CONFIG),
                service_target(name, env)]
        specs.append(ProcessSpec(name, argv, proc_env, address, str(logs / f"{name}.log")))
    bind = env.get("CRM_GATEWAY_BIND") or DEFAULT_GATEWAY_BIND
    prom_dir = run_dir / "prometheus-gateway"
    gw_env = dict(base, CRM_GATEWAY_BIND=bind, PROMETHEUS_MULTIPROC_DIR=str(prom_dir))
    gw_env.update(process_env.get(GATEWAY, {}))
    argv = [str(bin_dir / "gunicorn")]
    if GUNICORN_CONFIG.exists():
        argv += ["-c", str(GUNICORN_CONFIG)]
    argv += ["--bind", bind, "services.gateway.wsgi:app"]
    specs.append(
        ProcessSpec(GATEWAY, argv, gw_env, bind, str(logs / f"{GATEWAY}.log"), [str(prom_dir)])
    )
    return specs


def save_specs(run_dir: Path, specs: list[ProcessSpec]) -> None:
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "specs.json").write_text(json.dumps([asdict(s) for s in specs], indent=1) + "\n")


def load_specs(run_dir: Path) -> list[ProcessSpec]:
    path = run_dir / "specs.json"
    if not path.exists():
        return []
    return [ProcessSpec(**raw) for raw in json.loads(path.read_text())]


def pid_file(run_dir: Path, name: str) -> Path:
    return run_dir / f"{name}.pid"


def hold_file(run_dir: Path, name: str) -> Path:
    """Present while `name` was stopped on purpose: the supervisor leaves it stopped."""
    return run_dir / f"{name}.held"


def read_pid(run_dir: Path, name: str) -> int | None:
    try:
        return int(pid_file(run_dir, name).read_text().strip())
    except (OSError, ValueError):
        return None


def is_alive(pid: int | None, spec: ProcessSpec | None = None) -> bool:
    if not pid:
        return False
    child = _children.get(pid)
    if child is not None:
        return child.poll() is None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    proc = Path(f"/proc/{pid}")
    if proc.exists():
        try:
            if proc.joinpath("stat").read_text().rsplit(")", 1)[1].split()[0] == "Z":
                return False
            # The pid may have been reused by an unrelated process since the pid file was written.
            if spec is not None and spec.argv[-1] not in proc.joinpath("cmdline").read_text():
                return False
        except (OSError, IndexError):
            pass
    return True


def running_pid(run_dir: Path, spec: ProcessSpec) -> int | None:
    pid = read_pid(run_dir, spec.name)
    return pid if is_alive(pid, spec) else None


def log_tail(path: str | Path, lines: int = 40) -> str:
    try:
        text = Path(path).read_text(errors="replace")
    except OSError:
        return "(no log)"
    return "\n".join(text.splitlines()[-lines:])


def launch(spec: ProcessSpec, run_dir: Path) -> int:
    """Start one process detached (its own session), output to its log, pid to its pid file."""
    for directory in spec.fresh_dirs:
        shutil.rmtree(directory, ignore_errors=True)
        Path(directory).mkdir(parents=True)
    log_path = Path(spec.log)
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "ab") as log_file:
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S")
        log_file.write(f"\n=== devctl {stamp} start: {' '.join(spec.argv)}\n".encode())
        log_file.flush()
        process = subprocess.Popen(
            spec.argv, cwd=ROOT, env=spec.env, stdin=subprocess.DEVNULL, stdout=log_file,
            stderr=subprocess.STDOUT, start_new_session=True,
        )
    _children[process.pid] = process
    pid_file(run_dir, spec.name).write_text(f"{process.pid}\n")
    return process.pid


def wait_healthy(spec: ProcessSpec, pid: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    last = "no answer yet"
    while True:
        if not is_alive(pid):
            code = _children[pid].returncode if pid in _children else "?"
            raise DevctlError(
                f"{spec.name} exited (code {code}) while starting; last lines of {spec.log}:\n"
                + log_tail(spec.log)
            )
        try:
            status_code, body = http_get(spec.health_url, timeout=2)
            if status_code == 200:
                return
            last = f"HTTP {status_code}: {body[:200].decode(errors='replace')}"
        except OSError as exc:
            last = str(exc)
        if time.monotonic() > deadline:
            raise DevctlError(
                f"{spec.name} did not answer {spec.health_url} with 200 within {timeout:.0f}s "
                f"({last}); see its log {spec.log}:\n" + log_tail(spec.log)
            )
        time.sleep(0.2)


def terminate(pids: dict[str, int], timeout: float = STOP_TIMEOUT, log: Log = print) -> None:
    """SIGTERM each process group, wait up to `timeout`, then SIGKILL what is left."""
    for pid in pids.values():
        try:
            os.killpg(pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
        except PermissionError:
            os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    remaining = dict(pids)
    while remaining and time.monotonic() < deadline:
        remaining = {n: p for n, p in remaining.items() if is_alive(p)}
        if remaining:
            time.sleep(0.1)
    for name, pid in remaining.items():
        log(f"{name} (pid {pid}) did not stop within {timeout:.0f}s; sending SIGKILL")
        try:
            os.killpg(pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
    for pid in pids.values():
        child = _children.pop(pid, None)
        if child is not None:
            try:
                child.wait(timeout=5)
            except subprocess.TimeoutExpired:
                pass


def run_step(argv: list[str], env: Mapping[str, str], what: str) -> str:
    result = subprocess.run(
        argv, cwd=ROOT, env=dict(env), capture_output=True
    )
    if result.returncode != 0:
        raise DevctlError(
            f"{what} failed (exit {result.returncode}): {' '.join(argv)}\n"
            + result.stderr.decode(errors="replace")[-3000:]
            + result.stdout.decode(errors="replace")[-1000:]
        )
    return result.stdout.decode(errors="replace")


def migrate(env: Mapping[str, str], services: list[str], log: Log = print) -> None:
    with_database = registry.migrated(env)
    names = [s for s in [*services, GATEWAY] if s in with_database]
    skipped = [s for s in [*services, GATEWAY] if s not in names]
    if skipped:
        log(f"note: no database for {', '.join(skipped)}; not migrated")
    if names:
        log(f"Migrating {', '.join(names)} ...")
        run_step([python_exe(), "-m", "shared.migrations", *names], env, "migration")


def parse_seed(output: str) -> dict:
    start = output.find("{")
    try:
        return json.loads(output[start:]) if start >= 0 else {}
    except json.JSONDecodeError as exc:
        raise DevctlError(f"the seed did not print JSON ({exc}):\n{output[-2000:]}") from exc


def seed(env: Mapping[str, str], run_dir: Path, services: Iterable[str] = (),
         log: Log = print) -> dict:
    log("Seeding the demo organisation ...")
    output = run_step([python_exe(), "-m", "services.gateway.seed"], env, "seeding")
    users = parse_seed(output)
    (run_dir / "seed.json").write_text(json.dumps(users, indent=1, ensure_ascii=False) + "\n")
    # Demo data of a service beyond the gateway's organisation (its `seed` in the registry), run
    # after the gateway's seed when the service is part of the system (each is idempotent).
    for name in services:
        module = registry.get(name, env).seed
        if module:
            log(f"Seeding {name} ...")
            run_step([python_exe(), "-m", module], env, f"seeding {name}")
    return users


@dataclass
class SystemInfo:
    url: str
    run_dir: Path
    amqp_uri: str
    specs: list[ProcessSpec]
    pids: dict[str, int]
    users: dict  # the seed: {username: {"id", "role", "api_key"}}
    already_running: bool = False

    def spec(self, name: str) -> ProcessSpec:
        return next(s for s in self.specs if s.name == name)


def start_system(
    env: Mapping[str, str] | None = None,
    run_dir: Path | str | None = None,
    services: Iterable[str] | None = None,
    *,
    process_env: Mapping[str, Mapping[str, str]] | None = None,
    check_broker: bool = True,
    start_broker: bool = True,
    seed_demo: bool = True,
    supervise: bool = False,
    timeout: float | None = None,
    log: Log = print,
) -> SystemInfo:
    """Start whatever of the system is not running; wait for health; seed.

    `env` is the base environment of every process (default os.environ): AMQP_URI, CRM_DATA_DIR,
    <SERVICE>_DATABASE_URL, CRM_GATEWAY_BIND, CRM_<NAME>_WEB_ADDRESS, CRM_SERVICES are read
    from it. On failure the processes started by this call are stopped again. With `supervise`
    a supervisor process restarts any process that dies (see `supervise`).
    """
    env = dict(os.environ if env is None else env)
    run_dir = Path(run_dir).resolve() if run_dir else default_run_dir(env)
    timeout = timeout or float(env.get("CRM_START_TIMEOUT", "90"))
    names = selected_services(env, services)
    uri = env.get("AMQP_URI") or DEFAULT_AMQP_URI
    env["AMQP_URI"] = uri
    run_dir.mkdir(parents=True, exist_ok=True)
    if start_broker:
        ensure_broker(uri, run_dir, log)
        ensure_pdf_packages(log)
    elif check_broker:
        problem = broker_problem(uri)
        if problem:
            raise DevctlError(broker_instructions(uri, problem))

    specs = plan(env, run_dir, names, process_env)
    pids = {s.name: pid for s in specs if (pid := running_pid(run_dir, s))}
    to_start = [s for s in specs if s.name not in pids]
    url = "http://" + specs[-1].address
    if not to_start:
        users = json.loads((run_dir / "seed.json").read_text()) if (
            run_dir / "seed.json").exists() else {}
        if supervise:
            start_supervisor(run_dir, log)
        return SystemInfo(url, run_dir, uri, load_specs(run_dir) or specs, pids, users, True)
    if pids:
        log(f"Already running: {', '.join(pids)}")
        # keep the recorded specs of what runs, so a later restart starts it the same way
        recorded = {s.name: s for s in load_specs(run_dir)}
        specs = [recorded.get(s.name, s) if s.name in pids else s for s in specs]
    save_specs(run_dir, specs)
    try:
        apply_definitions(uri, log, node=env.get("CRM_RABBITMQ_NODENAME"))
    except Exception as exc:  # noqa: BLE001 - the dead-letter topology is helpful, not required
        log(f"note: RabbitMQ definitions not applied: {exc!r}")
    migrate(specs[0].env, names, log)

    started: dict[str, int] = {}
    try:
        for spec in to_start:
            hold_file(run_dir, spec.name).unlink(missing_ok=True)
            started[spec.name] = launch(spec, run_dir)
            log(f"Started {spec.name:<13} pid {started[spec.name]:<7} http://{spec.address}  "
                f"log {spec.log}")
        for spec in to_start:
            wait_healthy(spec, started[spec.name], timeout)
        log("All processes are healthy.")
        users = seed(specs[-1].env, run_dir, names, log) if seed_demo else {}
        if supervise:
            start_supervisor(run_dir, log)
    except BaseException:
        terminate(started, log=log)
        for name in started:
            pid_file(run_dir, name).unlink(missing_ok=True)
        raise
    return SystemInfo(url, run_dir, uri, specs, {**pids, **started}, users)


def start_process(run_dir: Path | str, name: str, timeout: float = 90) -> int:
    """(Re)start one recorded process the way it was started, and wait for its health."""
    run_dir = Path(run_dir)
    spec = next((s for s in load_specs(run_dir) if s.name == name), None)
    if spec is None:
        raise DevctlError(f"{name} is not a process of the system in {run_dir}")
    hold_file(run_dir, name).unlink(missing_ok=True)
    pid = running_pid(run_dir, spec)
    if pid is None:
        pid = launch(spec, run_dir)
    wait_healthy(spec, pid, timeout)
    return pid


def stop_system(
    run_dir: Path | str | None = None,
    names: Iterable[str] | None = None,
    *,
    timeout: float = STOP_TIMEOUT,
    stop_broker: bool = False,
    log: Log = print,
) -> list[str]:
    """Stop the recorded processes (or just `names`); returns the names that were running."""
    run_dir = Path(run_dir).resolve() if run_dir else default_run_dir()
    specs = {s.name: s for s in load_specs(run_dir)}
    if names is None:
        stop_supervisor(run_dir, log)
    else:
        for name in names:  # stopped on purpose: the supervisor must not bring it back
            hold_file(run_dir, name).write_text(f"{time.time()}\n")
    wanted = list(names) if names is not None else [
        *(n for n in specs if n == GATEWAY),  # the gateway first: stop taking requests
        *(n for n in specs if n != GATEWAY),
        *(p.stem for p in run_dir.glob("*.pid") if p.stem not in specs),
    ]
    pids = {}
    for name in wanted:
        pid = read_pid(run_dir, name)
        if pid and is_alive(pid, specs.get(name)):
            pids[name] = pid
    if pids:
        log(f"Stopping {', '.join(f'{n} ({p})' for n, p in pids.items())} ...")
        terminate(pids, timeout, log)
    for name in wanted:
        pid_file(run_dir, name).unlink(missing_ok=True)
        if names is None:
            hold_file(run_dir, name).unlink(missing_ok=True)
    if stop_broker:
        stop_broker_if_ours(run_dir, log)
    return list(pids)


def status(run_dir: Path | str | None = None) -> list[dict]:
    """One row per recorded process: name, pid, running, address, health."""
    run_dir = Path(run_dir).resolve() if run_dir else default_run_dir()
    rows = []
    for spec in load_specs(run_dir):
        pid = running_pid(run_dir, spec)
        health = "-"
        if pid:
            try:
                code, _ = http_get(spec.health_url, timeout=2)
                health = "ok" if code == 200 else f"HTTP {code}"
            except OSError as exc:
                health = f"unreachable ({getattr(exc, 'reason', exc)})"
        rows.append({"name": spec.name, "pid": pid, "running": pid is not None,
                     "address": spec.address, "health": health, "log": spec.log})
    return rows


# --------------------------------------------------------------------------- supervisor

SUPERVISOR = "supervisor"
# Restart back-off: doubles from the first delay up to the cap; a process that stayed up for
# RESET seconds starts again from the first delay.
BACKOFF_FIRST = 1.0
BACKOFF_CAP = 30.0
BACKOFF_RESET = 60.0


@dataclass
class Watched:
    """What the supervisor knows of one process."""

    restarts: int = 0
    delay: float = 0.0  # the back-off before the next restart
    up_since: float | None = None  # monotonic time it was last seen alive
    down_since: float | None = None  # monotonic time it was first seen dead
    unhealthy_since: float | None = None  # monotonic time /health first failed while alive
    healthy_once: bool = False
    last_exit: str = ""  # why it was last restarted: "died" or "unhealthy"
    cause: str = ""  # set when the supervisor itself stopped it


def _supervisor_state_path(run_dir: Path) -> Path:
    return run_dir / "supervisor.json"


def _write_supervisor_state(run_dir: Path, watched: Mapping[str, Watched]) -> None:
    state = {
        name: {"restarts": w.restarts, "last_exit": w.last_exit, "backoff_seconds": w.delay}
        for name, w in watched.items()
    }
    tmp = _supervisor_state_path(run_dir).with_suffix(".tmp")
    tmp.write_text(json.dumps(state, indent=1) + "\n")
    tmp.replace(_supervisor_state_path(run_dir))


def supervisor_state(run_dir: Path | str) -> dict[str, dict]:
    """{name: {"restarts", "last_exit", "backoff_seconds"}} as the supervisor last wrote it."""
    try:
        return json.loads(_supervisor_state_path(Path(run_dir)).read_text())
    except (OSError, ValueError):
        return {}


def _healthy(spec: ProcessSpec) -> bool:
    try:
        code, _ = http_get(spec.health_url, timeout=2)
    except OSError:
        return False
    return code == 200


def supervise(
    run_dir: Path | str,
    *,
    poll_seconds: float = 0.5,
    health_seconds: float = 5.0,
    unhealthy_limit: float = 60.0,
    log: Log = print,
    should_stop: Callable[[], bool] = lambda: False,
) -> None:
    """Keep every recorded process running, as Kubernetes does in production.

    A process that died is started again the way it was started, after a back-off that doubles
    from 1 s up to 30 s (reset once it stays up for a minute), so a process that cannot start
    does not spin. A process whose /health has failed for `unhealthy_limit` seconds after it
    was once healthy (a stalled consumer) is stopped and started again, like a failed liveness
    probe. A process stopped on purpose (`stop_system(names=...)`, its `.held` file) is left
    alone. Ends on SIGTERM/SIGINT or when `should_stop()` says so.
    """
    run_dir = Path(run_dir)
    stopping = False

    def on_signal(signum: int, _frame: object) -> None:
        nonlocal stopping
        stopping = True

    for signum in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(ValueError):  # not the main thread (a test)
            signal.signal(signum, on_signal)
    watched: dict[str, Watched] = {}
    next_health = 0.0
    log(f"supervisor: watching the processes recorded in {run_dir}")
    while not stopping and not should_stop():
        now = time.monotonic()
        check_health = now >= next_health
        if check_health:
            next_health = now + health_seconds
        changed = False
        for spec in load_specs(run_dir):
            w = watched.setdefault(spec.name, Watched())
            if hold_file(run_dir, spec.name).exists():
                w.down_since = w.up_since = w.unhealthy_since = None
                continue
            pid = running_pid(run_dir, spec)
            if pid is not None:
                w.down_since = None
                if w.up_since is None:
                    w.up_since = now
                if now - w.up_since >= BACKOFF_RESET:
                    w.delay = 0.0
                if check_health:
                    if _healthy(spec):
                        w.healthy_once, w.unhealthy_since = True, None
                    elif w.healthy_once:
                        w.unhealthy_since = w.unhealthy_since or now
                        if now - w.unhealthy_since >= unhealthy_limit:
                            log(f"supervisor: {spec.name} (pid {pid}) unhealthy for "
                                f"{now - w.unhealthy_since:.0f}s; restarting it")
                            terminate({spec.name: pid}, log=log)
                            w.cause = "unhealthy"
                            w.unhealthy_since = None
                            changed = True
                continue
            if w.down_since is None:
                w.down_since = now
                w.up_since = w.unhealthy_since = None
                w.healthy_once = False
                w.last_exit, w.cause = w.cause or "died", ""
                log(f"supervisor: {spec.name} is not running; restarting it in {w.delay:.0f}s")
            if now - w.down_since < w.delay:
                continue
            new_pid = launch(spec, run_dir)
            w.restarts += 1
            w.down_since = None
            w.delay = min(BACKOFF_CAP, max(BACKOFF_FIRST, w.delay * 2))
            log(f"supervisor: started {spec.name} again, pid {new_pid} (restart {w.restarts}; "
                f"next back-off {w.delay:.0f}s)")
            changed = True
        for child_pid, child in list(_children.items()):  # reap what we started and lost
            if child.poll() is not None:
                _children.pop(child_pid, None)
        if changed or not _supervisor_state_path(run_dir).exists():
            _write_supervisor_state(run_dir, watched)
        time.sleep(poll_seconds)
    log("supervisor: stopping")


def start_supervisor(run_dir: Path, log: Log = print) -> int:
    """Start `devctl supervise` detached, unless one runs for this run directory."""
    pid = read_pid(run_dir, SUPERVISOR)
    if is_alive(pid):
        return pid  # type: ignore[return-value]
    _supervisor_state_path(run_dir).unlink(missing_ok=True)
    spec = ProcessSpec(
        SUPERVISOR,
        [python_exe(), str(Path(__file__).resolve()), "--run-dir", str(run_dir), "supervise"],
        dict(os.environ, PYTHONUNBUFFERED="1"), "", str(run_dir / "logs" / "supervisor.log"),
    )
    pid = launch(spec, run_dir)
    log(f"Started {SUPERVISOR:<13} pid {pid:<7} restarts what dies; log {spec.log}")
    return pid


def stop_supervisor(run_dir: Path, log: Log = print) -> None:
    pid = read_pid(run_dir, SUPERVISOR)
    if is_alive(pid):
        terminate({SUPERVISOR: pid}, log=log)  # type: ignore[dict-item]
    pid_file(run_dir, SUPERVISOR).unlink(missing_ok=True)


# --------------------------------------------------------------------------- command line


def build_console() -> None:
    """Build the web console when its build is missing or stale (installing Node.js from the OS
    packages when it can); the API works without it, so a failure is only reported."""
    argv = [python_exe(), "-m", "services.gateway.console.build"]
    if subprocess.run(argv, cwd=ROOT).returncode != 0:
        print("warning: the web console is not built (see above); the API works without it")


def print_welcome(info: SystemInfo) -> None:
    users = info.users
    print()
    print(f"Gateway:  {info.url}")
    print(f"Console:  {info.url}/  (sign in as zhangwei, manager or admin; password demo-password)")
    print(f"Broker:   {mask_uri(info.amqp_uri)}")
    listen = next((spec.env.get(SMTP_LISTEN_ENV) for spec in info.specs
                   if spec.name == "service_desk"), None)
    if listen:
        print(f"Mail in:  smtp://{listen}  (the service desk's SMTP listener: mail to it "
              "becomes tickets)")
    print(f"Logs:     {info.run_dir / 'logs'}")
    admin = users.get("admin", {}).get("api_key")
    rep_name = "zhangwei" if "zhangwei" in users else next(
        (u for u, v in users.items() if "rep" in str(v.get("role", ""))), None)
    rep = users.get(rep_name, {}).get("api_key") if rep_name else None
    if admin:
        print(f"Admin API key:                  {admin}")
    if rep:
        print(f"Sales rep API key ({rep_name}): {rep}")
    if admin:
        print("\nTry:")
        print(f"  curl -s -H 'Authorization: Bearer {admin}' {info.url}/leads")
        lead = json.dumps({"name": "王伟", "phone": "13800138000", "source": "web"},
                          ensure_ascii=False)
        print(f"  curl -s -X POST -H 'Authorization: Bearer {rep or admin}' "
              f"-H 'Content-Type: application/json' \\\n       -d '{lead}' {info.url}/leads")
    print(f"\nAll demo users and keys: {info.run_dir / 'seed.json'}")
    print("Stop with: make stop")


def parse_env_pairs(pairs: list[str]) -> dict[str, str]:
    env = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise DevctlError(f"--env expects KEY=VALUE, got {pair!r}")
        env[key] = value
    return env


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="devctl", description="Run the CRM's processes on this machine.",
        epilog="Environment: AMQP_URI, CRM_DATA_DIR, CRM_RUN_DIR, CRM_SERVICES, CRM_GATEWAY_BIND, "
               "CRM_<SERVICE>_WEB_ADDRESS, <SERVICE>_DATABASE_URL, CRM_START_TIMEOUT.",
    )
    parser.add_argument("--run-dir", type=Path,
                        help="state and logs (default $CRM_RUN_DIR or var/run)")
    parser.add_argument("--services", help=f"comma-separated services (default $CRM_SERVICES or "
                                           f"{','.join(SERVICES)})")
    parser.add_argument("-e", "--env", action="append", default=[], metavar="KEY=VALUE",
                        help="extra environment for every started process (repeatable)")
    commands = parser.add_subparsers(dest="command", required=True)
    start_cmd = commands.add_parser("start", help="broker, migrations, services, gateway, seed")
    start_cmd.add_argument("--no-seed", action="store_true",
                           help="do not seed the demo organisation")
    start_cmd.add_argument("--timeout", type=float, help="seconds to wait for each /health")
    start_cmd.add_argument("--no-supervise", action="store_true",
                           help="do not restart processes that die")
    commands.add_parser("supervise", help="restart recorded processes that die (foreground)")
    stop_cmd = commands.add_parser("stop", help="stop the processes (and a broker devctl started)")
    stop_cmd.add_argument("--keep-broker", action="store_true",
                          help="leave a broker that devctl started running")
    stop_cmd.add_argument("names", nargs="*", help="only these processes")
    status_cmd = commands.add_parser("status", help="which processes run and their health")
    status_cmd.add_argument("--json", action="store_true")
    broker_cmd = commands.add_parser("ensure-broker", help="make sure RabbitMQ is reachable")
    broker_cmd.add_argument("--definitions", action="store_true",
                            help="also declare deploy/rabbitmq/definitions.json")
    commands.add_parser("ensure-os-packages",
                        help="install the OS packages PDF rendering needs (fonts, pango, harfbuzz)")
    logs_cmd = commands.add_parser("logs", help="print the end of a process's log")
    logs_cmd.add_argument("name")
    logs_cmd.add_argument("-n", type=int, default=60)
    args = parser.parse_args(argv)

    env = dict(os.environ)
    env.update(parse_env_pairs(args.env))
    run_dir = (args.run_dir or default_run_dir(env)).resolve()
    services = args.services.split(",") if args.services else None
    try:
        if args.command == "start":
            # The service desk's inbound mail: on at a fixed port for `make run`.
            env.setdefault(SMTP_LISTEN_ENV, DEFAULT_SMTP_LISTEN)
            build_console()
            info = start_system(env, run_dir, services, seed_demo=not args.no_seed,
                                supervise=not args.no_supervise, timeout=args.timeout)
            if info.already_running:
                print(f"Already running ({', '.join(f'{n} {p}' for n, p in info.pids.items())}).")
            print_welcome(info)
        elif args.command == "stop":
            stopped = stop_system(run_dir, args.names or None,
                                  stop_broker=not args.keep_broker and not args.names)
            print("Stopped." if stopped else "Nothing was running.")
        elif args.command == "status":
            rows = status(run_dir)
            uri = env.get("AMQP_URI") or DEFAULT_AMQP_URI
            problem = broker_problem(uri)
            supervisor_pid = read_pid(run_dir, SUPERVISOR)
            supervisor = {"pid": supervisor_pid if is_alive(supervisor_pid) else None,
                          "processes": supervisor_state(run_dir)}
            if args.json:
                print(json.dumps({"broker": problem or "ok", "processes": rows,
                                  "supervisor": supervisor}, indent=1))
            else:
                print(f"broker   {mask_uri(uri)}: {problem or 'ok'}")
                restarts = ", ".join(f"{n} {v['restarts']}" for n, v in
                                     supervisor["processes"].items() if v.get("restarts"))
                state = f"pid {supervisor['pid']}" if supervisor["pid"] else "not running"
                print(f"supervisor {state}{'; restarts: ' + restarts if restarts else ''}")
                if not rows:
                    print(f"no processes recorded in {run_dir}")
                for row in rows:
                    state = f"pid {row['pid']}" if row["running"] else "stopped"
                    print(f"{row['name']:<13} {state:<12} http://{row['address']:<21} "
                          f"health {row['health']}")
            return 0 if rows and all(r["health"] == "ok" for r in rows) else 3
        elif args.command == "ensure-broker":
            uri = ensure_broker(env.get("AMQP_URI") or DEFAULT_AMQP_URI, run_dir)
            if args.definitions:
                apply_definitions(uri)
            print(f"RabbitMQ reachable at {mask_uri(uri)}")
        elif args.command == "ensure-os-packages":
            installed = ensure_pdf_packages()
            print("Installed " + " ".join(installed) if installed
                  else "OS packages for PDF rendering are installed")
        elif args.command == "supervise":
            supervise(run_dir)
        elif args.command == "logs":
            print(log_tail(run_dir / "logs" / f"{args.name}.log", args.n))
    except DevctlError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
