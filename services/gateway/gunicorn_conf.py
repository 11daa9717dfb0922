"""gunicorn settings of the gateway (gthread workers: nameko proxies are pooled per process)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

from shared import config as shared_config

bind = shared_config.env("CRM_GATEWAY_BIND", "127.0.0.1:8000")
# The gateway shares the machine with the services in the default deployment: one worker per
# two cores. On two cores one worker with 8 threads answered more echo RPCs than two workers
# with 4 (373/s against 330/s), spending 2.3 ms of CPU per request against 3.1.
workers = int(shared_config.env("CRM_GATEWAY_WORKERS", str(max(1, (os.cpu_count() or 2) // 2))))
threads = int(shared_config.env("CRM_GATEWAY_THREADS", "8"))
worker_class = "gthread"
# An RPC waits at most CRM_RPC_TIMEOUT; leave room so gunicorn never kills a request first.
timeout = int(shared_config.rpc_timeout()) + 20
graceful_timeout = int(shared_config.rpc_timeout()) + 5
keepalive = 5
# gunicorn's own refusal of a long request line is an HTML page; up to its maximum the app
# answers a too long URI itself, as application/problem+json (MAX_URI_LENGTH in app.py).
limit_request_line = 8190
accesslog = None  # the app logs JSON lines with the correlation id itself
errorlog = "-"

# Workers write their metrics to files here; it must be set before prometheus_client is
# imported in a worker, i.e. here in the master before the fork.
_metrics_dir = Path(
    os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    or shared_config.data_dir() / "prometheus" / "gateway"
)
os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(_metrics_dir)


def on_starting(server: Any) -> None:
    # Files of a previous run would add stale counts to every series.
    shutil.rmtree(_metrics_dir, ignore_errors=True)
    _metrics_dir.mkdir(parents=True, exist_ok=True)


def post_worker_init(worker: Any) -> None:
    from shared.heap import freeze_startup_heap

    freeze_startup_heap()


def child_exit(server: Any, worker: Any) -> None:
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)
