"""`make bench`: start the whole system on a private vhost and data directory, load it over
HTTP, print JSON figures. Timings are reported here and never asserted in tests.

Figures: lead creations per second through the gateway at concurrency 1 and 16 with latency
percentiles, and, in the same run as the ceiling, an echo RPC through the same gateway
(`POST /system/echo` -> `leads.ping`). The echo and lead creation at concurrency 16 run in
alternating slices (`BENCH_ROUNDS`, 5), so that their ratio is taken on the same machine
state. The load generator runs on the same machine as the
system, so it takes part of the same two cores. `cpu_ms_per_request` says where the CPU went:
each process group (a service, the gateway with its workers), the local RabbitMQ and the load
generator itself.
"""

from __future__ import annotations

import http.client
import json
import os
import statistics
import sys
import tempfile
import threading
import time
import urllib.parse
import uuid
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

from deploy import devctl
from tests.e2e.system import free_port

SECONDS = float(os.environ.get("BENCH_SECONDS", "10"))
ROUNDS = int(os.environ.get("BENCH_ROUNDS", "5"))  # slices of echo and lead creation at c16


def progress(message: str) -> None:
    print(f"[bench] {message}", file=sys.stderr, flush=True)


def percentile(sorted_values: list[float], fraction: float) -> float:
    if not sorted_values:
        return float("nan")
    index = min(len(sorted_values) - 1, max(0, round(fraction * len(sorted_values)) - 1))
    return sorted_values[index]


# Company names as varied as real ones: dedupe compares a capture with stored names that
# share its first characters, so a benchmark where every name starts alike measures a worst case.
NAME_CHARACTERS = "华中国东南西北新天海金宝恒泰安康瑞祥盛达鑫源丰鼎宏远博通信联合创智科云数汇"
INDUSTRY_WORDS = ("科技", "机械", "电子", "贸易", "医疗", "物流", "软件", "材料", "能源", "食品")


def new_lead() -> dict[str, Any]:
    tag = uuid.uuid4()
    picks = [NAME_CHARACTERS[(tag.int >> (6 * i)) % len(NAME_CHARACTERS)] for i in range(6)]
    industry = INDUSTRY_WORDS[tag.int % len(INDUSTRY_WORDS)]
    return {
        "name": "压测联系人",
        "company": f"{''.join(picks)}{industry}有限公司",
        "email": f"bench-{tag.hex}@example.cn",
        "phone": f"+86 139{tag.int % 10**8:08d}",
        "source": "website",
        "region": "华东",
        "industry": "制造业",
        "title": "采购总监",
    }


class Client:
    """A keep-alive HTTP/1.1 client for one thread. The load generator shares the two cores
    with the system it measures, so it should cost as little as it can: `requests` took about
    1.5 ms of CPU per call, http.client about a third of that."""

    def __init__(self, base_url: str, key: str) -> None:
        parts = urllib.parse.urlsplit(base_url)
        self.host, self.port = parts.hostname or "127.0.0.1", parts.port or 80
        self.headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
        self.connection: http.client.HTTPConnection | None = None

    def post(self, path: str, body: Any) -> tuple[int, bytes]:
        reused = self.connection is not None
        try:
            return self._post(path, body)
        except (BrokenPipeError, ConnectionResetError, http.client.RemoteDisconnected):
            self.close()
            if not reused:
                raise
            # The server closed the connection while it was idle (gunicorn's keep-alive is 5
            # s): the request never reached it. Once more on a new connection.
            return self._post(path, body)
        except (http.client.HTTPException, OSError):
            self.close()
            raise

    def _post(self, path: str, body: Any) -> tuple[int, bytes]:
        if self.connection is None:
            self.connection = http.client.HTTPConnection(self.host, self.port, timeout=30)
        self.connection.request("POST", path, json.dumps(body).encode(), self.headers)
        response = self.connection.getresponse()
        return response.status, response.read()

    def close(self) -> None:
        if self.connection is not None:
            self.connection.close()
            self.connection = None


def python_speed_ms() -> float:
    """CPU milliseconds a fixed pure-Python loop takes now (the best of three): the machine's
    speed at the moment of a measurement. On the shared development machine it varied by a
    factor of two within minutes, and every CPU figure with it."""
    best = float("inf")
    for _ in range(3):
        started = time.process_time()
        sum(i * i for i in range(1_000_000))
        best = min(best, time.process_time() - started)
    return round(best * 1000, 1)


SERVERS = {"beam.smp": "rabbitmq", "postgres": "postgresql"}


def cpu_seconds(group_ids: dict[str, int], servers: tuple[str, ...] = ("rabbitmq",)
                ) -> dict[str, float]:
    """CPU time used so far by each process group (a service, gunicorn with its workers) and
    by the local RabbitMQ (and PostgreSQL, when asked), read from /proc (Linux)."""
    totals = dict.fromkeys([*group_ids, *servers], 0.0)
    groups = {pgid: name for name, pgid in group_ids.items()}
    tick = os.sysconf("SC_CLK_TCK")
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
        except OSError:
            continue
        command, fields = text[text.index("(") + 1 : text.rindex(")")], text.rsplit(")", 1)[1]
        values = fields.split()
        used = (int(values[11]) + int(values[12])) / tick
        name = groups.get(int(values[2])) or SERVERS.get(command)
        if name in totals:
            totals[name] += used
    return totals


class Sample:
    """What one load of one scenario measured; samples of a scenario add up."""

    def __init__(self) -> None:
        self.latencies: list[float] = []
        self.statuses: Counter[int] = Counter()
        self.elapsed = 0.0
        self.cpu: Counter[str] = Counter()

    def add(self, other: Sample) -> Sample:
        self.latencies += other.latencies
        self.statuses.update(other.statuses)
        self.elapsed += other.elapsed
        self.cpu.update(other.cpu)
        return self

    def summary(self, concurrency: int) -> dict[str, Any]:
        latencies = sorted(self.latencies)
        ok = sum(count for status, count in self.statuses.items() if status < 300)
        requests = max(1, len(latencies))
        return {
            "concurrency": concurrency,
            "requests": len(latencies),
            "ok": ok,
            "statuses": {str(status): count for status, count in sorted(self.statuses.items())},
            "per_second": round(ok / self.elapsed, 1) if self.elapsed else 0.0,
            "p50_ms": round(percentile(latencies, 0.50) * 1000, 1),
            "p95_ms": round(percentile(latencies, 0.95) * 1000, 1),
            "p99_ms": round(percentile(latencies, 0.99) * 1000, 1),
            "mean_ms": round(statistics.fmean(latencies) * 1000, 1) if latencies else None,
            "cpu_ms_per_request": {process: round(seconds / requests * 1000, 2)
                                   for process, seconds in self.cpu.items()},
        }


def drive(
    url: str,
    key: str,
    body: Callable[[], dict],
    concurrency: int,
    seconds: float,
    name: str,
    groups: dict[str, int] | None = None,
) -> Sample:
    """`concurrency` clients, each with its own keep-alive connection, for `seconds`."""
    sample = Sample()
    lock = threading.Lock()
    deadline = time.monotonic() + seconds

    parts = urllib.parse.urlsplit(url)
    base, path = f"{parts.scheme}://{parts.netloc}", parts.path

    def client() -> None:
        http_client = Client(base, key)
        mine: list[float] = []
        codes: Counter[int] = Counter()
        while time.monotonic() < deadline:
            started = time.perf_counter()
            status, _ = http_client.post(path, body())
            mine.append(time.perf_counter() - started)
            codes[status] += 1
        http_client.close()
        with lock:
            sample.latencies.extend(mine)
            sample.statuses.update(codes)

    progress(f"{name}: {concurrency} clients for {seconds:g} s")
    cpu_before = cpu_seconds(groups or {})
    client_before = time.process_time()
    started = time.monotonic()
    threads = [threading.Thread(target=client) for _ in range(concurrency)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    sample.elapsed = time.monotonic() - started
    cpu_after = cpu_seconds(groups or {})
    cpu_before["load generator"], cpu_after["load generator"] = client_before, time.process_time()
    sample.cpu.update({process: cpu_after[process] - cpu_before[process]
                       for process in cpu_after})
    return sample


def load(url: str, key: str, body: Callable[[], dict], concurrency: int, seconds: float,
         name: str, groups: dict[str, int] | None = None) -> dict[str, Any]:
    return drive(url, key, body, concurrency, seconds, name, groups).summary(concurrency)


def interleaved(
    scenarios: dict[str, tuple[str, Callable[[], dict]]], key: str, concurrency: int,
    seconds: float, groups: dict[str, int], rounds: int,
) -> dict[str, dict[str, Any]]:
    """Each scenario for `seconds` in all, in `rounds` alternating slices: scenarios compared
    with each other (lead creation against the echo ceiling) meet the same machine. On a shared
    2-core machine whose speed drifts by tens of per cent within a minute, scenarios run one
    after the other measured the drift as much as the difference."""
    samples = {name: Sample() for name in scenarios}
    for round_ in range(1, rounds + 1):
        for name, (url, body) in scenarios.items():
            samples[name].add(drive(url, key, body, concurrency, seconds / rounds,
                                    f"{name} c{concurrency} ({round_}/{rounds})", groups))
    return {name: sample.summary(concurrency) for name, sample in samples.items()}


def run(amqp_uri: str, base: Path) -> dict[str, Any]:
    run_dir, data_dir = base / "run", base / "data"
    env = {
        **{k: v for k, v in os.environ.items() if not k.endswith("_DATABASE_URL")},
        "AMQP_URI": amqp_uri,
        "CRM_DATA_DIR": str(data_dir),
        "CRM_RUN_DIR": str(run_dir),
        "CRM_GATEWAY_BIND": f"127.0.0.1:{free_port()}",
        "CRM_RATE_LIMIT": "100000",
        "CRM_LOG_LEVEL": "WARNING",
    }
    for name in devctl.SERVICES:
        env[f"CRM_{name.upper()}_WEB_ADDRESS"] = f"127.0.0.1:{free_port()}"
    # Capture alone: the rules service reacting to every lead is measured by bench_rules.
    info = devctl.start_system(env, run_dir, ["leads"], start_broker=False, log=progress)
    try:
        key = info.users["admin"]["api_key"]
        echo_url, leads_url = f"{info.url}/system/echo", f"{info.url}/leads"
        echo_body = {"payload": {"ping": "pong"}}
        groups = dict(info.pids)
        load(echo_url, key, lambda: echo_body, 4, 2, "warm-up echo")
        load(leads_url, key, new_lead, 4, 2, "warm-up leads")
        speed_before = python_speed_ms()
        results = {"lead_create_c1": load(leads_url, key, new_lead, 1, SECONDS, "lead create c1",
                                          groups)}
        # The ceiling and lead creation at concurrency 16, in alternating slices.
        both = interleaved({"echo": (echo_url, lambda: echo_body), "lead create": (
            leads_url, new_lead)}, key, 16, SECONDS, groups, ROUNDS)
        results["echo_rpc_c16"], results["lead_create_c16"] = both["echo"], both["lead create"]
        results["python_loop_ms_before_after"] = [speed_before, python_speed_ms()]
    finally:
        devctl.stop_system(run_dir, log=progress)
    ceiling = results["echo_rpc_c16"]["per_second"]
    results["lead_create_c16_vs_echo"] = (
        round(results["lead_create_c16"]["per_second"] / ceiling, 2) if ceiling else None
    )
    results["machine"] = {"cores": os.cpu_count(), "seconds_per_scenario": SECONDS,
                          "interleaved_rounds": ROUNDS}
    return results


# BENCH_ONLY=capture,rules,sales,kb,contracts,service_desk,service_desk_numbers,console picks
# scenarios (default: all).
SCENARIOS = ("capture", "rules", "sales", "kb", "contracts", "service_desk",
             "service_desk_numbers", "console")


def main() -> None:
    chosen = [s for s in os.environ.get("BENCH_ONLY", "").split(",") if s] or list(SCENARIOS)
    base_uri = os.environ.get("AMQP_URI") or devctl.DEFAULT_AMQP_URI
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="crm-bench-") as tmp:
        devctl.ensure_broker(base_uri, Path(tmp) / "broker", progress)
        if "capture" in chosen:
            with devctl.temporary_vhost(base_uri, log=progress) as uri:
                results["capture"] = run(uri, Path(tmp))
    if "rules" in chosen:
        from tests import bench_rules

        results["rules"] = bench_rules.run(None)
    if "sales" in chosen:
        from tests import bench_sales

        results["sales"] = bench_sales.run()
    if "contracts" in chosen:
        from tests import bench_contracts

        results["contracts"] = bench_contracts.run()
    if "kb" in chosen:
        from tests import bench_kb

        results["kb"] = bench_kb.run()
    if "service_desk" in chosen:  # e-mail intake, SLA warnings (tests/bench_service_desk.py)
        from tests import bench_service_desk

        results["service_desk"] = bench_service_desk.run()
    if "service_desk_numbers" in chosen:  # /reports/tickets over 100,000 tickets (PostgreSQL)
        from tests import bench_service_desk_numbers

        results["service_desk_numbers"] = bench_service_desk_numbers.run()
    if "console" in chosen:  # the web console's first screen (tests/bench_console.py)
        from tests import bench_console

        results["console"] = bench_console.run()
    print(json.dumps(results, indent=2, ensure_ascii=False))


if __name__ == "__main__":
    main()
