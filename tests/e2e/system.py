"""The whole system for end-to-end tests: every process started by deploy/devctl.py in a
temporary run and data directory, on the test vhost, on free ports.

The gateway reaches the broker through `BrokerProxy`, a TCP forwarder in its own process, so a
test can take the broker away from the gateway (`with system.broker_unavailable(): ...`) and
give it back, without touching the broker the services use.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import subprocess
import sys
import time
import urllib.parse
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import requests

from deploy import devctl

ROOT = Path(__file__).resolve().parents[2]
AUTH_HEADER = "Authorization"
AUTH_SCHEME = "Bearer "
REQUEST_TIMEOUT = 30.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_port(host: str, port: int, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            with socket.create_connection((host, port), timeout=1):
                return
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


# --------------------------------------------------------------------------- TCP proxy


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    except (ConnectionError, OSError):
        pass
    finally:
        with contextlib.suppress(Exception):
            writer.close()


async def _serve_proxy(listen_port: int, target_host: str, target_port: int) -> None:
    async def handle(client_reader, client_writer) -> None:
        try:
            upstream_reader, upstream_writer = await asyncio.open_connection(
                target_host, target_port
            )
        except OSError:
            client_writer.close()
            return
        await asyncio.gather(
            _pipe(client_reader, upstream_writer), _pipe(upstream_reader, client_writer)
        )

    server = await asyncio.start_server(handle, "127.0.0.1", listen_port, reuse_address=True)
    async with server:
        await server.serve_forever()


def proxy_main(argv: list[str] | None = None) -> None:
    """`python -c 'from tests.e2e.system import proxy_main; proxy_main()' PORT HOST PORT`."""
    listen_port, target_host, target_port = (argv or sys.argv[1:])[:3]
    asyncio.run(_serve_proxy(int(listen_port), target_host, int(target_port)))


class BrokerProxy:
    """127.0.0.1:<port> -> the broker. `cut()` kills it (connections reset, new ones refused),
    `restore()` starts it again on the same port."""

    def __init__(self, target_uri: str, log_path: Path) -> None:
        self.target_host, self.target_port, _ = devctl.amqp_endpoint(target_uri)
        self.port = free_port()
        self.log_path = log_path
        self.process: subprocess.Popen | None = None
        parts = urllib.parse.urlsplit(target_uri)
        credentials = parts.netloc.rpartition("@")[0]
        netloc = f"{credentials}@127.0.0.1:{self.port}" if credentials else f"127.0.0.1:{self.port}"
        self.uri = urllib.parse.urlunsplit(parts._replace(netloc=netloc))

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def start(self) -> None:
        if self.running:
            return
        code = "from tests.e2e.system import proxy_main; proxy_main()"
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-c", code, str(self.port), self.target_host,
                 str(self.target_port)],
                cwd=ROOT, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        wait_port("127.0.0.1", self.port)

    def cut(self) -> None:
        if self.process is not None:
            self.process.kill()
            self.process.wait(timeout=10)
            self.process = None

    restore = start
    stop = cut


# --------------------------------------------------------------------------- the system


class System:
    """A running system: `url`, `keys` (username -> API key), `users` (username -> id),
    `roles` (username -> role), HTTP helpers and fault helpers."""

    def __init__(
        self, info: devctl.SystemInfo, proxy: BrokerProxy | None, data_dir: Path
    ) -> None:
        self.info = info
        self.proxy = proxy
        self.data_dir = data_dir
        self.run_dir = info.run_dir
        self.amqp_uri = info.amqp_uri
        self.url = info.url
        self.seed: dict[str, dict[str, Any]] = info.users
        self.keys = {name: user["api_key"] for name, user in info.users.items()}
        self.users = {name: user["id"] for name, user in info.users.items()}
        self.roles = {name: user.get("role") for name, user in info.users.items()}
        self.services = [s.name for s in info.specs if s.name != devctl.GATEWAY]
        self.http = requests.Session()
        self.http.trust_env = False  # no HTTP proxy from the environment for 127.0.0.1
        self._stopped_by_test: set[str] = set()

    # ---- starting and stopping

    @classmethod
    def start(
        cls,
        amqp_uri: str,
        base_dir: Path,
        *,
        services: list[str] | None = None,
        database_urls: Mapping[str, str] | None = None,
        extra_env: Mapping[str, str] | None = None,
        broker_proxy: bool = True,
        supervise: bool = False,
    ) -> System:
        """Without `broker_proxy` the gateway talks to the broker directly (a benchmark: the
        proxy process that lets tests cut the gateway off adds a hop and takes CPU)."""
        run_dir, data_dir = base_dir / "run", base_dir / "data"
        data_dir.mkdir(parents=True, exist_ok=True)
        env = {
            k: v for k, v in os.environ.items()
            if not k.endswith("_DATABASE_URL")
            and not k.endswith("_WEB_ADDRESS")
            and k not in ("PROMETHEUS_MULTIPROC_DIR", "CRM_SECRET_KEY", "CRM_SERVICES")
        }
        names = services or list(devctl.SERVICES)
        env.update(
            AMQP_URI=amqp_uri,
            CRM_DATA_DIR=str(data_dir),
            CRM_RUN_DIR=str(run_dir),
            CRM_GATEWAY_BIND=f"127.0.0.1:{free_port()}",
            CRM_LOG_LEVEL=os.environ.get("CRM_LOG_LEVEL", "INFO"),
        )
        for name in names:
            env[f"CRM_{name.upper()}_WEB_ADDRESS"] = f"127.0.0.1:{free_port()}"
        for name, url in (database_urls or {}).items():
            env[f"{name.upper()}_DATABASE_URL"] = url
        env.update(extra_env or {})
        run_dir.mkdir(parents=True, exist_ok=True)
        proxy = BrokerProxy(amqp_uri, run_dir / "broker-proxy.log") if broker_proxy else None
        if proxy is not None:
            proxy.start()
        try:
            info = devctl.start_system(
                env, run_dir, names, start_broker=False,
                process_env={devctl.GATEWAY: {"AMQP_URI": proxy.uri}} if proxy else None,
                supervise=supervise, log=lambda line: print(f"[system] {line}"),
            )
        except BaseException:
            if proxy is not None:
                proxy.stop()
            raise
        return cls(info, proxy, data_dir)

    def stop(self) -> str:
        """Stop everything; returns a report of processes that had died on their own."""
        report = self.died_report()
        devctl.stop_system(self.run_dir, log=lambda line: print(f"[system] {line}"))
        if self.proxy is not None:
            self.proxy.stop()
        self.http.close()
        return report

    def stop_service(self, name: str) -> None:
        """SIGTERM one process (a service or "gateway") and wait until it is gone."""
        self._stopped_by_test.add(name)
        devctl.stop_system(self.run_dir, [name], log=lambda _: None)

    def start_service(self, name: str, timeout: float = 90) -> None:
        """Start a stopped process again the same way and wait for its /health."""
        devctl.start_process(self.run_dir, name, timeout)
        self._stopped_by_test.discard(name)

    def kill_service(self, name: str) -> None:
        """kill -9 one process group (no graceful shutdown)."""
        import signal

        pid = devctl.read_pid(self.run_dir, name)
        self._stopped_by_test.add(name)
        if pid:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pid, signal.SIGKILL)
            deadline = time.monotonic() + 10
            while devctl.is_alive(pid) and time.monotonic() < deadline:
                time.sleep(0.05)

    def stop_broker_access(self) -> None:
        """The gateway loses the broker: its connections are reset and new ones refused."""
        assert self.proxy is not None, "started without the broker proxy"
        self.proxy.cut()

    def restore_broker_access(self) -> None:
        if self.proxy is not None:
            self.proxy.restore()

    @contextlib.contextmanager
    def broker_unavailable(self) -> Iterator[None]:
        self.stop_broker_access()
        try:
            yield
        finally:
            self.restore_broker_access()

    def ensure_running(self) -> None:
        """Undo what a test left broken: broker access, and any process not running."""
        self.restore_broker_access()
        for spec in self.info.specs:
            if devctl.running_pid(self.run_dir, spec) is None:
                self.start_service(spec.name)
        self._stopped_by_test.clear()

    # ---- inspection

    def processes(self) -> dict[str, dict]:
        return {row["name"]: row for row in devctl.status(self.run_dir)}

    def log_tail(self, name: str, lines: int = 60) -> str:
        return devctl.log_tail(self.info.spec(name).log, lines)

    def died_report(self, lines: int = 60) -> str:
        """The log tails of processes that are not running although no test stopped them."""
        parts = []
        for spec in self.info.specs:
            if spec.name in self._stopped_by_test:
                continue
            if devctl.running_pid(self.run_dir, spec) is None:
                parts.append(f"----- {spec.name} died; last lines of {spec.log}:\n"
                             + devctl.log_tail(spec.log, lines))
        return "\n".join(parts)

    # ---- HTTP

    def request(
        self,
        method: str,
        path: str,
        *,
        key: str | None = None,
        user: str | None = None,
        json: Any = None,
        headers: Mapping[str, str] | None = None,
        timeout: float = REQUEST_TIMEOUT,
        **kwargs: Any,
    ) -> requests.Response:
        """`key` is an API key; `user` a demo username whose key is used instead."""
        all_headers = dict(headers or {})
        if user is not None:
            key = self.keys[user]
        if key is not None:
            all_headers.setdefault(AUTH_HEADER, AUTH_SCHEME + key)
        url = path if path.startswith("http") else self.url + "/" + path.lstrip("/")
        return self.http.request(
            method, url, json=json, headers=all_headers, timeout=timeout, **kwargs
        )

    def get(self, path: str, **kwargs: Any) -> requests.Response:
        return self.request("GET", path, **kwargs)

    def post(self, path: str, **kwargs: Any) -> requests.Response:
        return self.request("POST", path, **kwargs)

    def put(self, path: str, **kwargs: Any) -> requests.Response:
        return self.request("PUT", path, **kwargs)

    def patch(self, path: str, **kwargs: Any) -> requests.Response:
        return self.request("PATCH", path, **kwargs)

    def delete(self, path: str, **kwargs: Any) -> requests.Response:
        return self.request("DELETE", path, **kwargs)

    def wait_for(self, predicate, timeout: float = 10.0, interval: float = 0.1, message: str = ""):
        """Poll `predicate()` until it returns something truthy (asynchronous effects)."""
        deadline = time.monotonic() + timeout
        while True:
            result = predicate()
            if result:
                return result
            if time.monotonic() > deadline:
                raise AssertionError(message or f"condition not met within {timeout}s")
            time.sleep(interval)
