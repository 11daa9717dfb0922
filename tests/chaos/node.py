"""A RabbitMQ node of the fault suite's own: its own ports, data and logs under a directory,
so that killing it with -9 touches nothing else on the machine.

It runs as the `rabbitmq` user (the Debian package's), which shares the Erlang cookie with the
machine's own node, so rabbitmqctl can reach it with `-n`.
"""

from __future__ import annotations

import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

from deploy import devctl

RABBIT_LIB = Path("/usr/lib/rabbitmq/bin")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def unavailable_reason() -> str | None:
    """None when a private node can be started here, else why not."""
    if not (RABBIT_LIB / "rabbitmq-server").exists():
        return "RabbitMQ's server scripts are not installed (/usr/lib/rabbitmq/bin)"
    try:
        pwd.getpwnam("rabbitmq")
    except KeyError:
        return "there is no rabbitmq user"
    if os.geteuid() not in (0, pwd.getpwnam("rabbitmq").pw_uid):
        return "starting a RabbitMQ node needs root or the rabbitmq user"
    return None


class BrokerNode:
    """Its files live in a directory of its own under /tmp (the rabbitmq user must reach
    them; pytest's and mkdtemp's directories are private to their owner)."""

    def __init__(self) -> None:
        self.base_dir = Path(tempfile.mkdtemp(prefix="crm-chaos-rabbitmq-")) / "node"
        self.base_dir.parent.chmod(0o755)
        self.port = _free_port()
        self.dist_port = _free_port()
        self.name = f"crmchaos{self.port}@localhost"
        self.uri = f"amqp://guest:guest@127.0.0.1:{self.port}/"
        self.pid_file = self.base_dir / "rabbitmq.pid"
        self.log_dir = self.base_dir / "log"

    # ---- as the rabbitmq user

    def _run_as_rabbitmq(self, argv: list[str], env: dict[str, str] | None = None,
                         timeout: float = 120) -> subprocess.CompletedProcess:
        account = pwd.getpwnam("rabbitmq")
        full_env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": account.pw_dir,
                    "LANG": "C.UTF-8", **(env or {})}

        def demote() -> None:
            if os.geteuid() == 0:
                os.setgid(account.pw_gid)
                os.setuid(account.pw_uid)

        return subprocess.run(argv, env=full_env, cwd=account.pw_dir, preexec_fn=demote,
                              capture_output=True, timeout=timeout, check=False)

    def _server_env(self) -> dict[str, str]:
        return {
            "RABBITMQ_NODENAME": self.name,
            "RABBITMQ_NODE_IP_ADDRESS": "127.0.0.1",
            "RABBITMQ_NODE_PORT": str(self.port),
            "RABBITMQ_DIST_PORT": str(self.dist_port),
            "RABBITMQ_MNESIA_BASE": str(self.base_dir / "mnesia"),
            "RABBITMQ_LOG_BASE": str(self.log_dir),
            "RABBITMQ_PID_FILE": str(self.pid_file),
            "RABBITMQ_CONFIG_FILE": str(self.base_dir / "rabbitmq.conf"),
            "RABBITMQ_ENABLED_PLUGINS_FILE": str(self.base_dir / "enabled_plugins"),
        }

    def ctl(self, *args: str, timeout: float = 60) -> str:
        result = self._run_as_rabbitmq([str(RABBIT_LIB / "rabbitmqctl"), "-n", self.name,
                                        *args], timeout=timeout)
        if result.returncode != 0:
            raise RuntimeError(f"rabbitmqctl {' '.join(args)}: "
                               f"{result.stderr.decode(errors='replace')[-500:]}")
        return result.stdout.decode(errors="replace")

    # ---- life cycle

    def start(self, timeout: float = 120) -> None:
        if not self.base_dir.exists():
            (self.base_dir / "mnesia").mkdir(parents=True)
            self.log_dir.mkdir(parents=True)
            (self.base_dir / "rabbitmq.conf").write_text(
                f"listeners.tcp.default = 127.0.0.1:{self.port}\n"
                # the disk alarm of a small test machine would block every publisher
                "disk_free_limit.absolute = 50MB\n"
            )
            (self.base_dir / "enabled_plugins").write_text("[].\n")
            if os.geteuid() == 0:
                account = pwd.getpwnam("rabbitmq")
                for path in [self.base_dir, *self.base_dir.rglob("*")]:
                    os.chown(path, account.pw_uid, account.pw_gid)
        self.pid_file.unlink(missing_ok=True)
        result = self._run_as_rabbitmq([str(RABBIT_LIB / "rabbitmq-server"), "-detached"],
                                       env=self._server_env())
        if result.returncode != 0:
            raise RuntimeError(f"rabbitmq-server failed: {result.stderr.decode()[-500:]}")
        self.wait_up(timeout)

    def wait_up(self, timeout: float = 120) -> None:
        deadline = time.monotonic() + timeout
        while (problem := devctl.broker_problem(self.uri, timeout=2)) is not None:
            if time.monotonic() > deadline:
                raise RuntimeError(f"the chaos broker did not come up: {problem}")
            time.sleep(0.5)

    def pid(self) -> int | None:
        try:
            return int(self.pid_file.read_text().strip())
        except (OSError, ValueError):
            return None

    def kill9(self) -> None:
        """kill -9 the node (the Erlang VM and its port helpers)."""
        pid = self.pid()
        if pid is None:
            raise RuntimeError("the chaos broker's pid is unknown")
        children = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True)
        for victim in [pid, *map(int, children.stdout.split())]:
            try:
                os.kill(victim, signal.SIGKILL)
            except ProcessLookupError:
                pass
        deadline = time.monotonic() + 30
        while devctl.broker_problem(self.uri, timeout=1) is None:
            if time.monotonic() > deadline:
                raise RuntimeError("the chaos broker still answers after kill -9")
            time.sleep(0.1)

    def stop(self) -> None:
        pid = self.pid()
        if pid is None:
            return
        try:
            self.ctl("stop", timeout=60)
        except (RuntimeError, subprocess.SubprocessError):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass

    def remove(self) -> None:
        self.stop()
        shutil.rmtree(self.base_dir.parent, ignore_errors=True)

    def queue_depths(self) -> dict[str, int]:
        """{queue: messages ready + unacknowledged} of the default vhost."""
        out = self.ctl("list_queues", "-q", "--no-table-headers", "name", "messages")
        depths = {}
        for line in out.splitlines():
            parts = line.split()
            if len(parts) == 2 and parts[1].isdigit():
                depths[parts[0]] = int(parts[1])
        return depths
